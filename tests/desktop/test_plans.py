"""A session plan on the desktop: the client declares its task's calls with
`countersign/plan`; the app posts one notification that lists what the plan allows and
offers "Allow plan"; the Approvals window shows the same plan (screenshot
`approvals-plan`); the person picks "Allow plan" through dunst; the calls inside the plan
then run with no further notification, and a call outside it asks again."""

from __future__ import annotations

import subprocess
from typing import Any

import anyio
import pytest
from mcp import types
from pydantic import TypeAdapter
from selenium.webdriver.common.by import By

from conftest import connect, text_of, until, wait_for

pytestmark = pytest.mark.anyio


def notification(app, text: str, after: int) -> dict:
    return wait_for(lambda: [c for c in app.posted()[after:] if text in c["body"]], timeout=15,
                    what=f"a notification with {text!r}")[0]


def plan_in_window(app) -> str:
    def shown():
        tabs = app.driver.find_elements(By.CSS_SELECTOR, '[data-testid="tab-approvals"]')
        if tabs:
            tabs[0].click()
        found = app.driver.find_elements(By.CSS_SELECTOR, '[data-testid="prompt-plan"]')
        return found and found[0].text
    return wait_for(shown, timeout=15, what="the plan in the Approvals window")


async def test_a_plan_is_allowed_from_one_notification_and_covers_its_calls(app):
    site = app.files / "site"
    site.mkdir()
    before = len(app.posted())
    async with connect(app, "http", "fs") as client:
        answer = {}
        async with anyio.create_task_group() as tg:
            async def declare():
                request = types.Request[dict[str, Any], str](method="countersign/plan", params={
                    "title": "Build the site",
                    "items": [{"server": "fs", "tool": "write_file", "under": str(site)},
                              {"server": "fs", "tool": "move_file", "under": str(site)}]})
                answer["r"] = await client.session.send_request(request, TypeAdapter(dict[str, Any]))

            tg.start_soon(declare)
            n = await anyio.to_thread.run_sync(lambda: notification(app, "Session plan", before))
            assert n["body"].startswith("Session plan “Build the site”\nClient: token “e2e”"), n["body"]
            assert f"Allows: `write_file` calls via fs under {site}/" in n["body"], n["body"]
            assert "1 more still ask each time" in n["body"], n["body"]
            assert {"allow-once", "Allow plan (1 for this session)", "deny", "Deny"} <= set(n["rest"]), n["rest"]
            assert "allow-1h" not in n["rest"], "a plan lasts the session, no other length"
            shown = await anyio.to_thread.run_sync(lambda: plan_in_window(app))
            assert "Build the site" in shown and "Not granted: fs.move_file" in shown, shown
            app.screenshot("approvals-plan")
            await until(lambda: subprocess.run(["dunstctl", "count", "displayed"], capture_output=True, text=True)
                        .stdout.strip() not in ("", "0"), what="dunst to display it")
            app.choose("Allow plan (1 for this session)")
        assert answer["r"]["approved"] is True and len(answer["r"]["granted"]) == 1, answer["r"]

        after_plan = len(app.posted())
        for name in ["index.html", "app.js"]:
            r = await client.call_tool("write_file", {"path": str(site / name), "content": name})
            assert not r.is_error, text_of(r)
            assert (site / name).read_text() == name
        assert not [c for c in app.posted()[after_plan:] if "write_file" in c["body"]], "no prompt inside the plan"

        # Outside the plan: a notification again; denied, nothing written.
        outside = {}
        async with anyio.create_task_group() as tg:
            async def write():
                outside["r"] = await client.call_tool("write_file", {"path": str(app.files / "x.txt"), "content": "x"})

            tg.start_soon(write)
            await anyio.to_thread.run_sync(lambda: notification(app, "x.txt", after_plan))
            app.choose("Deny")
        assert outside["r"].is_error and not (app.files / "x.txt").exists()
