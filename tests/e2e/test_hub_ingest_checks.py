"""The hub's own checks on what a device sends (security case 24 at the hub, issue 16):
a record or outcome whose contents do not match its hash raises a `hash` alert, and a
record id sent again with other contents never replaces the copy the hub holds and raises
an alert. Batches are posted straight to a running `countersign-hub` (SQLite and
PostgreSQL) with a device credential, as a device that edits its journal would send them;
the hashes are computed as the journal computes them (test_stored_history.chain_hash)."""

import uuid

import httpx2 as httpx
import pytest

from test_hub import hub  # noqa: F401 (fixture)
from test_stored_history import RECORD_COLUMNS, chain_hash, chained, record_hash

GENESIS = "0" * 64


def enroll(hub) -> dict:
    r = httpx.post(f"{hub.url}/v1/enroll", json={"token": hub.enrollment_token(), "name": "laptop"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['credential']}"}


def record(seq: int, prev: str, tool: str) -> dict:
    """One chained wire record, hashed over its contents."""
    r = {"seq": seq, "id": uuid.uuid4().hex, "time": f"2026-01-01T00:00:{seq:02d}Z", "kind": "call", "user": "ana",
         "device": "laptop", "client": "pytest", "client_name": "cli", "client_version": "1", "session": "s1",
         "server": "memory", "tool": tool, "method": "tools/call", "arguments": "{}", "decision": "allow",
         "rule": "allow:mcp__memory", "reason": "allowed", "approval": None, "policy_version": "sha256:0123456789abcdef",
         "class": "read", "label": None, "prev_hash": prev}
    r["hash"] = rehash(r)
    return r


def rehash(r: dict) -> str:
    return record_hash(r["prev_hash"], chained([r.get(c) for c in RECORD_COLUMNS]))


def outcome(r: dict, what: str = "ok") -> dict:
    o = {"record_id": r["id"], "time": r["time"], "outcome": what, "duration_ms": 3.0, "detail": None}
    o["hash"] = chain_hash(b"countersign-outcome-v1\n", r["hash"], [o["record_id"], o["time"], what, "3", None])
    return o


def send(hub, device: dict, records: list, outcomes: list | None = None) -> dict:
    r = httpx.post(f"{hub.url}/v1/ingest", json={"records": records, "outcomes": outcomes or []}, headers=device)
    assert r.status_code == 200, r.text
    return r.json()


def alerts(hub, kind: str) -> list[str]:
    return [a["detail"] for a in hub.alerts() if a["kind"] == kind]


def held(hub, record_id: str) -> list[dict]:
    return [r for r in hub.records() if r["id"] == record_id]


def test_sec_24_contents_that_do_not_match_their_hash_raise_a_hash_alert(hub):
    device = enroll(hub)
    first = record(1, GENESIS, "read_graph")
    second = record(2, first["hash"], "read_graph")
    third = record(3, second["hash"], "read_graph")
    ack = send(hub, device, [first, second], [outcome(first), outcome(second)])
    assert ack["records"] == [first["id"], second["id"]] and ack["outcomes"] == [first["id"], second["id"]]
    assert hub.alerts() == [], "a batch whose hashes hold raises nothing"
    # Changed after hashing: the call made into a deletion, an outcome turned to an error.
    third["tool"] = "delete_entities"
    late = {**outcome(third), "outcome": "error"}
    send(hub, device, [third], [late])
    details = alerts(hub, "hash")
    assert any(f"record {third['id']} (seq 3) does not match its hash" in d for d in details), hub.alerts()
    assert any(f"the outcome of record {third['id']} does not match its hash" in d for d in details), hub.alerts()
    assert len(details) == 2 and not alerts(hub, "gap"), hub.alerts()
    stored = held(hub, third["id"])
    assert stored and stored[0]["tool"] == "delete_entities", "stored as sent, and flagged"


def test_sec_24_a_record_sent_again_with_other_contents_never_replaces_the_first(hub):
    device = enroll(hub)
    first = record(1, GENESIS, "read_graph")
    send(hub, device, [first], [outcome(first)])
    # The same record again: a replay, acknowledged, nothing raised.
    assert send(hub, device, [first])["records"] == [first["id"]]
    assert hub.alerts() == []
    # Its contents changed, the hash kept: acknowledged (the hub holds the record) but flagged.
    kept_hash = {**first, "tool": "delete_entities", "decision": "deny"}
    send(hub, device, [kept_hash])
    assert any(f"record {first['id']} (seq 1) was sent again with contents that do not match its hash" in d
               for d in alerts(hub, "hash")), hub.alerts()
    # Its contents changed and the hash recomputed: a diverged chain, not acknowledged.
    rehashed = {**first, "tool": "delete_entities", "decision": "deny"}
    rehashed["hash"] = rehash(rehashed)
    ack = send(hub, device, [rehashed])
    assert first["id"] not in ack["records"], ack
    assert any(f"record {first['id']} (seq 1) was sent again with other contents" in d
               for d in alerts(hub, "diverged")), hub.alerts()
    copies = held(hub, first["id"])
    assert len(copies) == 1, copies
    assert (copies[0]["tool"], copies[0]["decision"], copies[0]["hash"]) == ("read_graph", "allow", first["hash"])
    assert copies[0]["outcome"] == "ok"
