"""Upstreams of every kind behind the gateway: a remote streamable HTTP server (and one
that answers a call with an empty body), and the pinned Python servers (time, git)
beside the npm ones."""

import json
import subprocess
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import mcp.types as types
from mcp.shared.exceptions import MCPError
import pytest

from conftest import NODE_BIN, FIXTURES, background, connect, text_of, wait_for, wait_tool

pytestmark = pytest.mark.anyio


@contextmanager
def remote(tmp_path, transport: str, path: str):
    """server-everything on one of its HTTP transports, as a remote server; yields its URL."""
    with background(lambda port: [str(NODE_BIN / "mcp-server-everything"), transport],
                    tmp_path / f"remote-{transport}.log", env=lambda port: {"PORT": str(port)}) as server:
        yield f"http://127.0.0.1:{server.port}{path}"


@pytest.fixture
def remote_everything(tmp_path):
    with remote(tmp_path, "streamableHttp", "/mcp") as url:
        yield url


@pytest.fixture
def legacy_everything(tmp_path):
    with remote(tmp_path, "sse", "/sse") as url:
        yield url


async def test_a_legacy_sse_upstream_is_reached_by_fallback(make_gateway, legacy_everything):
    gw = make_gateway({"old": {"url": legacy_everything, "trusted": True}}, policy={"allow": ["mcp__old"]})
    progress = []

    async def on_progress(p, total, message):
        progress.append(p)

    async with connect(gw, "http", "old") as client:
        echo = await client.call_tool("echo", {"message": "from 2024"})
        assert "from 2024" in text_of(echo)
        done = await client.call_tool("trigger-long-running-operation", {"duration": 0.2, "steps": 2},
                                      progress_callback=on_progress)
        assert "completed" in text_of(done) and progress == [1, 2]
    assert "legacy HTTP+SSE transport" in gw.log_path.read_text()


async def test_a_remote_streamable_http_upstream_relays_faithfully(make_gateway, remote_everything):
    gw = make_gateway({"remote": {"url": remote_everything, "headers": {"X-Countersign-Test": "1"},
                                  "trusted": True}}, policy={"allow": ["mcp__remote"]})
    progress = []
    sampled = {}

    async def on_progress(p, total, message):
        progress.append(p)

    async def sampling(context, params):
        sampled["prompt"] = params.messages[0].content.text
        return types.CreateMessageResult(role="assistant", model="m",
                                         content=types.TextContent(type="text", text="remote sampled"))

    async with connect(gw, "http", "remote", sampling_callback=sampling) as client:
        echo = await client.call_tool("echo", {"message": "over http"})
        assert "over http" in text_of(echo)
        done = await client.call_tool("trigger-long-running-operation", {"duration": 0.2, "steps": 2},
                                      progress_callback=on_progress)
        assert "completed" in text_of(done) and progress == [1, 2]
        await wait_tool(client, "trigger-sampling-request")
        result = await client.call_tool("trigger-sampling-request", {"prompt": "from afar", "maxTokens": 5})
        assert "remote sampled" in text_of(result) and "from afar" in sampled["prompt"]
    rec = gw.wait_audit(lambda r: r["tool"] == "echo" and r["outcome"] == "ok", "the remote call's record")[0]
    assert rec["server"] == "remote"


async def test_python_servers_time_and_git(make_gateway, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    venv = FIXTURES / ".venv" / "bin"
    gw = make_gateway({
        "time": {"command": str(venv / "mcp-server-time"), "args": ["--local-timezone", "UTC"], "trusted": True},
        "git": {"command": str(venv / "mcp-server-git"), "args": ["--repository", str(repo)], "trusted": True},
    }, policy={"allow": ["mcp__time__get_current_time", "mcp__git__git_status"]})
    async with connect(gw, "http", None) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"time__get_current_time", "git__git_status"} <= names
        now = await client.call_tool("time__get_current_time", {"timezone": "UTC"})
        assert "UTC" in text_of(now), text_of(now)
        status = await client.call_tool("git__git_status", {"repo_path": str(repo)})
        assert not status.is_error, text_of(status)


class BlankCalls(BaseHTTPRequestHandler):
    """A streamable HTTP MCP server that lists one tool and answers every call of it with
    HTTP 200 and an empty body (no answer, no stream to resume)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status: int, body: bytes = b"", headers: tuple = ()):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.reply(405)

    def do_DELETE(self):
        self.reply(200)

    def do_POST(self):
        message = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        method, mid = message.get("method"), message.get("id")
        if method is None or mid is None:
            return self.reply(202)
        headers = ()
        if method == "initialize":
            result = {"protocolVersion": message["params"]["protocolVersion"], "capabilities": {"tools": {}},
                      "serverInfo": {"name": "blank", "version": "1"}}
            headers = (("Mcp-Session-Id", "blank-session"),)
        elif method == "tools/list":
            result = {"tools": [{"name": "lookup", "inputSchema": {"type": "object"},
                                 "annotations": {"readOnlyHint": True}}]}
        elif method == "tools/call":
            return self.reply(200)
        else:
            result = {}
        self.reply(200, json.dumps({"jsonrpc": "2.0", "id": mid, "result": result}).encode(), headers)


@pytest.fixture
def blank_calls():
    server = ThreadingHTTPServer(("127.0.0.1", 0), BlankCalls)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/mcp"
    server.shutdown()
    server.server_close()


async def test_a_call_answered_with_an_empty_body_fails_at_once_and_is_recorded_as_an_error(make_gateway,
                                                                                         blank_calls):
    gw = make_gateway({"blank": {"url": blank_calls, "trusted": True}}, policy={"allow": ["mcp__blank"]},
                      limits={"request_timeout_secs": 300})
    async with connect(gw, "http", "blank") as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["lookup"]
        started = time.monotonic()
        with anyio.fail_after(20), pytest.raises(MCPError) as failed:
            await client.call_tool("lookup", {"q": "x"})
        assert time.monotonic() - started < 20, "at once, not at the 300 s request timeout"
    assert "upstream server `blank` answered HTTP 200 OK with an empty body" in str(failed.value), failed.value
    rec = gw.wait_audit(lambda r: r["tool"] == "lookup" and r["outcome"], "the call's outcome")[0]
    assert rec["outcome"] == "error" and "empty body" in rec["detail"], rec
