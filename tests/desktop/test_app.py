"""The desktop app end to end: a real MCP client calls a write tool of the real
`server-filesystem` through the app's gateway; the app posts a real notification to
dunst; the test answers through dunst (its context menu, the way a person picks an
action) and checks the file, the audit record and the Activity window. Also: a forged
ActionInvoked from another bus connection is ignored, and the app's own window answers.
Screenshots of every window land in target/desktop-e2e/."""

import json
import os
import statistics
import subprocess
from pathlib import Path

import anyio
import pytest
from selenium.webdriver.common.by import By

from conftest import APPROVAL_TIMEOUT, OUT, connect, text_of, until, wait_for

pytestmark = pytest.mark.anyio


def notification_for(app, tool: str, after: int) -> dict:
    calls = wait_for(lambda: [c for c in app.posted()[after:] if tool in c["body"]], timeout=10,
                     what=f"a notification about {tool}")
    return calls[0]


def open_tab(app, name: str):
    """Clicks a tab once the window has rendered it (the page loads after the window opens)."""
    tabs = wait_for(lambda: app.driver.find_elements(By.CSS_SELECTOR, f'[data-testid="tab-{name}"]'),
                    what=f"the {name} tab to render")
    tabs[0].click()


def activity_row(app, tool: str, outcome: str):
    """Waits until the Activity window shows a record of `tool` with `outcome`."""
    def found():
        open_tab(app, "activity")
        rows = app.driver.find_elements(By.CSS_SELECTOR, f'[data-testid="activity-row"][data-tool="{tool}"]')
        return [r for r in rows if r.get_attribute("data-outcome") == outcome]
    return wait_for(found, timeout=15, what=f"an Activity row for {tool} with outcome {outcome}")


async def call_in_background(client, tg, args: dict, results: list):
    async def run():
        results.append(await client.call_tool("write_file", args))
    tg.start_soon(run)


async def test_allow_deny_and_timeout_through_desktop_notifications(app):
    before = len(app.posted())
    async with connect(app, "http", "fs") as client:
        # Allow once, picked from the notification.
        results = []
        async with anyio.create_task_group() as tg:
            await call_in_background(client, tg, {"path": str(app.files / "allowed.txt"), "content": "yes"}, results)
            n = await anyio.to_thread.run_sync(lambda: notification_for(app, "write_file", before))
            assert n["app"] == "Countersign"
            assert n["summary"] == "Countersign: approve a tool call?"
            assert "Tool: “write_file” of server “fs”\nClient: token “e2e”" in n["body"], n["body"]
            assert f"path={app.files}/allowed.txt" in n["body"] and "content=yes" in n["body"]
            assert {"allow-once", "Allow once", "deny", "Deny", "default"} <= set(n["rest"]), n["rest"]
            await until(lambda: subprocess.run(["dunstctl", "count", "displayed"], capture_output=True, text=True)
                        .stdout.strip() not in ("", "0"), what="dunst to display it")
            app.screenshot("approvals-pending")
            app.choose("Allow once")
        assert not results[0].is_error, text_of(results[0])
        assert (app.files / "allowed.txt").read_text() == "yes"

        # Deny.
        results = []
        before = len(app.posted())
        async with anyio.create_task_group() as tg:
            await call_in_background(client, tg, {"path": str(app.files / "denied.txt"), "content": "no"}, results)
            await anyio.to_thread.run_sync(lambda: notification_for(app, "write_file", before))
            app.choose("Deny")
        assert results[0].is_error and "denied" in text_of(results[0])
        assert not (app.files / "denied.txt").exists()

        # No answer: the deadline denies.
        results = []
        before = len(app.posted())
        async with anyio.create_task_group() as tg:
            await call_in_background(client, tg, {"path": str(app.files / "late.txt"), "content": "late"}, results)
            await anyio.to_thread.run_sync(lambda: notification_for(app, "write_file", before))
        assert results[0].is_error and f"no answer within {APPROVAL_TIMEOUT}s" in text_of(results[0])
        assert not (app.files / "late.txt").exists()

    def outcomes():
        seen = {r["arguments"]["path"].split("/")[-1]: r["outcome"] for r in app.audit() if r["tool"] == "write_file"}
        return seen if all(seen.values()) and len(seen) == 3 else None
    assert await until(outcomes, what="three outcomes") == {"allowed.txt": "ok", "denied.txt": "denied", "late.txt": "timeout"}
    await anyio.to_thread.run_sync(lambda: activity_row(app, "write_file", "ok"))
    await anyio.to_thread.run_sync(lambda: activity_row(app, "write_file", "timeout"))
    app.screenshot("activity")
    for tab in ["servers", "policy", "settings", "approvals"]:
        open_tab(app, tab)
        app.screenshot(tab)
    # Start at login is the user's choice here (no managed policy): an XDG autostart entry.
    entry = Path(os.environ["XDG_CONFIG_HOME"]) / "autostart" / "countersign.desktop"
    entry.unlink(missing_ok=True)
    open_tab(app, "settings")
    await anyio.to_thread.run_sync(lambda: wait_for(
        lambda: app.driver.find_elements(By.CSS_SELECTOR, '[data-testid="start-at-login"]'), what="the setting"))
    # The enrollment the app reads from the data directory, in words (this one has no hub).
    assert app.driver.find_element(By.CSS_SELECTOR, '[data-testid="hub-enrollment"]').text == "Not enrolled"
    app.driver.find_element(By.CSS_SELECTOR, '[data-testid="start-at-login"]').click()
    await until(lambda: entry.exists(), what="the autostart entry")
    assert "Exec=" in entry.read_text()
    entry.unlink()
    record_prompt_latency(app)


