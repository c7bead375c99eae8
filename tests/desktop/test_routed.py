"""Routed approvals on the desktop: an agent's call asks its owner, and she answers from
the notification her own desktop app posts.

Two gateways and a hub on this machine: the hub with the real OpenID provider
(fixtures/oidc/provider.mjs); nora's laptop is the real desktop app, its data folder
enrolled to the hub as nora@example.com by the device-code flow once the app runs; an
enterprise agent's host is a headless `countersign serve`, enrolled as agent `builder`
owned by nora, running the npm `server-memory`. The agent's write asks its owner through
the hub; nora's app takes the request off its long poll of the hub and posts a native
notification naming who asks and the tool; the test picks an action through dunst as a
person would.

- Allow once: the agent's call runs (the memory file has the entity), its journal record
  says `approver = nora@example.com` and names the hub's request, the hub's admin log
  holds the request and its answer, and nora's own journal keeps what she answered. The
  app's Approvals window shows the routed request while it waits (screenshot
  `approvals-routed`).
- Deny: the agent's call is refused, naming who denied it, and never reaches the server.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import anyio
import pytest
from selenium.webdriver.common.by import By

import conftest
from conftest import OUT, ROOT, App, connect, text_of, until, wait_for

pytestmark = pytest.mark.anyio


def _e2e(*names: str) -> list:
    """Imports tests/e2e modules with the e2e conftest as their `conftest` (in this
    session `conftest` is the desktop one), then puts everything back."""
    e2e_dir, saved = str(ROOT / "tests" / "e2e"), sys.modules.get("conftest")
    sys.path.insert(0, e2e_dir)
    sys.modules["conftest"] = conftest._h
    try:
        return [importlib.import_module(n) for n in names]
    finally:
        sys.path.remove(e2e_dir)
        sys.modules["conftest"] = saved


_sign_in, _identity, _routed = _e2e("test_hub_sign_in", "test_hub_identity", "test_routed_approvals")
signed_in_hub = _sign_in.signed_in_hub  # the fixture: a hub with the real OpenID provider
enroll_by_code, agent_host, entity, admin_log = (_identity.enroll_by_code, _routed.agent_host, _routed.entity,
                                                 _routed.admin_log)
NORA = "nora@example.com"


@pytest.fixture
def routed(tmp_path, signed_in_hub):
    """The hub, nora's app (enrolled as nora) and the agent's host (owned by nora)."""
    hub = signed_in_hub
    (tmp_path / "nora").mkdir()
    app = App(tmp_path / "nora")
    # Her laptop's gateway keeps its journal in step with the hub, as the e2e gateways do.
    app.config.write_text(app.config.read_text() + "[sync]\ninterval_secs = 1\n")
    app.start()
    agent = None
    try:
        out = enroll_by_code(app, hub, NORA)
        assert f"enrolled as {NORA}" in out, out
        assert app.cli("whoami").stdout.splitlines()[0] == NORA
        agent = agent_host(tmp_path, hub)
        yield SimpleNamespace(hub=hub, app=app, agent=agent, memory=tmp_path / "agent-memory.json")
    finally:
        if agent:
            agent.stop()
        app.stop()
        # The app's log beside the screenshots, as the `app` fixture keeps it.
        OUT.mkdir(parents=True, exist_ok=True)
        test = os.environ.get("PYTEST_CURRENT_TEST", "test").split(":")[-1].split(" ")[0]
        shutil.copy(app.log_path, OUT / f"{test}.log")


def open_tab(app, name: str):
    tabs = wait_for(lambda: app.driver.find_elements(By.CSS_SELECTOR, f'[data-testid="tab-{name}"]'),
                    what=f"the {name} tab to render")
    tabs[0].click()


def routed_prompt_in_window(app, requester: str):
    """The Approvals window's prompt that says it was routed here, asked by `requester`."""
    def found():
        open_tab(app, "approvals")
        shown = app.driver.find_elements(By.CSS_SELECTOR, '[data-testid="prompt-asked-by"]')
        return [e.text for e in shown if requester in e.text]
    return wait_for(found, timeout=20, what="the routed request in the Approvals window")[0]


async def ask_nora(app, agent, tg, name: str) -> tuple[dict, dict, dict]:
    """Starts the agent's write in the background; returns its result holder, the agent's
    waiting prompt and nora's notification about it (once dunst shows it)."""
    before = len(app.posted())
    out: dict = {}

    async def run():
        async with connect(agent, "http", "memory") as client:
            out["r"] = await client.call_tool("create_entities", entity(name))

    tg.start_soon(run)
    waiting = await until(lambda: next(iter(agent.status()["approvals"]), None), timeout=30,
                          what="the agent's call to wait for its owner")
    assert waiting["route"]["route"]["approver"] == {"kind": "owner"}, waiting
    posted = await until(lambda: [c for c in app.posted()[before:] if name in c["body"]], timeout=30,
                         what="nora's app to post a notification about the agent's call")
    await until(lambda: subprocess.run(["dunstctl", "count", "displayed"], capture_output=True, text=True)
                .stdout.strip() not in ("", "0"), what="dunst to display it")
    return out, waiting, posted[0]


