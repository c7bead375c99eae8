"""What Countersign leaves on the disk and in its log (issue 15, item 6): the journal and
the policy folder are its owner's alone, a busy file beside the config does not keep the
gateway busy, and a token inside a longer argument never reaches the journal or the log."""

import os
import stat
import threading
import time

import pytest
from mcp.shared.exceptions import MCPError

from conftest import connect, python_server, wait_for

pytestmark = pytest.mark.anyio

TOKEN = "cst_" + "Qk9hZ2xlLXRva2VuLWZvci10ZXN0cy0wMTIzNDU2Nzg5"


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def modes(gw) -> dict:
    names = ["audit.db", "audit.db-wal", "audit.db-shm", "policy"]
    return {n: oct(mode(gw.home / n)) for n in names if (gw.home / n).exists()}


OWNER_ONLY = {"audit.db": "0o600", "audit.db-wal": "0o600", "audit.db-shm": "0o600", "policy": "0o700"}


async def test_iss15_06_the_journal_and_the_policy_folder_are_owner_only(make_gateway, tmp_path):
    gw = make_gateway({"c": python_server("chatty_server.py")}, policy={"allow": ["mcp__c"]})
    async with connect(gw, "http", "c") as client:
        with pytest.raises(MCPError):
            await client.call_tool("fetch", {"url": "https://example.com/"})
    # While the gateway runs, SQLite keeps its write-ahead log and shared memory beside it.
    wait_for(lambda: len(modes(gw)) == 4, what="the journal's -wal and -shm files")
    assert modes(gw) == OWNER_ONLY
    # A data folder left by an earlier version, with loose modes, is tightened at start.
    gw.stop()
    for name, loose in (("audit.db", 0o644), ("policy", 0o755)):
        os.chmod(gw.home / name, loose)
    gw.start()
    wait_for(lambda: len(modes(gw)) == 4, what="the journal's files after the restart")
    assert modes(gw) == OWNER_ONLY
    loose = {str(p.relative_to(gw.home)): oct(mode(p)) for p in gw.home.rglob("*")
             if mode(p) & 0o077}
    assert loose == {}, f"readable by others in the data folder: {loose}"


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_iss15_06_a_busy_log_in_the_config_folder_costs_the_gateway_no_cpu(make_gateway, tmp_path):
    gw = make_gateway({"c": python_server("chatty_server.py")})
    assert gw.config.parent == tmp_path
    # A trace log kept in the config folder, written as fast as a chatty tool writes it
    # (the issue saw 124 MB in 7 s), for three seconds.
    log = tmp_path / "trace.log"
    stop = time.monotonic() + 3.0
    written = [0]

    def writer():
        with open(log, "w") as f:
            line = "trace " + "x" * 120 + "\n"
            while time.monotonic() < stop and written[0] < 5_000_000:
                f.write(line)
                f.flush()
                written[0] += 1

    before = cpu_seconds(gw.proc.pid)
    t = threading.Thread(target=writer)
    t.start()
    t.join(10)
    used = cpu_seconds(gw.proc.pid) - before
    log.unlink()  # tens of megabytes: not kept with the test's folder
    assert written[0] > 10_000, f"the writer wrote only {written[0]} lines"
    # A gateway that watches only its policy files uses none; one whose watcher woke for
    # every write used half a second here (and slowed the writer down by half).
    assert used < 0.2, f"the gateway used {used:.2f} s of CPU while {written[0]} log lines were written beside its config"
    assert gw.status()["policy_version"], "still serving"


async def test_iss15_06_a_token_inside_a_longer_argument_is_redacted_in_the_journal_and_log(make_gateway, tmp_path):
    gw = make_gateway({"c": python_server("chatty_server.py")}, policy={"allow": ["mcp__c"]})
    url = f"https://api.example.com/v1/items?key={TOKEN}&page=2"
    async with connect(gw, "http", "c") as client:
        with pytest.raises(MCPError):
            await client.call_tool("fetch", {"url": url})
    record = gw.wait_audit(lambda r: r["tool"] == "fetch" and r["outcome"], "the call's record and outcome")[0]
    text = str(record)
    assert TOKEN not in text, f"the token is in the audit record: {record}"
    assert record["arguments"]["url"].startswith("https://api.example.com/v1/items?key=[redacted:"), record["arguments"]
    assert record["arguments"]["url"].endswith("&page=2")
    assert "cannot fetch https://api.example.com/v1/items?key=[redacted:" in (record["detail"] or ""), record
    wait_for(lambda: "chatty: fetch called with" in gw.log_path.read_text(), what="the server's stderr in the log")
    logged = gw.log_path.read_text()
    assert TOKEN not in logged, "the token is in the gateway's log"
    assert "key=[redacted]&page=2" in logged