async def test_a_forged_action_is_ignored_and_the_window_answers(app):
    async with connect(app, "http", "fs") as client:
        results = []
        async with anyio.create_task_group() as tg:
            await call_in_background(client, tg, {"path": str(app.files / "forged.txt"), "content": "x"}, results)
            await anyio.to_thread.run_sync(lambda: notification_for(app, "write_file", 0))
            log = await until(lambda: [line for line in app.app_log().splitlines() if "prompt posted" in line],
                              what="the app to log the notification id")
            nid = int(log[0].split("notification=")[1].split()[0])
            # Another process on the bus claims the person clicked "Allow once".
            subprocess.run(["dbus-send", "--session", "--type=signal", "/org/freedesktop/Notifications",
                            "org.freedesktop.Notifications.ActionInvoked", f"uint32:{nid}", "string:allow-once"],
                           check=True, timeout=10)
            await until(lambda: "ignored an ActionInvoked signal" in app.app_log(), what="the forgery to be ignored")
            assert len(app.status()["approvals"]) == 1, "still waiting for the person"
            # The control API cannot answer in the app either.
            pending = app.status()["approvals"][0]["id"]
            assert app.cli("approve", pending, check=False).returncode != 0
            # The person denies in Countersign's own window.

            def deny_in_window():
                app.driver.find_element(By.CSS_SELECTOR, '[data-testid="tab-approvals"]').click()
                prompts = app.driver.find_elements(By.CSS_SELECTOR, '[data-testid="prompt"]')
                if not prompts:
                    return None
                args = prompts[0].find_element(By.CSS_SELECTOR, '[data-testid="prompt-arguments"]').text
                assert "forged.txt" in args, "the full arguments are shown"
                app.screenshot("approval-window")
                prompts[0].find_element(By.CSS_SELECTOR, '[data-testid="deny"]').click()
                return True
            await anyio.to_thread.run_sync(lambda: wait_for(deny_in_window, timeout=15, what="the prompt in the window"))
        assert results[0].is_error and "denied" in text_of(results[0])
    assert not (app.files / "forged.txt").exists()
    record_prompt_latency(app)


