"""Issue 18: enterprise agents and deprovisioning from the IdP.

An admin registers an agent with an owner (`countersign-hub agent create`, the token
alone on stdout); its host enrolls with `--agent NAME`; its records name `agent:NAME` and
the owner; what policy would ask a person asks its owner through the hub instead
(test_routed_approvals.py), and the upstream never gets the call while it waits. The IdP deprovisions over SCIM 2.0 (an API token of the `scim` role, bodies as
Okta and Entra ID send them): the owner deactivated suspends the agent (its calls denied,
naming why) until an admin transfers it; a person deactivated has their device revoked at
once, and their gateway stops syncing, keeps local policy and says so."""

import json
import re
import subprocess

import anyio
import httpx2 as httpx
import pytest

from conftest import connect, memory_server, text_of, wait_for
from test_hub import HUB_BIN, Hub, hub  # noqa: F401  (the hub fixture: SQLite and PostgreSQL)
from test_hub_identity import enroll_by_code
from test_hub_sign_in import signed_in_hub  # noqa: F401

pytestmark = pytest.mark.anyio

SCIM = "application/scim+json"


def hub_cli(hub: Hub, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(HUB_BIN), *args], env=hub.env, capture_output=True, text=True, check=check)


def scim_token(hub: Hub) -> str:
    return hub_cli(hub, "api-token", "create", "--role", "scim", "--name", "okta").stdout.strip()


def scim(hub: Hub, token: str, method: str, path: str, body: dict | None = None) -> httpx.Response:
    return httpx.request(method, f"{hub.url}/scim/v2{path}", json=body,
                         headers={"Authorization": f"Bearer {token}", "Content-Type": SCIM})


def provision(hub: Hub, token: str, email: str) -> str:
    made = scim(hub, token, "POST", "/Users", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": email, "active": True,
        "name": {"givenName": email.split("@")[0], "familyName": "Example"},
        "emails": [{"value": email, "primary": True, "type": "work"}]})
    assert made.status_code == 201, made.text
    return made.json()["id"]


async def eventually(act, holds, what: str, timeout: float = 30):
    """Does `act()` until `holds(result)`, up to `timeout` seconds; the last result."""
    deadline = anyio.current_time() + timeout
    while True:
        result = await act()
        if holds(result):
            return result
        if anyio.current_time() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {result}")
        await anyio.sleep(0.2)


def memory_gateway(make_gateway, tmp_path):
    # Reads run; a write would ask a person (the default policy); sync each second.
    return make_gateway({"memory": memory_server(tmp_path / "m.json")}, sync={"interval_secs": 1})


async def call(gw, tool: str, arguments: dict):
    async with connect(gw, "http", "memory") as client:
        return await client.call_tool(tool, arguments)


