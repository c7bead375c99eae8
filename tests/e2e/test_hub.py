"""The hub end to end: a real gateway's journal reaches a real `countersign-hub` (SQLite,
and PostgreSQL started by `make test`), every record exactly once whatever goes wrong on
the way: 500s, answers lost after the hub wrote, the hub killed and restarted, replays.
The hub flags a gap in a device's chain (case 24) and deliveries are at least once with
deduplication by id (case 25)."""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import re
from pathlib import Path

import httpx2 as httpx
import pytest

from conftest import (BIN, HERE, ROOT, background, connect, create_database, echo_calls, error_text, fast_server,
                      memory_server, text_of, until, wait_for, who_listens)

pytestmark = pytest.mark.anyio
HUB_BIN = Path(os.environ.get("COUNTERSIGN_HUB_BIN", ROOT / "target" / "debug" / "countersign-hub"))


class Hub:
    def __init__(self, tmp: Path, kind: str, signing: tuple[Path, str] | None = None, extra_env: dict | None = None):
        self.tmp = tmp
        self.kind = kind
        self.env = {**os.environ, "COUNTERSIGN_HUB_HOME": str(tmp / "hub-home"), **(extra_env or {})}
        if signing:
            self.env["COUNTERSIGN_HUB_SIGNING_KEY"] = str(signing[0])
            self.env["COUNTERSIGN_HUB_SIGNING_KEY_PASSPHRASE"] = signing[1]
        if kind == "postgres":
            admin = os.environ.get("COUNTERSIGN_TEST_POSTGRES")
            assert admin, "COUNTERSIGN_TEST_POSTGRES names a PostgreSQL role that may create databases (make test sets it)"
            self.env["COUNTERSIGN_HUB_DATABASE"] = create_database(admin)
        # Staff reach the hub with an API token of a role (here admin), made on the hub's
        # host; the break-glass token is made too but only a hub started with
        # `break_glass=True` takes it (every use of it is an alert).
        made = subprocess.run([str(HUB_BIN), "api-token", "create", "--role", "admin", "--name", "pytest"],
                              env=self.env, capture_output=True, text=True, check=True)
        self.admin = made.stdout.strip()
        assert re.fullmatch(r"csk_[0-9a-f]{64}", self.admin), "the token alone on stdout"
        glass = subprocess.run([str(HUB_BIN), "admin-token", "create"], capture_output=True, text=True, check=True)
        self.glass = glass.stdout.strip()
        self.digest = glass.stderr.split()[-1]
        self.break_glass = False
        self.port: int | None = None  # the first start binds port 0; restarts keep the port
        self.proc = None

    @property
    def url(self) -> str:
        assert self.port, "the hub has not started yet"
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Hub":
        log_path = self.tmp / "hub.log"
        self.log = open(log_path, "ab")
        seen = log_path.stat().st_size
        glass = ["--admin-token-sha256", self.digest] if self.break_glass else []
        self.proc = subprocess.Popen([str(HUB_BIN), "serve", "--listen", f"127.0.0.1:{self.port or 0}", *glass],
                                     env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

        def listens():
            if self.proc.poll() is not None:
                raise AssertionError(f"the hub exited: {log_path.read_text()}")
            found = re.search(r"Countersign hub on http://127\.0\.0\.1:(\d+)", log_path.read_text()[seen:])
            return int(found.group(1)) if found else None

        # A debug build opens a passphrase-protected signing key slowly (scrypt); a busy
        # 2-core machine needs more than the default 20 s for that.
        self.port = wait_for(listens, timeout=90, what="the hub to listen")
        assert who_listens(self.proc.pid, self.port) == "ours", f"the hub's port {self.port} is not the hub's"
        wait_for(self._up, timeout=30, what="the hub to answer")
        return self

    def _up(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"the hub exited: {(self.tmp / 'hub.log').read_text()}")
        try:
            return httpx.get(f"{self.url}/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def enrollment_token(self) -> str:
        r = subprocess.run([str(HUB_BIN), "enrollment-token", "create"], env=self.env, capture_output=True, text=True,
                           check=True)
        return r.stdout.strip()

    def get(self, path: str, **params):
        r = httpx.get(f"{self.url}{path}", params=params, headers={"Authorization": f"Bearer {self.admin}"})
        r.raise_for_status()
        return r

    def records(self) -> list[dict]:
        return self.get("/v1/audit", limit=100000).json()

    def alerts(self) -> list[dict]:
        return self.get("/v1/alerts").json()


def running_hub(tmp_path, kind: str):
    h = Hub(tmp_path, kind).start()
    yield h
    if h.proc.poll() is None:
        h.kill()


@pytest.fixture(params=["sqlite", "postgres"])
def hub(request, tmp_path):
    yield from running_hub(tmp_path, request.param)


@pytest.fixture
def sqlite_hub(tmp_path):
    """The transport faults are the same whatever database the hub uses: tried once."""
    yield from running_hub(tmp_path, "sqlite")


async def calls(gw, n: int, start: int = 0):
    async with connect(gw, "http", "memory") as client:
        for i in range(start, start + n):
            r = await client.call_tool("create_entities", {"entities": [{"name": f"e{i}", "entityType": "t",
                                                                         "observations": []}]})
            assert not r.is_error, text_of(r)


def enrolled_gateway(make_gateway, tmp_path, hub, sync: dict | None = None):
    gw = make_gateway({"memory": memory_server(tmp_path / "m.json")}, policy={"allow": ["mcp__memory"]}, sync=sync)
    out = gw.cli("enroll", hub.url, hub.enrollment_token(), "--name", "laptop-1").stdout
    assert "enrolled with" in out
    return gw


def sync(gw) -> int:
    return int(gw.cli("sync", "--now").stdout.strip())


async def test_records_reach_the_hub_once_with_the_export_field_names(make_gateway, tmp_path, hub):
    gw = enrolled_gateway(make_gateway, tmp_path, hub)
    await calls(gw, 5)
    local = wait_for(lambda: (a := gw.audit()) and all(r["outcome"] for r in a if r["kind"] == "call") and a,
                     what="every call's outcome")
    assert sync(gw) == len(local) >= 5
    remote = hub.records()
    assert [r["id"] for r in remote] == [r["id"] for r in local]
    for mine, theirs in zip(local, remote):
        for field, value in mine.items():
            assert theirs[field] == value, (field, value, theirs.get(field))
    # Everything sent; a replay of the whole journal is absorbed (deduplicated by id).
    assert sync(gw) == 0
    with sqlite3.connect(gw.home / "audit.db") as db:
        db.execute("DELETE FROM sync_state")
        db.execute("DELETE FROM sent_outcomes")
    assert sync(gw) == len(local)
    assert len(hub.records()) == len(local)
    assert hub.alerts() == []
    csv = hub.get("/v1/audit", format="csv", tool="create_entities").text.splitlines()
    assert csv[0].startswith("id,time,kind,user,device") and len(csv) == 1 + len(
        [r for r in local if r["tool"] == "create_entities"])
    # The enrollment token was single use.
    r = gw.cli("enroll", hub.url, "cse_" + "0" * 64, check=False)
    assert r.returncode != 0 and "unknown, used or expired" in r.stderr


async def test_the_audit_pages_newest_first_by_cursor(make_gateway, tmp_path, hub):
    """The console's audit search: `order=newest` pages newest first, each page's
    `X-Next-Cursor` starts the next, and the pages together are every record once, on
    SQLite and on PostgreSQL; a cursor that is not one is a clear 400."""
    gw = enrolled_gateway(make_gateway, tmp_path, hub)
    await calls(gw, 12)
    wait_for(lambda: (a := gw.audit()) and all(r["outcome"] for r in a if r["kind"] == "call"), what="outcomes")
    sync(gw)
    everything = hub.records()
    assert len(everything) >= 12
    pages, cursor = [], None
    while True:
        params = {"order": "newest", "limit": 5, **({"before": cursor} if cursor else {})}
        r = hub.get("/v1/audit", **params)
        pages.append(r.json())
        cursor = r.headers.get("x-next-cursor")
        if not cursor:
            break
        assert len(pages) < 20, "the pages end"
    seen = [rec["id"] for page in pages for rec in page]
    assert seen == [rec["id"] for rec in reversed(everything)], "every record once, newest first"
    assert all(len(p) == 5 for p in pages[:-1])
    bad = httpx.get(f"{hub.url}/v1/audit", params={"order": "newest", "before": "not-a-cursor"},
                    headers={"Authorization": f"Bearer {hub.admin}"})
    assert bad.status_code == 400 and "not a cursor" in bad.json()["error"], bad.text


async def test_sec_25_faults_on_the_way_lose_nothing_and_duplicate_nothing(make_gateway, tmp_path, sqlite_hub):
    hub = sqlite_hub
    # Only this test's own `sync --now` goes through the faults (no background sync).
    gw = enrolled_gateway(make_gateway, tmp_path, hub, sync={"interval_secs": 3600})
    with background(lambda port: [sys.executable, str(HERE / "fault_proxy.py"), str(port), str(hub.port)],
                    tmp_path / "proxy.log") as proxy:
        link = json.loads((gw.home / "hub.json").read_text())
        link["url"] = f"http://127.0.0.1:{proxy.port}"
        (gw.home / "hub.json").write_text(json.dumps(link))
        fault = lambda mode, count: httpx.post(f"{link['url']}/__fault__", json={"mode": mode, "count": count})

        await calls(gw, 4)
        fault("500", 2)
        for _ in range(2):
            r = gw.cli("sync", "--now", check=False)
            assert r.returncode != 0 and "HTTP 500" in r.stderr, r.stderr
        fault("drop-after-forward", 1)
        r = gw.cli("sync", "--now", check=False)
        assert r.returncode != 0, "the answer was lost, so nothing is marked sent"
        assert len(hub.records()) == len(gw.audit()), "the hub wrote the batch before the answer was lost"
        await calls(gw, 3, start=4)
        assert sync(gw) >= 3
    local = gw.audit()
    remote = hub.records()
    assert sorted(r["id"] for r in remote) == sorted(r["id"] for r in local), "every record exactly once"
    assert hub.alerts() == []
    device = hub.get("/v1/devices").json()[0]
    assert device["last_hash"] == local[-1]["hash"], "the hub's chain ends where the journal's does"
    # The fault proxy (the hub as this device knows it) is gone: the local checks alone.
    assert "the chain holds" in gw.cli("audit", "verify", "--offline").stdout


async def test_a_killed_hub_catches_up_from_the_background_sync(make_gateway, tmp_path, hub):
    gw_config = {"memory": memory_server(tmp_path / "m.json")}
    gw = make_gateway(gw_config, policy={"allow": ["mcp__memory"]}, sync={"interval_secs": 1, "max_backoff_secs": 2})
    gw.cli("enroll", hub.url, hub.enrollment_token())
    await calls(gw, 3)
    await until(lambda: len(hub.records()) == len(gw.audit()), what="the background sync")
    hub.kill()
    await calls(gw, 3, start=3)
    hub.start()
    await until(lambda: len(hub.records()) == len(gw.audit()), timeout=30, what="the sync to catch up")
    assert sorted(r["id"] for r in hub.records()) == sorted(r["id"] for r in gw.audit())
    assert hub.alerts() == []


async def test_sec_24_the_hub_flags_a_gap_in_a_devices_chain(make_gateway, tmp_path, hub):
    gw = enrolled_gateway(make_gateway, tmp_path, hub)
    await calls(gw, 2)
    assert sync(gw) >= 2
    await calls(gw, 3, start=2)
    unsent = gw.audit()[-3]
    with sqlite3.connect(gw.home / "audit.db") as db:
        db.execute("DELETE FROM outcomes WHERE record_id = ?", (unsent["id"],))
        db.execute("DELETE FROM records WHERE id = ?", (unsent["id"],))
    sync(gw)
    alerts = hub.alerts()
    assert len(alerts) == 1 and alerts[0]["kind"] == "gap" and "records are missing" in alerts[0]["detail"], alerts
    assert gw.cli("audit", "verify", check=False).returncode == 1


async def test_sec_24_the_hub_flags_reordered_records(make_gateway, tmp_path, sqlite_hub):
    """Two records not yet sent exchange places in the journal, every column kept: the
    chain the hub receives does not continue, and it says so."""
    gw = enrolled_gateway(make_gateway, tmp_path, sqlite_hub)
    await calls(gw, 2)
    assert sync(gw) >= 2
    await calls(gw, 3, start=2)
    wait_for(lambda: all(r["outcome"] for r in gw.audit()), what="every outcome")
    a, b = gw.audit()[-3:-1]
    with sqlite3.connect(gw.home / "audit.db") as db:
        (sa,), (sb,) = (db.execute("SELECT seq FROM records WHERE id = ?", (r["id"],)).fetchone() for r in (a, b))
        db.execute("UPDATE records SET seq = -1 WHERE seq = ?", (sa,))
        db.execute("UPDATE records SET seq = ? WHERE seq = ?", (sa, sb))
        db.execute("UPDATE records SET seq = ? WHERE seq = -1", (sb,))
    gw.cli("sync", "--now", check=False)
    alerts = sqlite_hub.alerts()
    assert alerts and {x["kind"] for x in alerts} <= {"gap", "diverged", "late"}, alerts
    assert any(f"seq {sa}" in x["detail"] for x in alerts), alerts
    r = gw.cli("audit", "verify", check=False)
    assert r.returncode == 1 and "reordered" in r.stderr, r.stderr


async def test_sec_24_a_cut_tail_the_hub_acknowledged_is_found_locally(make_gateway, tmp_path, sqlite_hub):
    fresh = enrolled_gateway(make_gateway, tmp_path, sqlite_hub)
    await calls(fresh, 3)
    sync(fresh)
    assert "the chain holds" in fresh.cli("audit", "verify").stdout
    last = fresh.audit()[-1]
    with sqlite3.connect(fresh.home / "audit.db") as db:
        db.execute("DELETE FROM outcomes WHERE record_id = ?", (last["id"],))
        db.execute("DELETE FROM records WHERE id = ?", (last["id"],))
    r = fresh.cli("audit", "verify", check=False)
    assert r.returncode == 1 and "tail was cut off" in r.stderr, r.stderr


async def test_a_published_policy_reaches_an_online_laptop_within_10_s(make_gateway, tmp_path):
    """IT publishes a policy at the hub; the hub signs it with its key (from a file); the
    laptop's long poll brings it down and the gateway, which trusts that key through its
    managed file, enforces it: the time from publishing to the first denied call is
    measured against the 10 s the issue asks for."""
    import time

    import anyio

    keys = tmp_path / "keys"
    subprocess.run([str(BIN), "policy", "keygen", str(keys)], input="hub-signing-pass\n", capture_output=True,
                   text=True, check=True)
    hub = Hub(tmp_path, "sqlite", signing=(keys / "bundle.key", "hub-signing-pass")).start()
    try:
        gw = make_gateway({"memory": memory_server(tmp_path / "m.json")}, policy={"allow": ["mcp__memory"]})
        (gw.managed / "managed.toml").write_text(f'[managed]\nbundle_public_key = "{(keys / "bundle.pub").read_text().strip()}"\n')
        gw.cli("enroll", hub.url, hub.enrollment_token())
        admin = {"Authorization": f"Bearer {hub.admin}"}
        bad = httpx.put(f"{hub.url}/v1/policy", content='[policy]\ndeny = ["rm"]\n', headers=admin)
        assert bad.status_code == 422 and "must start with `mcp__`" in bad.json()["error"], bad.text
        async with connect(gw, "http", "memory") as client:
            assert not (await client.call_tool("read_graph", {})).is_error
            started = time.monotonic()
            published = httpx.put(f"{hub.url}/v1/policy", content='[policy]\ndeny = ["mcp__memory__read_graph"]\n',
                                   headers=admin)
            assert published.status_code == 200 and published.json()["version"] == 1, published.text
            with anyio.fail_after(10):
                while not (denied := await client.call_tool("read_graph", {})).is_error:
                    await anyio.sleep(0.05)
            elapsed = time.monotonic() - started
        assert "mcp__memory__read_graph" in text_of(denied), text_of(denied)
        assert elapsed < 10
        (ROOT / "target").mkdir(exist_ok=True)
        (ROOT / "target" / "policy-propagation.txt").write_text(f"{elapsed:.3f}\n")
        record = gw.wait_audit(lambda r: r["tool"] == "read_graph" and r["decision"] == "deny", "the denial")[-1]
        # The exact version: the hub's first bundle, under the hash of the layers the gateway says are in force.
        in_force = gw.status()["policy_version"]
        assert re.fullmatch(r"bundle-1\+sha256:[0-9a-f]{16}", in_force), in_force
        assert record["policy_version"] == in_force, (record["policy_version"], in_force)
        allowed = next(r for r in gw.audit() if r["tool"] == "read_graph" and r["decision"] == "allow")
        assert re.fullmatch(r"sha256:[0-9a-f]{16}", allowed["policy_version"]), "before the bundle: no bundle version"
        actions = [a["action"] for a in hub.get("/v1/admin-log").json()]
        assert actions.count("policy-publish") == 2 and actions[-1] == "admin-log-query", actions
    finally:
        hub.kill()


async def test_ingested_records_are_forwarded_as_otlp_logs_and_splunk_hec_events(make_gateway, tmp_path):
    token_file = tmp_path / "hec.token"
    token_file.write_text("hec-test-token-0123\n")
    with background(lambda port: [sys.executable, str(HERE / "siem_receiver.py"), str(port), str(token_file)],
                    tmp_path / "siem.log") as receiver:
        siem = f"http://127.0.0.1:{receiver.port}"
        hub = Hub(tmp_path, "sqlite", extra_env={"COUNTERSIGN_HUB_OTLP_ENDPOINT": siem,
                                                 "COUNTERSIGN_HUB_SPLUNK_HEC_URL": siem,
                                                 "COUNTERSIGN_HUB_SPLUNK_HEC_TOKEN_FILE": str(token_file)}).start()
        try:
            gw = enrolled_gateway(make_gateway, tmp_path, hub)
            await calls(gw, 4)
            sync(gw)
            ids = sorted(r["id"] for r in gw.audit())
            stats = lambda: httpx.get(f"{siem}/stats").json()
            await until(lambda: sorted(stats()["otlp_ids"]) == ids and sorted(stats()["hec_ids"]) == ids,
                        what="every record in both sinks")
            assert stats()["errors"] == []
        finally:
            hub.kill()
        assert "hec-test-token" not in (tmp_path / "hub.log").read_text(), "the HEC token must never be logged"


async def test_a_calls_trace_id_reaches_the_journal_the_hub_and_the_siem(make_gateway, tmp_path):
    """Issue 17: a tool call in a session whose `_meta` carries W3C trace context (the real
    Python client) is recorded with its trace id, the chain still verifies, and the hub
    stores it, finds records by it and forwards it as the OTLP log record's trace."""
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    token_file = tmp_path / "hec.token"
    token_file.write_text("hec-test-token-0123\n")
    with background(lambda port: [sys.executable, str(HERE / "siem_receiver.py"), str(port), str(token_file)],
                    tmp_path / "siem.log") as receiver:
        siem = f"http://127.0.0.1:{receiver.port}"
        hub = Hub(tmp_path, "sqlite", extra_env={"COUNTERSIGN_HUB_OTLP_ENDPOINT": siem}).start()
        try:
            gw = enrolled_gateway(make_gateway, tmp_path, hub)
            async with connect(gw, "http", "memory") as client:
                r = await client.call_tool("read_graph", {},
                                           meta={"traceparent": f"00-{trace}-00f067aa0ba902b7-01",
                                                 "tracestate": "congo=t61rcWkgMzE"})
                assert not r.is_error, text_of(r)
                r = await client.call_tool("read_graph", {})
                assert not r.is_error, text_of(r)
            calls = [r for r in gw.audit() if r["tool"] == "read_graph"]
            assert [c["trace_id"] for c in calls] == [trace, None], calls
            assert calls[0]["session"] == calls[1]["session"] and "trace" not in calls[0]["session"]
            gw.cli("audit", "verify", "--offline")
            sync(gw)
            held = hub.get("/v1/audit", trace_id=trace).json()
            assert [(h["id"], h["trace_id"]) for h in held] == [(calls[0]["id"], trace)], held
            assert not hub.alerts(), "the hub's recomputed hashes hold"
            stats = lambda: httpx.get(f"{siem}/stats").json()
            await until(lambda: calls[1]["id"] in stats()["otlp_ids"], what="the records in the SIEM")
            assert stats()["otlp_traces"] == {calls[0]["id"]: trace}, stats()
            assert stats()["errors"] == []
        finally:
            hub.kill()


async def test_sec_25_a_full_journal_fails_closed_until_the_hub_acknowledges(make_gateway, tmp_path, sqlite_hub):
    import anyio

    hub = sqlite_hub
    gw = make_gateway({"memory": memory_server(tmp_path / "m.json")}, policy={"allow": ["mcp__memory"]},
                      sync={"interval_secs": 3600})
    (gw.managed / "managed.toml").write_text('[managed.audit]\nmax_records = 12\nwhen_full = "refuse-calls"\n')
    gw.cli("enroll", hub.url, hub.enrollment_token())
    async with connect(gw, "http", "memory") as client:
        with anyio.fail_after(30):
            while not (r := await client.call_tool("read_graph", {})).is_error:
                await anyio.sleep(0.1)
        assert "audit journal is full" in text_of(r), text_of(r)
        assert int(gw.cli("sync", "--now").stdout) >= 12
        with anyio.fail_after(15):
            while (r := await client.call_tool("read_graph", {})).is_error:
                await anyio.sleep(0.2)
    rules = [(r["rule"], r["decision"]) for r in gw.audit() if r["kind"] == "policy" and r["rule"] == "audit-full"]
    assert rules[:2] == [("audit-full", "deny"), ("audit-full", "allow")], rules
    assert "the chain holds" in gw.cli("audit", "verify").stdout


async def test_sec_25_a_journal_allowed_to_drop_says_so_and_the_hub_flags_the_gap(make_gateway, tmp_path, sqlite_hub):
    hub = sqlite_hub
    gw = make_gateway({"memory": memory_server(tmp_path / "m.json")}, policy={"allow": ["mcp__memory"]},
                      sync={"interval_secs": 3600})
    (gw.managed / "managed.toml").write_text('[managed.audit]\nmax_records = 8\nwhen_full = "drop-oldest-with-gap"\n')
    gw.cli("enroll", hub.url, hub.enrollment_token())
    await calls(gw, 15)
    gap = gw.wait_audit(lambda r: r["rule"] == "audit-gap", "the gap record")[0]
    assert "were dropped" in gap["reason"] and "never acknowledged" in gap["reason"], gap["reason"]
    assert "the chain holds" in gw.cli("audit", "verify").stdout, "what remains still verifies (anchored)"
    sync(gw)
    kinds = [a["kind"] for a in hub.alerts()]
    assert "gap" in kinds, hub.alerts()


async def test_the_entitlements_view_shows_tools_used_and_grants_held(make_gateway, tmp_path, hub):
    import anyio

    gw = make_gateway({"memory": memory_server(tmp_path / "m.json")},
                      policy={"allow": ["mcp__memory__read_graph"], "ask": ["mcp__memory__create_entities"]})
    gw.cli("enroll", hub.url, hub.enrollment_token())
    async with connect(gw, "http", "memory") as client:
        async with anyio.create_task_group() as tg:
            async def write():
                r = await client.call_tool("create_entities", {"entities": [{"name": "x", "entityType": "t",
                                                                             "observations": []}]})
                assert not r.is_error, text_of(r)
            tg.start_soon(write)
            prompt = await until(lambda: gw.status()["approvals"], what="the prompt")
            gw.cli("approve", prompt[0]["id"], "--for", "1h")
        for _ in range(2):
            assert not (await client.call_tool("read_graph", {})).is_error
        # The grant lets the next write run without asking; its record names the grant.
        again = await client.call_tool("create_entities", {"entities": [{"name": "y", "entityType": "t",
                                                                         "observations": []}]})
        assert not again.is_error, text_of(again)
    sync(gw)
    ids = hub.get("/v1/entitlements").json()
    assert len(ids) == 1
    me = ids[0]
    used = {t["tool"]: (t["calls"], t["allowed"]) for t in me["tools"]}
    assert used == {"create_entities": (2, 2), "read_graph": (2, 2)}, used
    assert [(g["tool"], g["length"], g["active"]) for g in me["grants"]] == [("create_entities", "1h", True)]
    writes = [r for r in hub.get("/v1/audit", tool="create_entities").json()]
    assert [(r["approval"], r["grant_id"], r["grant_length"]) for r in writes] == [
        ("approved", me["grants"][0]["id"], "1h"), (None, me["grants"][0]["id"], None)], writes
    assert me["clients"] == ["pytest"] and len(me["devices"]) == 1
    csv = hub.get("/v1/entitlements", format="csv").text.splitlines()
    assert csv[0] == "user,server,tool,calls,allowed,refused,last_used,active_grants,approved_by"
    row = next(line for line in csv if ",create_entities," in line)
    assert me["grants"][0]["id"] in row and "(1h)" in row


async def reads(gw, n: int):
    async with connect(gw, "http", "memory") as client:
        for _ in range(n):
            assert not (await client.call_tool("read_graph", {})).is_error


async def test_a_hub_killed_mid_batch_and_a_gateway_restarted_mid_sync_lose_and_duplicate_nothing(
        make_gateway, tmp_path, sqlite_hub):
    hub = sqlite_hub
    gw = make_gateway({"fast": fast_server()}, policy={"allow": ["mcp__fast"]},
                      sync={"interval_secs": 3600, "batch_size": 1500})
    gw.cli("enroll", hub.url, hub.enrollment_token())
    assert echo_calls(gw, "fast", 6000) == 6000
    total = len(gw.audit())

    # The hub dies while `sync --now` sends batch after batch of 1,500 records: the first
    # is in, the next is being stored.
    syncing = subprocess.Popen([str(BIN), "sync", "--now"], env=gw.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    last_seq = lambda: (hub.get("/v1/devices").json() or [{}])[0].get("last_seq") or 0
    await until(lambda: last_seq() >= 1500, what="the first batch to arrive")
    hub.kill()
    syncing.wait(30)
    hub.start()
    partial = len(hub.records())
    assert 0 < partial < total, partial

    # The gateway itself syncs in the background and is restarted while it does.
    gw.stop()
    config = gw.config.read_text().replace("interval_secs = 3600", "interval_secs = 1").replace(
        "batch_size = 1500", "batch_size = 100")
    gw.config.write_text(config)
    gw.start()
    await until(lambda: partial < len(hub.records()), what="the background sync to send more")
    gw.stop()
    gw.start()
    # 6,000 records in batches of 100: a loaded 2-core machine has taken over 60 s.
    await until(lambda: len(hub.records()) >= total, timeout=180, what="everything to arrive")
    remote = [r["id"] for r in hub.records()]
    assert len(remote) == len(set(remote)), "a record arrived twice"
    assert set(r["id"] for r in gw.audit()) <= set(remote)
    assert hub.alerts() == []
    assert "the chain holds" in gw.cli("audit", "verify").stdout


async def test_two_hub_instances_share_one_postgresql(make_gateway, tmp_path):
    """The hub keeps no state of its own: a device can talk to either of two instances
    on one database, and its chain continues across them."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = Hub(tmp_path / "a", "postgres"), Hub(tmp_path / "b", "postgres")
    second.env["COUNTERSIGN_HUB_DATABASE"] = first.env["COUNTERSIGN_HUB_DATABASE"]
    second.admin, second.digest = first.admin, first.digest
    first.start()
    second.start()
    try:
        gw = make_gateway({"memory": memory_server(tmp_path / "m.json")}, policy={"allow": ["mcp__memory"]},
                          sync={"interval_secs": 3600})
        gw.cli("enroll", first.url, first.enrollment_token())
        await reads(gw, 3)
        sync(gw)
        link = json.loads((gw.home / "hub.json").read_text())
        link["url"] = second.url
        (gw.home / "hub.json").write_text(json.dumps(link))
        await reads(gw, 3)
        sync(gw)
        ids = [r["id"] for r in first.records()]
        assert sorted(ids) == sorted(r["id"] for r in gw.audit()) and len(ids) == len(set(ids))
        assert second.alerts() == [], "the chain continued across instances"
        assert second.get("/v1/devices").json()[0]["last_hash"] == gw.audit()[-1]["hash"]
    finally:
        first.kill()
        second.kill()


async def test_required_routing_raises_a_hub_alert_and_servers_off_the_allowed_list_are_blocked(
        make_gateway, tmp_path, sqlite_hub):
    gw = enrolled_gateway(make_gateway, tmp_path, sqlite_hub)
    gw.stop()
    home = tmp_path / "client-home"
    (home / ".cursor").mkdir(parents=True)
    (home / ".cursor" / "mcp.json").write_text(json.dumps({"mcpServers": {
        "time": {"command": str(ROOT / "fixtures" / ".venv" / "bin" / "mcp-server-time")},
        "notion": {"url": "https://mcp.notion.com/mcp"},
    }}))
    (gw.managed / "managed.toml").write_text(
        '[policy.servers]\nrequire_routing = true\n'
        'allowed = [{ serverName = "time" }, { serverName = "mem*", serverCommand = "*mcp-server-memory*" }]\n')
    # A server in Countersign's own config that the list leaves out.
    gw.config.write_text(gw.config.read_text() + '[servers.notes]\ncommand = "%s"\nenv = { MEMORY_FILE_PATH = "%s" }\n'
                         % (memory_server(tmp_path / "m.json")["command"], tmp_path / "n.json"))
    gw.env["HOME"] = str(home)
    gw.env.pop("XDG_CONFIG_HOME", None)
    gw.start()

    record = gw.wait_audit(lambda r: r["rule"] == "require-routing", "the routing requirement's record")[0]
    assert record["decision"] == "deny"
    assert "Cursor `time`" in record["reason"] and "not on the allowed list: Cursor `notion`" in record["reason"]
    listed = {s["name"]: s["route"] for r in json.loads(gw.cli("clients", "list", "--json").stdout)
              for s in r["servers"]}
    assert listed == {"time": "shadow", "notion": "blocked"}
    sync(gw)
    alerts = wait_for(lambda: [a for a in sqlite_hub.alerts() if a["kind"] == "shadow-servers"], what="the alert")
    assert "Cursor `notion`" in alerts[0]["detail"]

    # Install leaves the blocked server as it is; the gateway will not start one either.
    out = json.loads(gw.cli("clients", "install", "cursor", "--json").stdout)[0]
    assert [m["name"] for m in out["changed"]] == ["time"]
    assert out["skipped"][0]["name"] == "notion" and "allowed servers" in out["skipped"][0]["reason"]
    async with connect(gw, "http", None) as client:
        assert not any(t.name.startswith("notes__") for t in (await client.list_tools()).tools)
    with pytest.raises(BaseException) as refused:
        async with connect(gw, "http", "notes") as client:
            await client.list_tools()
    assert "not on the managed policy's list of allowed servers" in error_text(refused.value)
    async with connect(gw, "http", "memory") as client:
        assert (await client.list_tools()).tools, "an allowed server still works"
