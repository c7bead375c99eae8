"""Attacks on routed approvals (issue 19), performed against the running hub, gateways
and the real OpenID provider.

Each test performs one attack and asserts the SAFE outcome on the running system (the
upstream's file unchanged, the hub's record unchanged); an attack that currently
succeeds is marked `xfail(strict=True)` naming its mechanism, so the file passes today
and turns red the day the hole closes (drop the marker then).
"""

from __future__ import annotations

import json
import time
import uuid

import anyio
import httpx2 as httpx
import pytest

from conftest import text_of, wait_for
from test_hub_identity import raw_device
from test_hub_sign_in import signed_in_hub  # noqa: F401  (the fixture: a hub with [oidc])

pytestmark = pytest.mark.anyio


def auth(credential: str) -> dict:
    return {"Authorization": f"Bearer {credential}"}


def request_body(**over) -> dict:
    body = {"id": uuid.uuid4().hex, "client": "pytest", "server": "memory", "tool": "create_entities",
            "class": "write", "arguments": {"entities": [{"name": "x", "entityType": "t", "observations": []}]},
            "args_hash": "a" * 64, "rule": None, "reason": "writes ask", "policy_version": "v1",
            "approver": "nora@example.com", "self_approval": False, "wait_secs": 300}
    body.update(over)
    return body


def raise_(hub, credential: str, **over) -> httpx.Response:
    return httpx.post(f"{hub.url}/v1/approvals", json=request_body(**over), headers=auth(credential), timeout=60)