async def test_an_agent_acts_as_itself_asks_its_owner_and_is_suspended_with_its_owner(
        make_gateway, tmp_path, hub):
    made = hub_cli(hub, "agent", "create", "ci-runner", "--owner", "ana@example.com", "--approver",
                   "group:it-approvers", "--purpose", "nightly builds", "--review-date", "2020-01-01")
    token = made.stdout.strip()
    assert re.fullmatch(r"cse_[0-9a-f]{64}", token), "the token alone on stdout"
    gw = memory_gateway(make_gateway, tmp_path)
    # The agent's token enrolls only that agent's host.
    wrong = gw.cli("enroll", hub.url, token, check=False)
    assert wrong.returncode != 0 and "--agent ci-runner" in wrong.stderr
    gw.cli("enroll", hub.url, token, "--agent", "ci-runner", "--name", "ci-host")
    who = json.loads(gw.cli("whoami", "--json").stdout)
    assert (who["user"], who["user_verified"], who["owner"]) == ("agent:ci-runner", True, "ana@example.com")

    r = await call(gw, "read_graph", {})
    assert not r.is_error, text_of(r)
    # A write would ask; no one is at an agent's keyboard: it asks the owner through the hub
    # (issue 19), and never runs while it waits; the host withdraws it here.
    async with anyio.create_task_group() as tg:
        out = {}

        async def write():
            out["r"] = await call(gw, "create_entities",
                                  {"entities": [{"name": "by-agent", "entityType": "t", "observations": []}]})

        tg.start_soon(write)
        waiting = await anyio.to_thread.run_sync(lambda: wait_for(
            lambda: next(iter(gw.status()["approvals"]), None), timeout=30, what="the routed prompt"))
        assert waiting["route"]["route"]["approver"] == {"kind": "owner"}, waiting
        assert "by-agent" not in ((tmp_path / "m.json").read_text() if (tmp_path / "m.json").exists() else "")
        gw.cli("deny", waiting["id"])
    assert out["r"].is_error and "withdrew its request" in text_of(out["r"]), text_of(out["r"])
    assert "by-agent" not in ((tmp_path / "m.json").read_text() if (tmp_path / "m.json").exists() else "")
    gw.cli("sync", "--now")
    calls = [r for r in hub.records() if r["method"] == "tools/call"]
    assert {(r["tool"], r["decision"]) for r in calls} == {("read_graph", "allow"), ("create_entities", "ask")}
    assert all(r["user"] == "agent:ci-runner" and r["user_verified"] is True and r["owner"] == "ana@example.com"
               for r in calls)
    agents = hub.get("/v1/agents").json()
    assert agents[0]["name"] == "ci-runner" and agents[0]["review_overdue"] is True
    assert agents[0]["approvers"] == ["group:it-approvers"]

    # The IdP deactivates the owner (Okta's PATCH): the agent is suspended.
    token = scim_token(hub)
    ana = provision(hub, token, "ana@example.com")
    off = scim(hub, token, "PATCH", f"/Users/{ana}", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": False}}]})
    assert off.status_code == 200 and off.json()["active"] is False
    suspended = hub.get("/v1/agents").json()[0]
    assert "ana@example.com was deactivated" in suspended["suspended_why"]
    # Within one sync interval the agent's host denies every call, naming the reason.
    wait_for(lambda: json.loads(gw.cli("whoami", "--json").stdout)["suspended"], timeout=30,
             what="the host to learn of the suspension")

    await eventually(lambda: call(gw, "read_graph", {}),
                     lambda r: r.is_error and "suspended" in text_of(r) and "deactivated" in text_of(r),
                     "the suspended agent's read to be refused")
    # Resuming is refused while the owner stays deactivated; a transfer lifts it.
    resumed = hub_cli(hub, "agent", "resume", "ci-runner", check=False)
    assert resumed.returncode != 0 and "transfer" in resumed.stderr
    hub_cli(hub, "agent", "transfer", "ci-runner", "--owner", "ivan@example.com")
    wait_for(lambda: json.loads(gw.cli("whoami", "--json").stdout)["owner"] == "ivan@example.com", timeout=30,
             what="the host to learn of the new owner")
    await eventually(lambda: call(gw, "read_graph", {}), lambda r: not r.is_error, "the transferred agent to run")
    log = [(e["action"], e["detail"]) for e in hub.get("/v1/admin-log").json()]
    for action in ["agent-create", "scim-user-create", "scim-user-update", "scim-deprovision", "agent-transfer"]:
        assert any(a == action for a, _ in log), (action, log)
    assert any(a == "scim-deprovision" and "ci-runner" in d for a, d in log)


async def test_a_deactivated_persons_device_is_revoked_within_one_sync_interval(make_gateway, tmp_path,
                                                                               signed_in_hub):
    hub = signed_in_hub
    gw = memory_gateway(make_gateway, tmp_path)
    enroll_by_code(gw, hub, "nora@example.com")
    r = await call(gw, "read_graph", {})
    assert not r.is_error
    assert int(gw.cli("sync", "--now").stdout.strip()) > 0
    token = scim_token(hub)
    nora = provision(hub, token, "nora@example.com")
    # Entra ID's shape: a path and the string "False".
    off = scim(hub, token, "PATCH", f"/Users/{nora}", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "active", "value": "False"}]})
    assert off.status_code == 200, off.text
    device = next(d for d in hub.get("/v1/devices").json() if d["person"] == "nora@example.com")
    assert device["revoked_at"] and "deactivated" in device["revoked_why"]
    # The gateway hears it at its next sync: it warns, keeps local policy, drops grants.
    status = wait_for(lambda: (s := gw.status()).get("hub_warning") and s, timeout=30,
                      what="the gateway to learn it was revoked")
    assert "revoked" in status["hub_warning"]
    assert any(r["rule"] == "hub-revoked" for r in gw.audit())
    r = await call(gw, "read_graph", {})
    assert not r.is_error, "local policy stays in force"
    # Its credential opens nothing any more.
    refused = gw.cli("sync", "--now", check=False)
    assert refused.returncode != 0 and "revoked" in refused.stderr
    held = len(hub.records())
    assert len(hub.records()) == held
    # A SCIM call without the scim role, or with no token, changes nothing.
    assert scim(hub, hub.admin.replace("csk_", "csk_0"), "GET", "/Users").status_code == 401
    auditor = hub_cli(hub, "api-token", "create", "--role", "auditor").stdout.strip()
    assert scim(hub, auditor, "DELETE", f"/Users/{nora}").status_code == 403
    assert scim(hub, token, "GET", f"/Users/{nora}").json()["active"] is False
    listed = scim(hub, token, "GET", '/Users?filter=userName eq "nora@example.com"').json()
    assert listed["totalResults"] == 1 and listed["Resources"][0]["id"] == nora
