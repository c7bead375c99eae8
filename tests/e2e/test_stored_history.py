"""Issue 15, items 1, 2 and 5: the history an auditor reads cannot be subverted.

Each test performs the attack on a real gateway's journal (a real SQLite file, changed the
way anyone with the disk can) or against a real hub (SQLite and PostgreSQL), and asserts
the effect did not happen: verification names the hole, the record the hub stores carries
the identity of the credential that sent it, the forged history is flagged."""

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import threading

import pytest

from conftest import BIN, Gateway, Rpc, everything_server, memory_server, wait_for, write_config
from test_hub import HUB_BIN, Hub, calls, hub, sqlite_hub, sync  # noqa: F401 (fixtures)

pytestmark = pytest.mark.anyio

RECORD_COLUMNS = ["id", "time", "kind", "user", "device", "client", "client_name", "client_version", "session",
                  "server", "tool", "method", "arguments", "decision", "rule", "reason", "approval", "policy_version",
                  "class", "label", "grant_id", "grant_length", "trace_id", "user_verified", "os_user", "owner",
                  "approver", "request_id"]
# The first 20 are always hashed; the groups added later (ending at these places) only up to
# the last group a record sets (crates/audit/src/chain.rs ADDED_GROUPS).
ALWAYS_HASHED, ADDED_GROUPS = 20, [22, 23, 26, 28]


def chained(fields: list) -> list:
    """The columns a record's hash covers, as chain.rs decides."""
    covered, start = ALWAYS_HASHED, ALWAYS_HASHED
    for end in ADDED_GROUPS:
        if any(f is not None for f in fields[start:end]):
            covered = end
        start = end
    return fields[:covered]


def chain_hash(domain: bytes, link: str, fields: list) -> str:
    """The journal's chain hashes (crates/audit/src/chain.rs), as an attacker recomputes them."""
    h = hashlib.sha256(domain + link.encode() + b"\n")
    for f in fields:
        h.update(b"-;" if f is None else str(len(f.encode())).encode() + b":" + f.encode() + b";")
    return h.hexdigest()


def record_hash(prev: str, fields: list) -> str:
    return chain_hash(b"countersign-record-v1\n", prev, fields)


def duration_text(d):
    """`duration_ms` as the chain hashes it (Rust's Display of an f64)."""
    if d is None:
        return None
    return str(int(d)) if float(d).is_integer() else repr(float(d))