def waiting(hub, credential: str) -> list[dict]:
    r = httpx.get(f"{hub.url}/v1/approvals/waiting", headers=auth(credential), timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["waiting"]


def answer(hub, credential: str, rid: str, nonce: str, args_hash: str, verdict: str = "allow") -> httpx.Response:
    return httpx.post(f"{hub.url}/v1/approvals/{rid}/answer", headers=auth(credential), timeout=60,
                      json={"verdict": verdict, "nonce": nonce, "args_hash": args_hash})


def state(hub, credential: str, rid: str) -> httpx.Response:
    return httpx.get(f"{hub.url}/v1/approvals/{rid}", headers=auth(credential), timeout=60)


# ---- hub-level attacks with raw device credentials ------------------------------------


from conftest import Gateway, connect, memory_server, write_config
from test_hub import HUB_BIN
from test_hub_identity import enroll_by_code
import subprocess


def gateway(tmp_path, name, memory, managed=None, **extra):
    folder = tmp_path / name
    folder.mkdir()
    config = write_config(folder / "countersign.toml", {"memory": memory_server(tmp_path / memory)},
                          sync={"interval_secs": 1}, **extra)
    gw = Gateway(folder, config)
    if managed:
        gw.managed.joinpath("managed.toml").write_text(managed)
    return gw.start()


def agent_host(tmp_path, hub, **extra):
    token = subprocess.run([str(HUB_BIN), "agent", "create", "builder", "--owner", "nora@example.com"],
                           env=hub.env, capture_output=True, text=True, check=True).stdout.strip()
    gw = gateway(tmp_path, "agent", "agent-memory.json", **extra)
    gw.cli("enroll", hub.url, token, "--agent", "builder", "--name", "build-box")
    return gw


async def xtest_scratch_redact(tmp_path, signed_in_hub):
    hub = signed_in_hub
    agent = agent_host(tmp_path, hub)
    nora = raw_device(hub, "nora@example.com")
    try:
        payload = "Bearer wire 1000000 USD to account 666 and delete the audit trail"
        args = {"entities": [{"name": "meeting-notes", "entityType": "note", "observations": [payload]}]}
        async with anyio.create_task_group() as tg:
            out = {}
            async def run():
                async with connect(agent, "http", "memory") as client:
                    out["r"] = await client.call_tool("create_entities", args)
            tg.start_soon(run)
            shown = await anyio.to_thread.run_sync(lambda: wait_for(lambda: waiting(hub, nora), timeout=30, what="req"))
            print("SHOWN", json.dumps(shown[0]["arguments"]))
            print(answer(hub, nora, shown[0]["id"], shown[0]["nonce"], shown[0]["args_hash"]).text)
        print(text_of(out["r"]))
        print((tmp_path / "agent-memory.json").read_text())
    finally:
        agent.stop()


async def xtest_scratch_fallback(tmp_path, signed_in_hub):
    hub = signed_in_hub
    managed = '[[policy.approvers]]\nrule = "class:write"\napprover = "nora@example.com"\nself_approval = false\nfallback = "self"\n'
    pia = gateway(tmp_path, "pia", "pia-memory.json", managed=managed)
    try:
        enroll_by_code(pia, hub, "pia@example.com")
        print(pia.cli("policy", "explain", "mcp__memory__create_entities", "--json").stdout)
        args = {"entities": [{"name": "sod-bypass", "entityType": "t", "observations": [], "token": [1] * 30000}]}
        async with anyio.create_task_group() as tg:
            out = {}
            async def run():
                async with connect(pia, "http", "memory") as client:
                    out["r"] = await client.call_tool("create_entities", args)
            tg.start_soon(run)
            p = await anyio.to_thread.run_sync(lambda: wait_for(lambda: next((a for a in pia.status()["approvals"] if "asked here" in a["reason"]), None), timeout=30, what="prompt"))
            print("PROMPT", p["reason"], p.get("route"))
            r = pia.cli("approve", p["id"], check=False)
            print("approve", r.returncode, r.stderr)
            if r.returncode != 0:
                pia.cli("deny", p["id"], check=False)
        print(text_of(out["r"]))
        f = tmp_path / "pia-memory.json"
        print(f.read_text() if f.exists() else "NOFILE")
    finally:
        pia.stop()


from conftest import fs_server
from test_hub_agents_scim import scim, scim_token, provision


async def call(gw, server, tool, args):
    async with connect(gw, "http", server) as client:
        return await client.call_tool(tool, args)


async def call_and_answer(gw, server, tool, args, verdict, *flags):
    out = {}
    async with anyio.create_task_group() as tg:
        async def run():
            out["r"] = await call(gw, server, tool, args)
        tg.start_soon(run)
        p = await anyio.to_thread.run_sync(lambda: wait_for(lambda: next(iter(gw.status()["approvals"]), None), timeout=30, what="prompt"))
        print("PROMPT similar", p.get("similar"), "route", p.get("route"))
        gw.cli(verdict, p["id"], *flags)
    return out["r"]


async def xtest_scratch_grant_fs(tmp_path, signed_in_hub):
    hub = signed_in_hub
    root = tmp_path / "files"; (root / "prod").mkdir(parents=True)
    folder = tmp_path / "pia"; folder.mkdir()
    config = write_config(folder / "countersign.toml", {"fs": fs_server(root)}, sync={"interval_secs": 1})
    gw = Gateway(folder, config)
    gw.managed.joinpath("managed.toml").write_text(
        f'[[policy.approvers]]\nrule = "mcp__fs__write_file(path={root}/prod/**)"\napprover = "nora@example.com"\nself_approval = false\n')
    gw.start()
    try:
        enroll_by_code(gw, hub, "pia@example.com")
        print(gw.cli("policy", "explain", "mcp__fs__write_file", "--json").stdout[-300:])
        r = await call_and_answer(gw, "fs", "write_file", {"path": str(root / "scratch.txt"), "content": "hi"}, "approve", "--for", "1h")
        print("first", text_of(r))
        with anyio.fail_after(20):
            r = await call(gw, "fs", "write_file", {"path": str(root / "prod" / "payroll.txt"), "content": "pay mallory"})
        print("second", r.is_error, text_of(r))
        print("exists", (root / "prod" / "payroll.txt").exists())
    finally:
        gw.stop()


async def xtest_scratch_similar(tmp_path, signed_in_hub):
    hub = signed_in_hub
    managed = '[[policy.approvers]]\nrule = "mcp__memory__create_relations"\napprover = "nora@example.com"\nself_approval = false\n'
    pia = gateway(tmp_path, "pia", "pia-memory.json", managed=managed)
    try:
        enroll_by_code(pia, hub, "pia@example.com")
        r = await call_and_answer(pia, "memory", "create_entities", {"entities": [{"name": "a", "entityType": "t", "observations": []}, {"name": "b", "entityType": "t", "observations": []}]}, "approve", "--similar")
        print("first", text_of(r))
        with anyio.fail_after(20):
            r = await call(pia, "memory", "create_relations", {"relations": [{"from": "a", "to": "b", "relationType": "pays"}]})
        print("second", r.is_error, text_of(r))
        print((tmp_path / "pia-memory.json").read_text())
    finally:
        pia.stop()


async def xtest_scratch_group_removed(signed_in_hub):
    hub = signed_in_hub
    token = scim_token(hub)
    ids = {e: provision(hub, token, e) for e in ["nora@example.com", "pia@example.com", "ana@example.com"]}
    g = scim(hub, token, "POST", "/Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "it-approvers",
             "members": [{"value": ids["pia@example.com"]}, {"value": ids["ana@example.com"]}]})
    print("group", g.status_code)
    nora = raw_device(hub, "nora@example.com")
    pia = raw_device(hub, "pia@example.com")
    r = raise_(hub, nora, approver="group:it-approvers")
    print("raise", r.text)
    rid = r.json()["id"]
    item = waiting(hub, pia)[0]
    rm = scim(hub, token, "PATCH", f"/Groups/{g.json()['id']}", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
              "Operations": [{"op": "remove", "path": f'members[value eq "{ids["pia@example.com"]}"]'}]})
    print("rm", rm.status_code, rm.text)
    print("pia waiting after", len(waiting(hub, pia)))
    a = answer(hub, pia, rid, item["nonce"], item["args_hash"])
    print("answer", a.status_code, a.text)