async def test_sec_19_a_dismissed_notification_denies_the_call(app):
    """The person closes the approval notification without choosing (dunst's `close`, as
    clicking it away does: NotificationClosed with reason 2, from the notification
    server): the call is denied then, well before its deadline, and never runs."""
    import time

    async with connect(app, "http", "fs") as client:
        results = []
        async with anyio.create_task_group() as tg:
            await call_in_background(client, tg, {"path": str(app.files / "dismissed.txt"), "content": "no"}, results)
            await anyio.to_thread.run_sync(lambda: notification_for(app, "write_file", 0))
            await until(lambda: subprocess.run(["dunstctl", "count", "displayed"], capture_output=True, text=True)
                        .stdout.strip() not in ("", "0"), what="dunst to display it")
            assert len(app.status()["approvals"]) == 1
            dismissed = time.monotonic()
            subprocess.run(["dunstctl", "close"], check=True, timeout=10)
        answered = time.monotonic() - dismissed
    assert results[0].is_error and "The user denied this call" in text_of(results[0]), text_of(results[0])
    assert answered < APPROVAL_TIMEOUT / 2, f"denied {answered:.1f}s after the dismissal: that was the deadline"
    assert not (app.files / "dismissed.txt").exists(), "the server never wrote the file"
    closed = app.bus_log.read_text(errors="replace").split("member=NotificationClosed")
    assert len(closed) > 1 and "uint32 2" in closed[1].split("signal")[0], "dunst said: dismissed by the person"
    assert "how=\"dismissed\"" in app.app_log() or "how=dismissed" in app.app_log(), "answered by the dismissal"
    record = await until(lambda: [r for r in app.audit() if r["tool"] == "write_file" and r["outcome"]],
                         what="the call's record")
    assert (record[0]["approval"], record[0]["outcome"]) == ("denied", "denied"), record[0]
    assert app.status()["approvals"] == []


def record_prompt_latency(app):
    """Prompt latency (call arrives at the approver → notification posted), reported."""
    samples = app.latencies()
    assert samples, "the app logs each prompt's latency"
    figures = OUT / "figures.json"
    OUT.mkdir(parents=True, exist_ok=True)
    data = json.loads(figures.read_text()) if figures.exists() else {"prompt_latency_ms": []}
    data["prompt_latency_ms"] += samples
    data["prompt_latency_median_ms"] = statistics.median(data["prompt_latency_ms"])
    figures.write_text(json.dumps(data, indent=1))
    assert statistics.median(samples) <= 100, f"prompt latency median {statistics.median(samples):.1f} ms"


# The app's own (anonymous) memory idle with its window closed, as BENCHMARKS.md reports
# it (debug build under Xvfb), and the margin this test allows over it: runs on this
# machine have measured 32.0-33.2 MiB.
APP_ANON_MIB = 32.0
APP_ANON_MARGIN = 1.25


def test_idle_memory_with_the_window_closed(app):
    """The app's memory once its window is closed: the web view's process must be gone;
    RSS is recorded whole and split into what the app allocated (anonymous) and the
    shared libraries it maps (file-backed: WebKit, GTK, Mesa's software GL here)."""
    pid = json.loads((app.home / "gateway.json").read_text())["pid"]  # the app hosts the gateway
    # Close the window. The click is scheduled in the page, so the WebDriver call returns
    # before the window goes away.
    app.driver.execute_script("setTimeout(() => document.querySelector('[data-testid=close]').click(), 50)")
    wait_for(lambda: "window closed; Countersign keeps running" in app.app_log(), what="the window to close")
    assert subprocess.run(["kill", "-0", str(pid)]).returncode == 0, "Countersign keeps running with no window"

    def webkit():
        return subprocess.run(["pgrep", "-P", str(pid), "-f", "WebKitWebProcess"], capture_output=True,
                              text=True).stdout.split()
    wait_for(lambda: not webkit(), what="the web view's process to end with its window")

    def status(p: int) -> dict:
        fields = {}
        for line in open(f"/proc/{p}/status"):
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                fields[key] = int(value.split()[0]) / 1024
        return fields
    own = status(pid)
    children = [int(c) for c in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]
    helpers = {}
    for c in children:
        try:  # a helper may end between listing and reading
            helpers[open(f"/proc/{c}/comm").read().strip()] = round(status(c).get("VmRSS", 0), 1)
        except FileNotFoundError:
            continue
    OUT.mkdir(parents=True, exist_ok=True)
    figures = OUT / "figures.json"
    data = json.loads(figures.read_text()) if figures.exists() else {}
    data["idle_window_closed_mib"] = {"app_rss": round(own["VmRSS"], 1), "app_anon": round(own["RssAnon"], 1),
                                      "app_file": round(own["RssFile"], 1), "helpers_rss": helpers}
    figures.write_text(json.dumps(data, indent=1))
    # What the app itself holds; the shared libraries' pages are the desktop's. The bound is
    # the figure BENCHMARKS.md reports (its "Desktop app" table) with a stated margin for
    # this machine's noise, so a regression fails here instead of hiding under a loose cap.
    assert own["RssAnon"] <= APP_ANON_MIB * APP_ANON_MARGIN, (
        f"the app holds {own['RssAnon']:.1f} MiB of its own memory; BENCHMARKS.md reports {APP_ANON_MIB} MiB "
        f"and this test allows {APP_ANON_MARGIN:.2f}x that")