def rechain(db: sqlite3.Connection, from_seq: int):
    """Recomputes every hash from `from_seq` on: a rewrite no unkeyed chain can notice."""
    prev = db.execute("SELECT hash FROM records WHERE seq < ? ORDER BY seq DESC LIMIT 1", (from_seq,)).fetchone()
    prev = prev[0] if prev else "0" * 64
    rows = db.execute(f"SELECT seq, {', '.join(RECORD_COLUMNS)} FROM records WHERE seq >= ? ORDER BY seq",
                      (from_seq,)).fetchall()
    for seq, *fields in rows:
        new = record_hash(prev, chained(fields))
        db.execute("UPDATE records SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, new, seq))
        outcome = db.execute("SELECT record_id, time, outcome, duration_ms, detail FROM outcomes WHERE record_id = ?",
                             (fields[0],)).fetchone()
        if outcome:
            rid, time, what, duration, detail = outcome
            db.execute("UPDATE outcomes SET hash = ? WHERE record_id = ?",
                       (chain_hash(b"countersign-outcome-v1\n", new, [rid, time, what, duration_text(duration), detail]),
                        rid))
        prev = new


def verify(gw, *args) -> subprocess.CompletedProcess:
    return gw.cli("audit", "verify", *args, check=False)


def crash(gw):
    os.killpg(gw.proc.pid, signal.SIGKILL)
    gw.proc.wait(10)
    gw.log.close()


# ---- item 1: holes in the chain ---------------------------------------------------------

async def settled(gw, n: int = 3) -> list[dict]:
    """`n` calls through the gateway, all with their outcomes, then a restart: everything
    before the restart must keep its outcome."""
    await calls(gw, n)
    wait_for(lambda: all(r["outcome"] for r in gw.audit()), what="every outcome")
    gw.stop()
    gw.start()
    return gw.audit()


@pytest.mark.parametrize("attack", ["hashless record before the first", "outcome hash blanked", "outcome deleted"])
async def test_i15_01_holes_in_the_journal_fail_verification(make_gateway, tmp_path, attack):
    gw = make_gateway({"memory": memory_server(tmp_path / "m.json")}, policy={"allow": ["mcp__memory"]})
    records = await settled(gw)
    assert verify(gw).returncode == 0
    call = next(r for r in records if r["kind"] == "call" and r["tool"] == "create_entities")
    with sqlite3.connect(gw.home / "audit.db") as db:
        if attack == "hashless record before the first":
            db.execute("INSERT INTO records (seq, id, time, kind, user, device, tool, decision) VALUES "
                       "(0, 'forged', '2026-01-01T00:00:00Z', 'call', 'ana', 'd', 'delete_everything', 'allow')")
        elif attack == "outcome hash blanked":
            db.execute("UPDATE outcomes SET outcome = 'denied', hash = NULL WHERE record_id = ?", (call["id"],))
        else:
            db.execute("DELETE FROM outcomes WHERE record_id = ?", (call["id"],))
    r = verify(gw)
    assert r.returncode == 1, r.stdout
    why = {"hashless record before the first": "inserted", "outcome hash blanked": "no hash",
           "outcome deleted": "outcome was removed"}[attack]
    assert why in r.stderr, r.stderr


async def test_i15_01_a_call_cut_by_a_crash_is_closed_as_unknown_at_the_next_start(make_gateway):
    gw = make_gateway({"everything": everything_server()}, policy={"allow": ["mcp__everything"]})
    rpc = Rpc(gw, "/mcp/everything", accept="application/json")
    rpc.request("tools/list")

    def long_call():
        try:
            rpc.call("tools/call", {"name": "trigger-long-running-operation", "arguments": {"duration": 60, "steps": 60}})
        except Exception:  # the gateway is killed under it: that is the point
            pass

    threading.Thread(target=long_call, daemon=True).start()
    cut = gw.wait_audit(lambda r: r["tool"] == "trigger-long-running-operation", "the long call's record")[0]
    assert cut["outcome"] is None
    open_before = json.loads(verify(gw, "--json").stdout)
    assert open_before["ok"] and open_before["report"]["open"] >= 1
    crash(gw)
    gw.start()
    after = {r["id"]: r for r in gw.audit()}
    assert after[cut["id"]]["outcome"] == "unknown", after[cut["id"]]
    assert "gateway stopped" in after[cut["id"]]["detail"]
    starts = [r for r in after.values() if r["rule"] == "gateway-start"]
    assert len(starts) == 2 and "1 call(s) cut short" in starts[-1]["reason"], starts
    report = json.loads(verify(gw, "--json").stdout)
    assert report["ok"] and report["report"]["open"] == 0, report


def test_i15_01_a_second_gateway_cannot_write_the_same_journal(make_gateway, tmp_path):
    gw = make_gateway({"memory": memory_server(tmp_path / "m.json")}, policy={"allow": ["mcp__memory"]})
    second = subprocess.run([str(BIN), "serve", "--config", str(gw.config)], env=gw.env, capture_output=True,
                            text=True, timeout=30)
    assert second.returncode != 0 and "in use by another Countersign gateway" in second.stderr, second.stderr
    assert verify(gw).returncode == 0


# ---- item 2: acknowledged history is signed by the hub ----------------------------------

def signing_hub(tmp_path) -> tuple[Hub, str]:
    keys = tmp_path / "keys"
    subprocess.run([str(BIN), "policy", "keygen", str(keys)], input="pass\n", capture_output=True, text=True,
                   check=True)
    hub = Hub(tmp_path, "sqlite", signing=(keys / "bundle.key", "pass")).start()
    return hub, (keys / "bundle.pub").read_text().strip()


async def synced(make_gateway, tmp_path, hub: Hub, public: str):
    """A gateway that trusts `hub`'s key, enrolled with it, with three calls acknowledged."""
    gw = make_gateway({"memory": memory_server(tmp_path / "m.json")}, policy={"allow": ["mcp__memory"]})
    (gw.managed / "managed.toml").write_text(f'[managed]\nbundle_public_key = "{public}"\n')
    gw.cli("enroll", hub.url, hub.enrollment_token())
    await calls(gw, 3)
    wait_for(lambda: all(r["outcome"] for r in gw.audit()), what="every outcome")
    assert sync(gw) >= 4
    return gw


async def test_i15_02_rewritten_acknowledged_history_fails_against_the_hubs_checkpoints(make_gateway, tmp_path):
    hub, public = signing_hub(tmp_path)
    try:
        gw = await synced(make_gateway, tmp_path, hub, public)
        ok = verify(gw)
        assert ok.returncode == 0 and "signatures checked" in ok.stdout and "matches this journal" in ok.stdout, ok
        gw.stop()
        # The employee turns an acknowledged call into something else and recomputes the chain.
        with sqlite3.connect(gw.home / "audit.db") as db:
            seq, = db.execute("SELECT seq FROM records WHERE tool = 'create_entities' ORDER BY seq LIMIT 1").fetchone()
            db.execute("UPDATE records SET tool = 'read_graph', arguments = '{}' WHERE seq = ?", (seq,))
            rechain(db, seq)
        r = verify(gw, "--offline")
        assert r.returncode == 1 and "rewritten" in r.stderr, r.stderr
        # The copies on the laptop gone too: the hub's own checkpoint still disagrees.
        with sqlite3.connect(gw.home / "audit.db") as db:
            db.execute("DELETE FROM checkpoints")
        assert verify(gw, "--offline").returncode == 0, "offline, nothing is left to compare with"
        r = verify(gw)
        assert r.returncode == 1 and "rewritten" in r.stderr, r.stderr
        # Cutting the laptop off from the hub does not make that a pass.
        link = json.loads((gw.home / "hub.json").read_text())
        (gw.home / "hub.json").write_text(json.dumps({**link, "url": "http://127.0.0.1:9"}))
        r = verify(gw)
        assert r.returncode == 3 and "not compared" in r.stderr, r.stderr
        (gw.home / "hub.json").write_text(json.dumps(link))
        # Sent again as if new, the forged records raise an alert at the hub and are not stored.
        with sqlite3.connect(gw.home / "audit.db") as db:
            db.execute("DELETE FROM sync_state")
            db.execute("DELETE FROM sent_outcomes")
        gw.start()
        gw.cli("sync", "--now", check=False)
        alerts = [a for a in hub.alerts() if a["kind"] == "diverged"]
        assert alerts and "diverges" in alerts[0]["detail"], hub.alerts()
        assert not [r for r in hub.records() if r["tool"] == "read_graph"], "the forgery replaced nothing at the hub"
    finally:
        hub.kill()


# ---- item 5: identity comes from the credential -----------------------------------------

def enroll_as(gw, hub: Hub, user: str | None, name: str):
    args = [str(HUB_BIN), "enrollment-token", "create"] + (["--user", user] if user else [])
    token = subprocess.run(args, env=hub.env, capture_output=True, text=True, check=True).stdout.strip()
    gw.cli("enroll", hub.url, token, "--name", name)


async def test_i15_05_a_device_cannot_file_records_as_another_user_or_device(make_gateway, tmp_path, hub):
    laptop1 = make_gateway({"memory": memory_server(tmp_path / "m1.json")}, policy={"allow": ["mcp__memory"]})
    enroll_as(laptop1, hub, "ana", "laptop-1")
    await calls(laptop1, 1)
    sync(laptop1)
    laptop1_device = laptop1.audit()[0]["device"]
    laptop1.stop()

    (tmp_path / "two").mkdir()
    config = write_config(tmp_path / "two" / "c.toml", {"memory": memory_server(tmp_path / "m2.json")},
                          {"allow": ["mcp__memory"]})
    laptop2 = Gateway(tmp_path / "two", config).start()
    try:
        enroll_as(laptop2, hub, "bob", "laptop-2")
        await calls(laptop2, 2)
        wait_for(lambda: all(r["outcome"] for r in laptop2.audit()), what="every outcome")
        laptop2.stop()
        own_device = laptop2.audit()[0]["device"]
        # Bob's records rewritten to claim the CEO on laptop 1, chain recomputed so every hash
        # holds: the hub refuses the batch whole (issue 18), nothing is stored, an alert says why.
        with sqlite3.connect(laptop2.home / "audit.db") as db:
            db.execute("UPDATE records SET user = 'ceo', os_user = 'ceo', device = ?", (laptop1_device,))
            rechain(db, 1)
        laptop2.start()
        refused = laptop2.cli("sync", "--now", check=False)
        assert refused.returncode != 0 and "another enrolled device's" in refused.stderr, refused.stderr
        laptop2_id = json.loads((laptop2.home / "hub.json").read_text())["device_id"]
        assert not [r for r in hub.records() if r["device_id"] == laptop2_id], "nothing of the forged batch"
        identity = [a for a in hub.alerts() if a["kind"] == "identity"]
        assert any("another enrolled device's" in a["detail"] for a in identity), hub.alerts()
        # Its own device id back, still naming the CEO: stored as the person IT enrolled the
        # device for, never as the CEO's.
        laptop2.stop()
        with sqlite3.connect(laptop2.home / "audit.db") as db:
            db.execute("UPDATE records SET device = ?", (own_device,))
            rechain(db, 1)
        laptop2.start()
        sync(laptop2)
        mine = [r for r in hub.records() if r["device_id"] == laptop2_id]
        assert len(mine) >= 3 and all(r["user"] == "bob" and r["device"] != laptop1_device for r in mine), mine
        assert not [r for r in hub.records() if r["user"] == "ceo"], "no record is filed as the CEO's"
        laptop1_records = [r for r in hub.records() if r["device"] == laptop1_device]
        assert {r["user"] for r in laptop1_records} == {"ana"}

    finally:
        laptop2.stop()


async def test_i15_05_a_chained_device_cannot_send_an_unhashed_record(make_gateway, tmp_path, sqlite_hub):
    gw = make_gateway({"memory": memory_server(tmp_path / "m.json")}, policy={"allow": ["mcp__memory"]})
    enroll_as(gw, sqlite_hub, None, "laptop")
    await calls(gw, 1)
    sync(gw)
    await calls(gw, 1, start=1)
    wait_for(lambda: all(r["outcome"] for r in gw.audit()), what="every outcome")
    unsent = gw.audit()[-1]
    with sqlite3.connect(gw.home / "audit.db") as db:
        db.execute("UPDATE records SET hash = NULL, prev_hash = NULL, decision = 'deny' WHERE id = ?", (unsent["id"],))
    r = gw.cli("sync", "--now", check=False)
    assert r.returncode != 0 and "has no hash" in r.stderr, r.stderr
    assert unsent["id"] not in {x["id"] for x in sqlite_hub.records()}
    assert [a for a in sqlite_hub.alerts() if a["kind"] == "unhashed"], sqlite_hub.alerts()


async def test_i15_02_the_hub_keeps_what_it_acknowledged_and_stops_vouching_for_a_diverged_chain(make_gateway,
                                                                                                  tmp_path):
    hub, public = signing_hub(tmp_path)
    try:
        gw = await synced(make_gateway, tmp_path, hub, public)
        first = next(r for r in gw.audit() if r["tool"] == "create_entities")
        gw.stop()
        # An acknowledged outcome turned into a failure, a record rewritten, the chain and
        # every outcome hash recomputed, the local checkpoints gone, and all sent again.
        with sqlite3.connect(gw.home / "audit.db") as db:
            db.execute("UPDATE outcomes SET outcome = 'error', detail = 'FORGED' WHERE record_id = ?", (first["id"],))
            seq, = db.execute("SELECT seq FROM records WHERE id = ?", (first["id"],)).fetchone()
            db.execute("UPDATE records SET decision = 'deny' WHERE seq = ?", (seq + 1,))
            rechain(db, 1)
            db.execute("DELETE FROM checkpoints")
            db.execute("DELETE FROM sent_outcomes")
        gw.start()
        await calls(gw, 1, start=3)
        wait_for(lambda: all(r["outcome"] for r in gw.audit()), what="every outcome")
        gw.cli("sync", "--now", check=False)
        kinds = {a["kind"] for a in hub.alerts()}
        assert "diverged" in kinds, hub.alerts()
        held = next(r for r in hub.records() if r["id"] == first["id"])
        assert held["outcome"] == "ok" and held["detail"] != "FORGED", held
        # The hub signed nothing for the forged head: its newest checkpoint still disagrees.
        r = verify(gw)
        assert r.returncode == 1 and "rewritten" in r.stderr, r.stderr
    finally:
        hub.kill()


async def test_i15_05_a_nul_in_a_clients_name_does_not_stop_the_sync(make_gateway, tmp_path, hub):
    gw = make_gateway({"memory": memory_server(tmp_path / "m.json")}, policy={"allow": ["mcp__memory"]})
    enroll_as(gw, hub, None, "laptop")
    rpc = Rpc(gw, "/mcp/memory", client_name="evil\u0000client")
    rpc.request("tools/list")
    assert rpc.call("tools/call", {"name": "read_graph", "arguments": {}})
    wait_for(lambda: all(r["outcome"] for r in gw.audit()), what="every outcome")
    assert sync(gw) >= 2
    names = {r["client_name"] for r in hub.records() if r["tool"] == "read_graph"}
    assert names == {"evil\ufffdclient"}, names
    assert verify(gw).returncode == 0