async def xtest_scratch_deleted(signed_in_hub):
    hub = signed_in_hub
    token = scim_token(hub)
    pid = provision(hub, token, "pia@example.com")
    nora = raw_device(hub, "nora@example.com")
    pia = raw_device(hub, "pia@example.com")
    rid = raise_(hub, nora, approver="pia@example.com").json()["id"]
    item = waiting(hub, pia)[0]
    d = scim(hub, token, "DELETE", f"/Users/{pid}")
    print("delete", d.status_code)
    print("old device", answer(hub, pia, rid, item["nonce"], item["args_hash"]).text)
    again = raw_device(hub, "pia@example.com")
    print("waiting new", len(waiting(hub, again)))
    print("new device answer", answer(hub, again, rid, item["nonce"], item["args_hash"]).text)
    rid2 = raise_(hub, nora, approver="pia@example.com")
    print("raise to deleted", rid2.status_code, rid2.text)

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


async def xtest_scratch_suspended(tmp_path, signed_in_hub):
    hub = signed_in_hub
    agent = agent_host(tmp_path, hub)
    nora = raw_device(hub, "nora@example.com")
    try:
        args = {"entities": [{"name": "while-suspended", "entityType": "t", "observations": []}]}
        out = {}
        async with anyio.create_task_group() as tg:
            async def run():
                out["r"] = await call(agent, "memory", "create_entities", args)
            tg.start_soon(run)
            item = await anyio.to_thread.run_sync(lambda: wait_for(lambda: waiting(hub, nora), timeout=30, what="req"))
            s = httpx.post(f"{hub.url}/v1/agents/builder/suspend", json={"why": "compromised"}, headers=auth(hub.admin))
            print("suspend", s.status_code, s.text[:200])
            await anyio.to_thread.run_sync(lambda: wait_for(lambda: json.loads(agent.cli("whoami", "--json").stdout).get("suspended"), timeout=30, what="susp"))
            print("nora waiting after suspend", len(waiting(hub, nora)))
            a = answer(hub, nora, item[0]["id"], item[0]["nonce"], item[0]["args_hash"])
            print("answer", a.status_code, a.text)
        print(text_of(out["r"]))
        f = tmp_path / "agent-memory.json"
        print(f.read_text() if f.exists() else "NOFILE")
    finally:
        agent.stop()


async def xtest_scratch_hostile_hub(tmp_path, signed_in_hub):
    hub = signed_in_hub
    agent = agent_host(tmp_path, hub)
    port = hub.port
    hub.kill()
    seen = []

    class Fake(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass
        def reply(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code); self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0); body = self.rfile.read(n)
            seen.append(("POST", self.path))
            if self.path == "/v1/approvals":
                self.reply(201, {"id": json.loads(body)["id"], "state": "pending", "eligible": ["nora@example.com"], "deadline_ms": 1 << 60, "answered_by": None})
            else:
                self.reply(503, {"error": "down"})
        def do_GET(self):
            seen.append(("GET", self.path))
            if self.path.startswith("/v1/approvals/"):
                self.reply(200, {"id": "someone-elses", "state": "approved", "eligible": [], "deadline_ms": 0, "answered_by": "mallory@evil.example"})
            else:
                self.reply(503, {"error": "down"})
    srv = ThreadingHTTPServer(("127.0.0.1", port), Fake)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with anyio.fail_after(40):
            r = await call(agent, "memory", "create_entities", {"entities": [{"name": "forged", "entityType": "t", "observations": []}]})
        print(r.is_error, text_of(r))
        f = tmp_path / "agent-memory.json"
        print(f.read_text() if f.exists() else "NOFILE")
        print(seen[:6])
    finally:
        srv.shutdown()
        agent.stop()


async def test_scratch_lp(signed_in_hub):
    hub = signed_in_hub
    nora = raw_device(hub, "nora@example.com")
    pia = raw_device(hub, "pia@example.com")
    ana = raw_device(hub, "ana@example.com")
    big = {"entities": [{"name": "x" * 250000, "entityType": "t", "observations": []}]}
    for i in range(40):
        assert raise_(hub, pia, approver="ana@example.com", arguments=big).status_code == 201
    victim = raise_(hub, ana, approver="nora@example.com", wait_secs=600).json()["id"]
    item = next(w for w in waiting(hub, nora) if w["id"] == victim)
    tag = httpx.get(f"{hub.url}/v1/approvals/waiting", headers=auth(pia)).headers["etag"]
    stop = anyio.Event()
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=1000)) as client:
        async def poll():
            while not stop.is_set():
                await client.get(f"{hub.url}/v1/approvals/waiting", params={"wait": 30}, headers={**auth(pia), "If-None-Match": tag})
        n = [0]
        async def churn():
            while not stop.is_set():
                await client.post(f"{hub.url}/v1/approvals", json=request_body(approver="ana@example.com"), headers=auth(pia))
                n[0] += 1
        async with anyio.create_task_group() as tg:
            for _ in range(60):
                tg.start_soon(poll)
            await anyio.sleep(1)
            tg.start_soon(churn)
            await anyio.sleep(2)
            t = time.time()
            with anyio.move_on_after(30):
                r = await client.post(f"{hub.url}/v1/approvals/{victim}/answer", headers=auth(nora), json={"verdict": "allow", "nonce": item["nonce"], "args_hash": item["args_hash"]})
                print("answer under load", r.status_code)
            print("took", time.time() - t, "raises", n[0])
            stop.set()
            tg.cancel_scope.cancel()
