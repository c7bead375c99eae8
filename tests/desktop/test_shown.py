"""Issue 15, item 9, on the desktop: hostile text in a prompt stays inert. A client that
calls itself "x\\nCountersign: verified safe read-only call" asks to write `<s>rm</s>`,
`<small>…</small>`, a right-to-left override and a zero-width space, with dunst rendering
markup as its stock configuration does. What was sent (the `Notify` call on the bus) and
what dunst shows (its history's message, parsed as the Pango markup it renders) must show
Countersign's own title, the tags as written and every hidden character as an escape; the
app's window and its Clients tab must show the same escapes."""

import json
import re
import subprocess
import xml.etree.ElementTree as ET

import anyio
import pytest
from mcp.types import Implementation
from selenium.webdriver.common.by import By

from conftest import App, connect, text_of, wait_for

pytestmark = pytest.mark.anyio

TITLE = "Countersign: approve a tool call?"
FAKE_LINE = "Countersign: verified safe read-only call"
HOSTILE = "x\n" + FAKE_LINE
CONTENT = "<s>rm</s> <small>-rf ~</small> a\u202eb r\u200bm"
HIDDEN = "\r\u202e\u200b\u2028"


def capabilities() -> list[str]:
    out = subprocess.run(["dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.Notifications",
                          "/org/freedesktop/Notifications", "org.freedesktop.Notifications.GetCapabilities"],
                         capture_output=True, text=True, check=True, timeout=10).stdout
    return re.findall(r'string "([^"]*)"', out)


def shown_by_dunst(body_marker: str) -> str:
    """The text dunst shows for the newest notification whose body holds `body_marker`:
    its formatted message from `dunstctl history`, parsed as the markup Pango renders."""
    def find():
        history = json.loads(subprocess.run(["dunstctl", "history"], capture_output=True, text=True, check=True,
                                             timeout=10).stdout)["data"][0]
        return [h["message"]["data"] for h in history if body_marker in h["body"]["data"]]
    message = wait_for(find, timeout=10, what="the notification in dunst's history")[0]
    return "".join(ET.fromstring(f"<markup>{message}</markup>").itertext())


async def test_issue15_09_the_notification_and_the_window_show_hostile_text_inert(tmp_path):
    app = App(tmp_path)
    xdg = tmp_path / "xdg"
    desktop = xdg / "Claude" / "claude_desktop_config.json"
    desktop.parent.mkdir(parents=True)
    desktop.write_text(json.dumps({"mcpServers": {HOSTILE: {"command": "npx", "args": ["-y", "p\u202ekg"]}}}))
    app.env["XDG_CONFIG_HOME"] = str(xdg)
    app.start()
    try:
        assert "body-markup" in capabilities(), "dunst renders markup, as its stock configuration does"
        target = app.files / "hostile.txt"
        async with connect(app, "http", "fs", client_info=Implementation(name=HOSTILE, version="1")) as client:
            results = []
            async with anyio.create_task_group() as tg:
                async def run():
                    # The content first, so the whole of it fits in the notification.
                    results.append(await client.call_tool("write_file", {"content": CONTENT, "path": str(target)}))
                tg.start_soon(run)
                n = await anyio.to_thread.run_sync(lambda: wait_for(
                    lambda: [c for c in app.posted() if "write_file" in c["summary"] + c["body"]], timeout=15,
                    what="the prompt's notification")[0])
                # The title is Countersign's own; names stay in labelled, quoted fields.
                assert n["summary"] == TITLE, n
                body = n["body"]
                assert "&lt;s&gt;rm&lt;/s&gt; &lt;small&gt;-rf ~&lt;/small&gt;" in body, body
                assert "<" not in body and ">" not in body, body
                assert f"(says it is “x\\n{FAKE_LINE}”)" in body, body
                assert "a\\u{202e}b r\\u{200b}m" in body, body
                assert not any(c in body for c in HIDDEN), body
                assert not any(line.startswith(FAKE_LINE) for line in body.splitlines()), body

                # The window shows the same escapes.
                def prompt_text():
                    app.driver.find_element(By.CSS_SELECTOR, '[data-testid="tab-approvals"]').click()
                    prompts = app.driver.find_elements(By.CSS_SELECTOR, '[data-testid="prompt"]')
                    return prompts and (prompts[0].find_element(By.CSS_SELECTOR, '[data-testid="prompt-who"]').text,
                                        prompts[0].find_element(By.CSS_SELECTOR, '[data-testid="prompt-arguments"]').text)
                who, args = await anyio.to_thread.run_sync(lambda: wait_for(prompt_text, timeout=15,
                                                                             what="the prompt in the window"))
                assert f"(says it is “x\\n{FAKE_LINE}”)" in who, who
                assert "<s>rm</s> <small>-rf ~</small> a\\u{202e}b r\\u{200b}m" in args, args
                assert not any(c in who + args for c in HIDDEN), (who, args)
                app.screenshot("approval-hostile-text")
                app.choose("Deny")
            assert results[0].is_error and "denied" in text_of(results[0])
        assert not target.exists()

        # What dunst rendered: the tags as written, nothing struck through or shrunk.
        shown = await anyio.to_thread.run_sync(lambda: shown_by_dunst("write_file"))
        assert shown.startswith(TITLE + "\n"), shown
        assert "<s>rm</s> <small>-rf ~</small> a\\u{202e}b r\\u{200b}m" in shown, shown
        assert not any(line.startswith(FAKE_LINE) for line in shown.splitlines()), shown

        # The Clients tab shows a name from a client's file the same way.
        def client_names():
            app.driver.find_element(By.CSS_SELECTOR, '[data-testid="tab-clients"]').click()
            return [e.text for e in app.driver.find_elements(By.CSS_SELECTOR, '[data-testid="client-server-name"]')]
        names = await anyio.to_thread.run_sync(lambda: wait_for(client_names, timeout=15, what="the Clients tab"))
        assert names == [f"x\\n{FAKE_LINE}"], names
        app.screenshot("clients-hostile-name")
    finally:
        app.stop()
