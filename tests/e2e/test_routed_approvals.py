"""Issue 19: approvals that reach the right person, through the hub.

Three gateways and a hub on this machine, each gateway in its own data folder: nora's
laptop (the agent's owner), pia's laptop, and an enterprise agent's host; the hub with the
real OpenID provider, so nora and pia are verified people. (The gateways share this
test's one keyring session: their keychain items are named by device, so they never meet.
The approvers here answer with `countersign approve`, the headless approver; the app's
notification path is the same `Approver` seam, tested in tests/desktop.)

- The agent's write asks its owner: nora's gateway shows the request (who asks, from
  which device); she approves; the agent's call runs (the memory file has it) and its
  record says who approved, through which request.
- Separation of duties, eligibility and forged answers are refused by the hub and kept
  in its admin log; the asker can withdraw; with the hub down the call is refused at once
  (fail closed) and never reaches the server.
- A routed approval that takes longer than the client waits reaches the client as the
  documented "pending" answer, and its retry runs once the owner approves.
"""

from __future__ import annotations

import json
import subprocess

import anyio
import httpx2 as httpx
import pytest

from conftest import Gateway, connect, memory_server, text_of, wait_for, write_config
from test_hub import HUB_BIN
from test_hub_identity import enroll_by_code, raw_device
from test_hub_sign_in import signed_in_hub  # noqa: F401  (the fixture: a hub with [oidc])

pytestmark = pytest.mark.anyio


def gateway(tmp_path, name: str, memory: str, **extra) -> Gateway:
    folder = tmp_path / name
    folder.mkdir()
    config = write_config(folder / "countersign.toml", {"memory": memory_server(tmp_path / memory)},
                          sync={"interval_secs": 1}, **extra)
    return Gateway(folder, config).start()


def agent_host(tmp_path, hub, **extra) -> Gateway:
    token = subprocess.run([str(HUB_BIN), "agent", "create", "builder", "--owner", "nora@example.com"],
                           env=hub.env, capture_output=True, text=True, check=True).stdout.strip()
    gw = gateway(tmp_path, "agent", "agent-memory.json", **extra)
    gw.cli("enroll", hub.url, token, "--agent", "builder", "--name", "build-box")
    return gw


def entity(name: str) -> dict:
    return {"entities": [{"name": name, "entityType": "note", "observations": []}]}


def admin_log(hub) -> list[dict]:
    return hub.get("/v1/admin-log").json()


async def call_in_background(gw: Gateway, tg, tool: str, args: dict) -> dict:
    out: dict = {}

    async def run():
        async with connect(gw, "http", "memory") as client:
            out["r"] = await client.call_tool(tool, args)

    tg.start_soon(run)
    return out


async def waiting_prompt(gw: Gateway, what: str) -> dict:
    """The first prompt `gw` shows, waited for off the event loop (the call runs on it)."""
    return await anyio.to_thread.run_sync(
        lambda: wait_for(lambda: next(iter(gw.status()["approvals"]), None), timeout=30, what=what))


async def test_an_agents_write_asks_its_owner_who_approves_from_her_own_gateway(tmp_path, signed_in_hub):
    hub = signed_in_hub
    nora = gateway(tmp_path, "nora", "nora-memory.json")
    pia = gateway(tmp_path, "pia", "pia-memory.json")
    agent = agent_host(tmp_path, hub)
    try:
        enroll_by_code(nora, hub, "nora@example.com")
        enroll_by_code(pia, hub, "pia@example.com")
        explained = json.loads(agent.cli("policy", "explain", "mcp__memory__create_entities", "--json").stdout)
        assert explained["decision"] == "ask", explained
        async with anyio.create_task_group() as tg:
            out = await call_in_background(agent, tg, "create_entities", entity("from-agent"))
            # The agent's host shows it waiting for the owner, through the hub.
            waiting = await waiting_prompt(agent, "the agent's prompt")
            assert waiting["route"]["route"]["approver"] == {"kind": "owner"}, waiting
            refused = agent.cli("approve", waiting["id"], check=False)
            assert refused.returncode != 0 and "through the hub" in refused.stderr, "the asker cannot approve it"
            # nora's gateway shows the request: who asks, from which device.
            shown = await waiting_prompt(nora, "the request on the owner's gateway")
            assert shown["asked_by"]["requester"] == "agent:builder" and shown["asked_by"]["device"] == "build-box"
            assert shown["tool"] == "create_entities" and "from-agent" in json.dumps(shown["arguments"])
            # pia is not an approver: nothing waits for her.
            assert pia.status()["approvals"] == []
            nora.cli("approve", shown["id"])
        r = out["r"]
        assert not r.is_error, text_of(r)
        assert "from-agent" in (tmp_path / "agent-memory.json").read_text()
        record = next(x for x in agent.audit() if x.get("tool") == "create_entities")
        assert record["approval"] == "approved" and "approved by nora@example.com through the hub" in record["reason"]
        assert record["approver"] == "nora@example.com" and record["request_id"] == waiting["id"], record
        # The hub keeps who approved, filterable.
        agent.cli("sync", "--now")
        at_hub = [x for x in hub.get("/v1/audit", approver="nora@example.com").json()
                  if x.get("tool") == "create_entities"]
        assert at_hub and at_hub[0]["request_id"] == waiting["id"] and at_hub[0]["user"] == "agent:builder", at_hub
        # The entitlements view says who approved what.
        builder = next(i for i in hub.get("/v1/entitlements").json() if i["user"] == "agent:builder")
        used = next(t for t in builder["tools"] if t["tool"] == "create_entities")
        assert used["approved_by"] == {"nora@example.com": 1}, used
        answered = wait_for(lambda: [x for x in nora.audit() if x.get("rule") == "approval-answered"], timeout=20,
                            what="nora's own record of her answer")
        assert "answered allow" in answered[0]["reason"] and "agent:builder" in answered[0]["reason"]
        log = admin_log(hub)
        actions = [e["action"] for e in log]
        assert "approval-requested" in actions and "approval-answered" in actions, actions
        assert any("by nora@example.com" in e["detail"] for e in log if e["action"] == "approval-answered")
        assert nora.status()["approvals"] == [], "the answered request is taken down"
    finally:
        for gw in (nora, pia, agent):
            gw.stop()


