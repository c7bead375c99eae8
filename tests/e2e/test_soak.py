"""Soak: mixed load on one gateway for COUNTERSIGN_SOAK_SECONDS (60 in `make test`, 1,800
in `make soak`) while every upstream process is killed with SIGKILL once a minute (twice in a short run; the
gateway starts them again on the next call). The load: 8 clients calling the fast
fixture without pause, sessions opened and closed on server-memory every second with a
write and a read, and a `tools/list` on the aggregate endpoint every second. Every few
seconds the gateway's RSS and open files are sampled; after the first fifth of the run
(warm-up) neither may grow beyond a stated bound, and no call may fail except those in
flight when their upstream was killed. Every load thread must run to the end and do its
share: one that dies (its exception is collected, not left as a warning), hangs or does
too little fails the test. With COUNTERSIGN_SOAK_REPORT set, the samples, counts and each
thread's work are written there as JSON."""

import http.client
import json
import os
import signal
import threading
import time
import traceback

from conftest import Rpc, fast_server, memory_server, rss_mib

SECONDS = int(os.environ.get("COUNTERSIGN_SOAK_SECONDS", "60"))
# Upstreams are killed this often: once a minute, or twice in a short run.
KILL_EVERY = min(60, max(10, SECONDS // 2))
RSS_BOUND_MIB = 24
FILES_BOUND = 48


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_soak_mixed_load_with_upstream_restarts_keeps_memory_and_files_bounded(make_gateway, tmp_path):
    gw = make_gateway({"fast": fast_server(), "memory": memory_server(tmp_path / "memory.json")},
                      policy={"allow": ["mcp__fast__echo", "mcp__memory"]})
    pid = gw.proc.pid
    end = time.monotonic() + SECONDS
    counts = {"calls": 0, "failed": 0, "excused": 0, "sessions": 0, "lists": 0, "kills": 0}
    lock = threading.Lock()
    # Each kill's window: from the kill until a call through the restarted upstreams has
    # succeeded. A call that overlapped a window may fail (it was in flight, or queued
    # behind the restart); any other failure counts against the gateway.
    windows: list[list[float]] = []

    # Every load thread must run to the end and do its share: an exception in one is
    # collected here (a thread's exception is otherwise only a warning), and the test
    # fails if any thread died, hung or did too little.
    errors: list[str] = []
    finished: set[str] = set()
    work: dict[str, int] = {}

    def count(key: str, n: int = 1):
        with lock:
            counts[key] += n

    def did(name: str):
        with lock:
            work[name] = work.get(name, 0) + 1

    def settle(started: float, ok: bool):
        if ok:
            return
        now = time.monotonic()
        with lock:
            overlapped = any(start <= now and (end is None or started <= end) for start, end in windows)
            counts["excused" if overlapped else "failed"] += 1

    def caller(name: str):
        rpc = None
        while time.monotonic() < end:
            started = time.monotonic()
            try:
                rpc = rpc or Rpc(gw, "/mcp/fast")
                ok = rpc.call("tools/call", {"name": "echo", "arguments": {"text": "soak"}})
            except (OSError, http.client.HTTPException):
                rpc, ok = None, False  # a new session on the next call
            count("calls")
            did(name)
            settle(started, ok)

    def churn(name: str):
        n = 0
        while time.monotonic() < end:
            n += 1
            started = time.monotonic()
            try:
                rpc = Rpc(gw, "/mcp/memory")
                ok = rpc.call("tools/call", {"name": "create_entities", "arguments": {"entities": [
                    {"name": f"e{n % 50}", "entityType": "t", "observations": []}]}})
                ok = rpc.call("tools/call", {"name": "read_graph", "arguments": {}}) and ok
                rpc.close()
            except (OSError, http.client.HTTPException):
                ok = False
            count("sessions")
            did(name)
            settle(started, ok)
            time.sleep(1)  # pacing: one session a second

    def lister(name: str):
        rpc = None
        while time.monotonic() < end:
            started = time.monotonic()
            try:
                rpc = rpc or Rpc(gw, "/mcp")
                ok = rpc.call("tools/list", {})
            except (OSError, http.client.HTTPException):
                rpc, ok = None, False
            settle(started, ok)
            count("lists")
            did(name)
            time.sleep(1)  # pacing: one listing a second

    def load(name: str, body) -> threading.Thread:
        def run():
            try:
                body(name)
            except BaseException:  # noqa: BLE001  (reported below, failing the test)
                with lock:
                    errors.append(f"{name}: {traceback.format_exc()}")
            else:
                with lock:
                    finished.add(name)
        return threading.Thread(target=run, name=name, daemon=True)

    threads = [load(f"caller-{i}", caller) for i in range(8)]
    threads += [load("churn", churn), load("lister", lister)]
    for t in threads:
        t.start()
    samples = []
    next_kill = time.monotonic() + KILL_EVERY
    while time.monotonic() < end:
        samples.append({"t": round(SECONDS - (end - time.monotonic()), 1), "rss_mib": rss_mib(pid),
                        "files": open_files(pid)})
        if time.monotonic() >= next_kill:
            # Every upstream goes at once, as a crash would take them.
            with lock:
                windows.append([time.monotonic(), None])
            for child, _ in gw.children():
                try:
                    os.kill(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            count("kills")
            next_kill += KILL_EVERY
            probe = Rpc(gw, "/mcp/fast")
            deadline = time.monotonic() + 60
            while not probe.call("tools/call", {"name": "echo", "arguments": {"text": "probe"}}):
                assert time.monotonic() < deadline, "the upstream never came back after the kill"
                time.sleep(0.2)  # pacing: poll until the restarted upstream answers
            probe.close()
            with lock:
                windows[-1][1] = time.monotonic()
        time.sleep(min(5, max(0.0, end - time.monotonic())))  # pacing: sample every 5 s
    for t in threads:
        t.join(60)

    warm = [s for s in samples if s["t"] >= SECONDS / 5]
    rss_growth = max(s["rss_mib"] for s in warm) - warm[0]["rss_mib"]
    files_growth = max(s["files"] for s in warm) - warm[0]["files"]
    report = os.environ.get("COUNTERSIGN_SOAK_REPORT")
    if report:
        with open(report, "w") as f:
            json.dump({"seconds": SECONDS, "counts": counts, "rss_growth_mib": rss_growth,
                       "files_growth": files_growth, "work": work, "samples": samples}, f, indent=1)
    assert not errors, "a load thread died:\n" + "\n".join(errors)
    assert not [t.name for t in threads if t.is_alive()], "a load thread never finished (a call hung)"
    assert finished == {t.name for t in threads}, f"load threads that did not run to the end: {finished}"
    # Each did its share: every caller at least 3 calls a second (the 8 together average
    # above 100), the session churn and the listing about one a second.
    assert all(work.get(f"caller-{i}", 0) >= SECONDS * 3 for i in range(8)), work
    assert work.get("churn", 0) > SECONDS / 3 and work.get("lister", 0) > SECONDS / 3, work
    assert counts["calls"] > SECONDS * 100 and counts["sessions"] > SECONDS / 3, counts
    assert counts["kills"] >= SECONDS // KILL_EVERY - 1
    assert counts["failed"] == 0, counts
    assert counts["excused"] <= counts["kills"] * 200, counts
    assert rss_growth <= RSS_BOUND_MIB, f"RSS grew {rss_growth:.1f} MiB after warm-up: {samples}"
    assert files_growth <= FILES_BOUND, f"open files grew by {files_growth} after warm-up: {samples}"
