"""Upstreams of every kind behind the gateway: a remote streamable HTTP server, and the
pinned Python servers (time, git) beside the npm ones."""

import subprocess
from contextlib import contextmanager

import mcp.types as types
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