def memory_holds(world, name: str) -> bool:
    return world.memory.exists() and name in world.memory.read_text()


async def call_record(agent) -> dict:
    """The agent's journal record of its create_entities call, once it has its outcome."""
    return (await until(lambda: [x for x in agent.audit() if x.get("tool") == "create_entities" and x.get("outcome")],
                        what="the agent's record of the call"))[0]


async def test_an_agents_write_is_approved_from_its_owners_desktop_notification(routed):
    hub, app, agent = routed.hub, routed.app, routed.agent
    async with anyio.create_task_group() as tg:
        out, waiting, n = await ask_nora(app, agent, tg, "from-builder")
        rid = waiting["id"]
        # Nora's notification: Countersign's own title, who asks (the agent, from its
        # host, as the hub verified it) and what it wants to run.
        assert n["app"] == "Countersign" and n["summary"] == "Countersign: approve a tool call?", n
        assert "Tool: “create_entities” of server “memory”" in n["body"], n["body"]
        assert "Asked by: “agent:builder” on “build-box”" in n["body"], n["body"]
        assert {"allow-once", "Allow once", "deny", "Deny"} <= set(n["rest"]), n["rest"]
        # Answered once at the hub: no grant lengths or similar scope are offered for it.
        assert not {"allow-1h", "allow-15m", "allow-similar"} & set(n["rest"]), n["rest"]
        assert "Client there: token" in n["body"], "the token is a name on the agent's host"
        # Her Approvals window shows the same request, routed to her by the hub.
        shown = await anyio.to_thread.run_sync(lambda: routed_prompt_in_window(app, "agent:builder"))
        assert "build-box" in shown and "routed to you by the hub" in shown, shown
        app.screenshot("approvals-routed")
        assert not memory_holds(routed, "from-builder"), "nothing runs before she answers"
        app.choose("Allow once")
    r = out["r"]
    assert not r.is_error, text_of(r)
    assert memory_holds(routed, "from-builder"), "the agent's call reached its server"
    # The agent's journal: who approved, through which request.
    record = await call_record(agent)
    assert record["approval"] == "approved" and record["outcome"] == "ok", record
    assert record["approver"] == NORA and record["request_id"] == rid, record
    assert f"approved by {NORA} through the hub, request {rid}" in record["reason"], record
    # The hub's admin log holds the request and nora's answer to it.
    log = [(e["action"], e["detail"]) for e in admin_log(hub)]
    assert any(a == "approval-requested" and d.startswith(f"request {rid} by agent:builder on build-box: "
                                                          "memory.create_entities") for a, d in log), log
    assert ("approval-answered", f"request {rid} approved by {NORA} for agent:builder") in log, log
    # Nora's own journal keeps what she answered; her app takes the answered request down.
    answered = await until(lambda: [x for x in app.audit() if x.get("rule") == "approval-answered"], timeout=20,
                           what="nora's record of her answer")
    assert f"answered allow to request {rid} from agent:builder on build-box" in answered[0]["reason"], answered
    await until(lambda: app.status()["approvals"] == [], what="the answered request to leave nora's app")


async def test_an_agents_write_denied_from_the_notification_never_reaches_its_server(routed):
    hub, app, agent = routed.hub, routed.app, routed.agent
    async with anyio.create_task_group() as tg:
        out, waiting, n = await ask_nora(app, agent, tg, "denied-builder")
        assert "Asked by: “agent:builder” on “build-box”" in n["body"], n["body"]
        app.choose("Deny")
    r = out["r"]
    assert r.is_error and f"{NORA} denied this call" in text_of(r), text_of(r)
    assert not memory_holds(routed, "denied-builder"), "a denied call never reaches the server"
    record = await call_record(agent)
    assert record["approval"] == "denied" and record["outcome"] == "denied", record
    assert record["approver"] == NORA and record["request_id"] == waiting["id"], record
    log = [(e["action"], e["detail"]) for e in admin_log(hub)]
    assert ("approval-answered", f"request {waiting['id']} denied by {NORA} for agent:builder") in log, log
    answered = await until(lambda: [x for x in app.audit() if x.get("rule") == "approval-answered"], timeout=20,
                           what="nora's record of her answer")
    assert f"answered deny to request {waiting['id']} from agent:builder" in answered[0]["reason"], answered