async def test_forged_answers_separation_of_duties_and_ineligible_approvers_are_refused(tmp_path, signed_in_hub):
    hub = signed_in_hub
    agent = agent_host(tmp_path, hub)
    nora = raw_device(hub, "nora@example.com")
    pia = raw_device(hub, "pia@example.com")
    try:
        async with anyio.create_task_group() as tg:
            out = await call_in_background(agent, tg, "create_entities", entity("forged"))
            await waiting_prompt(agent, "the agent's prompt")
            listed = await anyio.to_thread.run_sync(lambda: wait_for(
                lambda: httpx.get(f"{hub.url}/v1/approvals/waiting",
                                  headers={"Authorization": f"Bearer {nora}"}).json()["waiting"],
                timeout=30, what="the request at the hub"))
            request = listed[0]
            rid = request["id"]

            def answer(credential: str, **body) -> httpx.Response:
                full = {"verdict": "allow", "nonce": request["nonce"], "args_hash": request["args_hash"], **body}
                return httpx.post(f"{hub.url}/v1/approvals/{rid}/answer", json=full,
                                  headers={"Authorization": f"Bearer {credential}"})

            # An identity that is not an approver, even holding the nonce.
            r = answer(pia)
            assert r.status_code == 403 and "not an approver" in r.text, r.text
            assert httpx.get(f"{hub.url}/v1/approvals/waiting",
                             headers={"Authorization": f"Bearer {pia}"}).json()["waiting"] == []
            # The right approver with a wrong nonce, or other arguments.
            r = answer(nora, nonce="0" * 32)
            assert r.status_code == 409 and "nonce" in r.text, r.text
            r = answer(nora, args_hash="f" * 64)
            assert r.status_code == 409 and "arguments" in r.text, r.text
            # The agent's own device cannot answer, nor read what waits.
            assert not (tmp_path / "agent-memory.json").exists() or "forged" not in (
                tmp_path / "agent-memory.json").read_text()
            # The asker withdraws: denied on its own machine, withdrawn at the hub.
            agent.cli("deny", (await waiting_prompt(agent, "the prompt"))["id"])
        r = out["r"]
        assert r.is_error and "withdrew its request" in text_of(r), text_of(r)
        assert not (tmp_path / "agent-memory.json").exists() or "forged" not in (
            tmp_path / "agent-memory.json").read_text()
        late = answer(nora)
        assert late.status_code == 410, late.text
        refusals = [e for e in admin_log(hub) if e["action"] == "approval-refused"]
        assert len(refusals) >= 4, refusals
        assert any("not an approver" in e["detail"] for e in refusals)
    finally:
        agent.stop()


