"""`make bench-routed`: how fast a routed approval travels through the hub (issue 19).

Not collected by `make test` (its name does not start with `test_`); run with
`make bench-routed`. Against a real hub (SQLite, the real OpenID provider's verified
people), with raw device credentials so that only the hub and its long polls are
measured, not a person: an agent's device raises a request; the owner's device, holding
the long poll of `GET /v1/approvals/waiting`, sees it; the owner answers; the agent's
device, holding the long poll of `GET /v1/approvals/{id}`, sees the answer. Side by side
in one run, the same round trips with both devices polling once a second instead (what
the devices would do without long polls). Reports medians and p95 in milliseconds.
"""

from __future__ import annotations

import statistics
import subprocess
import threading
import time
import uuid

import httpx2 as httpx

from test_hub import HUB_BIN
from test_hub_identity import raw_device
from test_hub_sign_in import signed_in_hub  # noqa: F401  (the fixture: a hub with [oidc])

ROUNDS = 30


def agent_device(hub) -> str:
    token = subprocess.run([str(HUB_BIN), "agent", "create", "bench-agent", "--owner", "nora@example.com"],
                           env=hub.env, capture_output=True, text=True, check=True).stdout.strip()
    r = httpx.post(f"{hub.url}/v1/enroll", json={"token": token, "name": "bench-host", "agent": "bench-agent"})
    assert r.status_code == 200, r.text
    return r.json()["credential"]


def request(i: int) -> dict:
    return {"id": uuid.uuid4().hex, "client": "bench", "server": "memory", "tool": "create_entities",
            "class": "write", "arguments": {"n": i}, "args_hash": f"{i:064x}", "rule": None, "reason": "bench",
            "policy_version": "v", "approver": "owner", "self_approval": True, "wait_secs": 600}


def round_trip(hub, agent: str, owner: str, i: int, long_poll: bool) -> tuple[float, float]:
    """(raise → the owner's device has it, answer → the agent's device has it), in ms."""
    auth = lambda c: {"Authorization": f"Bearer {c}"}  # noqa: E731
    client = httpx.Client(timeout=60)
    tag = client.get(f"{hub.url}/v1/approvals/waiting", headers=auth(owner)).headers.get("etag")
    body = request(i)
    seen: dict = {}

    def owner_watch():
        while True:
            if long_poll:
                r = client.get(f"{hub.url}/v1/approvals/waiting", params={"wait": 25},
                               headers={**auth(owner), "If-None-Match": tag or ""})
            else:
                time.sleep(1.0)
                r = client.get(f"{hub.url}/v1/approvals/waiting", headers=auth(owner))
            if r.status_code == 200 and any(w["id"] == body["id"] for w in r.json()["waiting"]):
                seen["owner"] = time.perf_counter()
                seen["request"] = next(w for w in r.json()["waiting"] if w["id"] == body["id"])
                return

    watcher = threading.Thread(target=owner_watch)
    watcher.start()
    raised = time.perf_counter()
    assert client.post(f"{hub.url}/v1/approvals", json=body, headers=auth(agent)).status_code == 201
    watcher.join(60)
    delivered = (seen["owner"] - raised) * 1000

    def agent_watch():
        while True:
            if long_poll:
                r = client.get(f"{hub.url}/v1/approvals/{body['id']}", params={"wait": 25}, headers=auth(agent))
            else:
                time.sleep(1.0)
                r = client.get(f"{hub.url}/v1/approvals/{body['id']}", headers=auth(agent))
            if r.json()["state"] != "pending":
                seen["agent"] = time.perf_counter()
                return

    watcher = threading.Thread(target=agent_watch)
    watcher.start()
    answered = time.perf_counter()
    w = seen["request"]
    r = client.post(f"{hub.url}/v1/approvals/{body['id']}/answer", headers=auth(owner),
                    json={"verdict": "allow", "nonce": w["nonce"], "args_hash": w["args_hash"]})
    assert r.status_code == 200, r.text
    watcher.join(60)
    return delivered, (seen["agent"] - answered) * 1000


def stats(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"median {statistics.median(xs):7.1f} ms   p95 {xs[int(0.95 * (len(xs) - 1))]:7.1f} ms"


def test_routed_approval_latency(signed_in_hub):
    hub = signed_in_hub
    agent = agent_device(hub)
    owner = raw_device(hub, "nora@example.com")
    results = {True: ([], []), False: ([], [])}
    for i in range(ROUNDS):
        # Interleaved, so both ways see the same machine.
        for long_poll in (True, False) if i % 2 == 0 else (False, True):
            d, a = round_trip(hub, agent, owner, i * 2 + long_poll, long_poll)
            results[long_poll][0].append(d)
            results[long_poll][1].append(a)
    for long_poll, label in ((True, "long poll"), (False, "poll each 1 s")):
        delivered, answered = results[long_poll]
        print(f"\n{label:14} request → approver's device: {stats(delivered)}")
        print(f"{label:14} answer  → asker's device:    {stats(answered)}")
    assert statistics.median(results[True][0]) < statistics.median(results[False][0])