async def test_the_app_takes_over_from_a_headless_gateway(tmp_path):
    """One gateway per user: with `countersign serve` already running for this user, the
    app says so, and takes over cleanly when asked."""
    from conftest import App, BIN

    app = App(tmp_path)
    headless = subprocess.Popen([str(BIN), "serve", "--config", str(app.config)], env=app.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        runtime = app.home / "gateway.json"
        await until(lambda: runtime.exists() and json.loads(runtime.read_text())["pid"] == headless.pid,
                    what="the headless gateway")
        app.start()
        def says_so():
            shown = app.driver.find_elements(By.CSS_SELECTOR, '[data-testid="gateway-state"]')
            return shown and "another Countersign gateway" in shown[0].text and shown[0].text
        state = await anyio.to_thread.run_sync(lambda: wait_for(says_so, what="the app to say another gateway runs"))
        assert f"pid {headless.pid}" in state
        app.screenshot("take-over")
        app.driver.find_element(By.CSS_SELECTOR, '[data-testid="take-over"]').click()
        await until(lambda: headless.poll() is not None, what="the headless gateway to stop")
        assert headless.returncode == 0, "it stopped cleanly"
        await until(lambda: runtime.exists() and json.loads(runtime.read_text())["pid"] != headless.pid,
                    what="the app's gateway to take the runtime file")
        app.addr = json.loads(runtime.read_text())["listen"]
        async with connect(app, "http", "fs") as client:
            listed = await client.list_tools()
            assert any(t.name == "write_file" for t in listed.tools)
    finally:
        if headless.poll() is None:
            headless.kill()
        app.stop()


async def test_a_user_override_from_the_window_tightens_a_tool(app):
    """Servers & tools: the person marks write_file destructive; the override lands in
    their config file (everything else kept) and the next call is denied unasked."""
    before = app.config.read_text()
    async with connect(app, "http", "fs") as client:
        await client.list_tools()

        def choose():
            open_tab(app, "servers")
            # WebKitWebDriver cannot click <option>s: pick it as the keyboard would, by
            # setting the value and firing the change the page listens for.
            return app.driver.execute_script(
                "const s = document.querySelector('[data-testid=\"class-write_file\"]');"
                "if (!s) return false;"
                "s.value = 'destructive'; s.dispatchEvent(new Event('change', {bubbles: true})); return true;")
        await anyio.to_thread.run_sync(lambda: wait_for(choose, what="write_file in Servers & tools"))

        def override():
            import tomllib
            return tomllib.loads(app.config.read_text()).get("policy", {}).get("classify", {}).get("mcp__fs__write_file")
        assert await until(override, what="the override in the config file") == "destructive"
        assert app.config.read_text().startswith(before.rstrip("\n")), "the rest of the file is kept"
        app.screenshot("servers-override")
        r = await client.call_tool("write_file", {"path": str(app.files / "x.txt"), "content": "x"})
        assert r.is_error and "destructive" in text_of(r) and app.status()["approvals"] == []


async def test_the_kill_switch_refuses_every_call_and_is_audited(app):
    async with connect(app, "http", "fs") as client:
        def pause():
            open_tab(app, "settings")
            box = app.driver.find_elements(By.CSS_SELECTOR, '[data-testid="pause"]')
            if box:
                box[0].click()
            return box
        await anyio.to_thread.run_sync(lambda: wait_for(pause, what="the pause switch"))
        await until(lambda: [r for r in app.audit() if r["kind"] == "policy" and r["rule"] == "paused"],
                    what="the pause in the journal")
        r = await client.call_tool("read_text_file", {"path": str(app.files / "nothing.txt")})
        assert r.is_error and "paused" in text_of(r), "even a read is refused while paused"


async def test_signing_in_to_a_remote_server_from_the_servers_window(tmp_path):
    """Servers & tools says a remote server asks for a sign-in; "Sign in to remote" opens
    the desktop's default browser (a recorder of its one argument, see `default_browser`), the
    test plays the browser against the Python MCP SDK's authorization server, and the
    window shows the sign-in; calls through the app's gateway then reach the server, and
    "Sign out" revokes the tokens."""
    import sys

    import httpx2

    from conftest import App, ROOT, _h

    server = lambda port: [sys.executable, str(ROOT / "tests" / "e2e" / "oauth_server.py"), str(port)]
    with _h.background(server, tmp_path / "oauth.log") as oauth:
        base = f"http://127.0.0.1:{oauth.port}"
        app = App(tmp_path)
        browser_env, opened = _h.default_browser(tmp_path)
        app.env.update(browser_env)
        with app.config.open("a") as f:
            f.write(f'[servers.remote]\nurl = "{base}/mcp"\ntrusted = true\n[policy]\nallow = ["mcp__remote"]\n')
        app.start()
        try:
            def credentials(text: str):
                def shown():
                    open_tab(app, "servers")
                    found = app.driver.find_elements(By.CSS_SELECTOR, '[data-testid="credentials-remote"]')
                    return found and text in found[0].text and found[0].text
                return shown

            await anyio.to_thread.run_sync(lambda: wait_for(credentials("Asks for a sign-in"), what="the sign-in offer"))
            app.driver.find_element(By.CSS_SELECTOR, '[data-testid="sign-in-remote"]').click()
            lines = await until(lambda: opened.exists() and len(opened.read_text().splitlines()) == 2
                                and opened.read_text().splitlines(), what="the browser to open")
            assert lines[0] == "1" and lines[1].startswith(f"{base}/authorize?"), lines
            page = await anyio.to_thread.run_sync(lambda: httpx2.get(lines[1], follow_redirects=True))
            assert page.status_code == 200 and "Signed in" in page.text
            shown = await anyio.to_thread.run_sync(
                lambda: wait_for(credentials(f"Signed in with {base}"), what="the window to show the sign-in"))
            assert "token renews in" in shown
            app.screenshot("servers-signed-in")

            async with connect(app, "http", "remote") as client:
                r = await client.call_tool("whoami", {})
                assert text_of(r) == "signed in", text_of(r)

            app.driver.find_element(By.CSS_SELECTOR, '[data-testid="sign-out-remote"]').click()
            stats = lambda: httpx2.get(f"{base}/test/stats").json()
            await until(lambda: stats()["revocations"] == 2, what="the tokens to be revoked")
            await anyio.to_thread.run_sync(lambda: wait_for(credentials("Asks for a sign-in"), what="signed out"))
            records = [r for r in app.audit() if r.get("rule") in ("sign-in", "sign-out")]
            assert [r["rule"] for r in records] == ["sign-in", "sign-out"], records
        finally:
            app.stop()


def test_plaintext_credentials_are_offered_a_move_into_the_keychain(tmp_path):
    """A credential written in plain text in the config: the window says so and moves it
    into the keychain on one click; the file then holds a reference, the rest kept."""
    from conftest import App

    app = App(tmp_path)
    text = app.config.read_text().replace("trusted = true\n", 'trusted = true\nenv = { API_TOKEN = "ghp_desktopplain0123456789" }\n', 1)
    app.config.write_text(text)
    app.start()
    try:
        def offered():
            found = app.driver.find_elements(By.CSS_SELECTOR, '[data-testid="plaintext-offer"]')
            return found and found[0].text
        assert "servers.fs.env.API_TOKEN" in wait_for(offered, what="the offer to move the credential")
        app.screenshot("plaintext-offer")
        app.driver.find_element(By.CSS_SELECTOR, '[data-testid="move-secrets"]').click()
        wait_for(lambda: 'API_TOKEN = { secret = "fs-api_token" }' in app.config.read_text(), what="the reference")
        assert "ghp_desktopplain" not in app.config.read_text()
        listed = json.loads(app.cli("secret", "list", "--config", str(app.config), "--json").stdout)
        assert {"name": "fs-api_token", "stored": True, "used_by": ["servers.fs.env.API_TOKEN"]} in listed
        wait_for(lambda: not app.driver.find_elements(By.CSS_SELECTOR, '[data-testid="plaintext-offer"]'),
                 what="the offer to go away")
        app.cli("secret", "rm", "fs-api_token")
    finally:
        app.stop()


async def test_routing_a_client_from_the_clients_window_and_undoing_it(tmp_path):
    """The Clients window finds Claude Desktop's file, routes its server through
    Countersign with one click (the command Claude Desktop will start is the stdio shim,
    and it serves the same tools), and Undo gives the file back byte for byte."""
    from mcp import Client, StdioServerParameters

    from conftest import NODE_BIN, App

    app = App(tmp_path)
    xdg = tmp_path / "xdg"
    desktop = xdg / "Claude" / "claude_desktop_config.json"
    desktop.parent.mkdir(parents=True)
    original = json.dumps({
        "mcpServers": {"files": {"command": str(NODE_BIN / "mcp-server-filesystem"), "args": [str(app.files)]}},
        "globalShortcut": "Ctrl+Space",
    }, indent=2) + "\n"
    desktop.write_text(original)
    app.env["XDG_CONFIG_HOME"] = str(xdg)
    app.start()
    try:
        app.driver.find_element(By.CSS_SELECTOR, '[data-testid="tab-clients"]').click()
        shadow = '[data-testid="server-claude-desktop-files"]'
        assert "shadow" in wait_for(lambda: app.driver.find_elements(By.CSS_SELECTOR, shadow) and
                                    app.driver.find_element(By.CSS_SELECTOR, shadow).text, what="the client's server")
        app.driver.find_element(By.CSS_SELECTOR, '[data-testid="route-claude-desktop"]').click()
        # The shim entry names the data folder, so it works whatever the client's environment.
        entry = wait_for(lambda: json.loads(desktop.read_text())["mcpServers"]["files"].get("args")
                         == ["connect", "files", "--home", str(app.home)]
                         and json.loads(desktop.read_text())["mcpServers"]["files"], what="the routed entry")
        outcome = wait_for(lambda: " ".join(e.text for e in app.driver.find_elements(
            By.CSS_SELECTOR, '[data-testid="outcome-claude-desktop"]')), what="what routing did")
        assert "now through Countersign" in outcome and "quit Claude Desktop" in outcome
        assert "routed" in wait_for(lambda: app.driver.find_element(By.CSS_SELECTOR, shadow).text.startswith("routed")
                                    and app.driver.find_element(By.CSS_SELECTOR, shadow).text, what="the new state")
        app.screenshot("clients-routed")
        assert "[servers.files]" in app.config.read_text()

        session = {k: os.environ[k] for k in ("DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR") if k in os.environ}
        params = StdioServerParameters(command=entry["command"], args=entry["args"],
                                       env={"PATH": os.environ["PATH"], "COUNTERSIGN_HOME": str(app.home), **session})
        with anyio.fail_after(60):
            async with Client(params) as client:
                assert "read_text_file" in {t.name for t in (await client.list_tools()).tools}

        app.driver.find_element(By.CSS_SELECTOR, '[data-testid="undo-claude-desktop"]').click()
        wait_for(lambda: desktop.read_text() == original, what="the original file back")
        # Undo puts the client's file back first, then removes what install added.
        wait_for(lambda: "[servers.files]" not in app.config.read_text(), what="the server install added to go")
    finally:
        app.stop()