async def test_separation_of_duties_keeps_the_asker_from_answering(tmp_path, signed_in_hub):
    """pia's policy routes her writes to the agents' owners' group… here, to a person list
    that includes herself with `self_approval = false`: the hub never lets her answer."""
    hub = signed_in_hub
    pia_gw = gateway(tmp_path, "pia", "pia-memory.json", policy={"approvers": [
        {"rule": "class:write", "approver": "pia@example.com", "self_approval": False}]})
    try:
        enroll_by_code(pia_gw, hub, "pia@example.com")
        async with connect(pia_gw, "http", "memory") as client:
            r = await client.call_tool("create_entities", entity("own"))
        # Nobody but pia is named, and she may not answer her own request: refused at once.
        assert r.is_error and "nobody can answer" in text_of(r), text_of(r)
        assert not (tmp_path / "pia-memory.json").exists() or "own" not in (tmp_path / "pia-memory.json").read_text()
    finally:
        pia_gw.stop()


async def test_with_the_hub_down_a_routed_call_is_refused_at_once(tmp_path, signed_in_hub):
    hub = signed_in_hub
    agent = agent_host(tmp_path, hub)
    try:
        hub.kill()
        with anyio.fail_after(30):
            async with connect(agent, "http", "memory") as client:
                r = await client.call_tool("create_entities", entity("offline"))
        assert r.is_error and "the hub could not ask them" in text_of(r), text_of(r)
        assert not (tmp_path / "agent-memory.json").exists() or "offline" not in (
            tmp_path / "agent-memory.json").read_text()
        record = next(x for x in agent.audit() if x.get("tool") == "create_entities")
        assert "not asked" in record["reason"], record
    finally:
        agent.stop()


async def test_a_slow_approval_reaches_the_client_as_pending_and_its_retry_runs(tmp_path, signed_in_hub):
    hub = signed_in_hub
    nora = gateway(tmp_path, "nora", "nora-memory.json")
    agent = agent_host(tmp_path, hub, gateway={"approval_pending_after_secs": 2, "approval_timeout_secs": 600})
    try:
        enroll_by_code(nora, hub, "nora@example.com")
        async with connect(agent, "http", "memory") as client:
            first = await client.call_tool("create_entities", entity("slow"))
            # Not a timeout: the documented pending answer, naming who answers.
            assert first.is_error and "holding" in text_of(first) and "the agent's owner" in text_of(first), text_of(first)
            shown = await waiting_prompt(nora, "the request on the owner's gateway")
            nora.cli("approve", shown["id"])
            await anyio.to_thread.run_sync(lambda: wait_for(
                lambda: any(x.get("rule") == "grant-issued" for x in agent.audit()), timeout=30,
                what="the approval to reach the agent's host"))
            again = await client.call_tool("create_entities", entity("slow"))
        assert not again.is_error, text_of(again)
        assert "slow" in (tmp_path / "agent-memory.json").read_text()
    finally:
        nora.stop()
        agent.stop()


async def test_a_call_routed_to_the_askers_manager_reaches_the_manager_the_idp_named(tmp_path, signed_in_hub):
    """pia's policy routes her writes to her manager; the IdP provisions nora as pia's
    manager over SCIM (Entra's enterprise extension); nora's gateway shows the request and
    her approval runs pia's call. Before the IdP names one, the call is refused at once."""
    from test_hub_agents_scim import provision, scim, scim_token

    hub = signed_in_hub
    routed = {"approvers": [{"rule": "class:write", "approver": "manager", "self_approval": False}]}
    pia = gateway(tmp_path, "pia", "pia-memory.json", policy=routed)
    nora = gateway(tmp_path, "nora", "nora-memory.json")
    try:
        enroll_by_code(pia, hub, "pia@example.com")
        enroll_by_code(nora, hub, "nora@example.com")
        token = scim_token(hub)
        nora_id = provision(hub, token, "nora@example.com")
        pia_id = provision(hub, token, "pia@example.com")
        async with connect(pia, "http", "memory") as client:
            r = await client.call_tool("create_entities", entity("no-manager-yet"))
        assert r.is_error and "has not provisioned one" in text_of(r), text_of(r)
        ext = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        patched = scim(hub, token, "PATCH", f"/Users/{pia_id}", {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Add", "path": f"{ext}:manager", "value": nora_id}]})
        assert patched.status_code == 200 and patched.json()[ext]["manager"] == {"value": nora_id}, patched.text
        async with anyio.create_task_group() as tg:
            out = await call_in_background(pia, tg, "create_entities", entity("for-the-manager"))
            shown = await waiting_prompt(nora, "the request on the manager's gateway")
            assert shown["asked_by"]["requester"] == "pia@example.com", shown
            nora.cli("approve", shown["id"])
        assert not out["r"].is_error, text_of(out["r"])
        assert "for-the-manager" in (tmp_path / "pia-memory.json").read_text()
        record = next(x for x in pia.audit() if "for-the-manager" in json.dumps(x.get("arguments")))
        assert record["approver"] == "nora@example.com", record
    finally:
        pia.stop()
        nora.stop()
