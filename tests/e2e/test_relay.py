"""The relay end to end: a real MCP client, the real gateway, real upstream servers."""

import json
import os
import re
import signal
import subprocess

import anyio
import mcp.types as types
from mcp.shared.exceptions import MCPError
import pytest

from conftest import BIN, connect, everything_server, fast_server, fs_server, memory_server, text_of, until, wait_tool

pytestmark = pytest.mark.anyio
FACES = ["http", "stdio"]


@pytest.mark.parametrize("face", FACES)
async def test_list_and_call_through_each_face(make_gateway, files, face):
    gw = make_gateway({"fs": fs_server(files)})
    async with connect(gw, face, "fs") as client:
        names = [t.name for t in (await client.list_tools()).tools]
        assert "read_text_file" in names and "write_file" in names
        result = await client.call_tool("read_text_file", {"path": str(files / "hello.txt")})
        assert not result.is_error
        assert "hello from countersign" in text_of(result)
    records = gw.wait_audit(lambda r: r["tool"] == "read_text_file" and r["outcome"] == "ok", "the read's record")
    assert records[0]["decision"] == "allow"
    assert records[0]["client"] == ("pytest" if face == "http" else "stdio-shim")


async def test_aggregate_endpoint_namespaces_every_server(make_gateway, files, tmp_path):
    gw = make_gateway({"fs": fs_server(files), "memory": memory_server(tmp_path / "mem.jsonl")})
    async with connect(gw, "http", None) as client:
        assert client.server_info.name == "countersign"
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"fs__read_text_file", "memory__read_graph", "memory__create_entities"} <= names
        assert not any(n.startswith("read_text_file") for n in names)
        result = await client.call_tool("fs__read_text_file", {"path": str(files / "hello.txt")})
        assert "hello from countersign" in text_of(result)
        graph = await client.call_tool("memory__read_graph", {})
        assert not graph.is_error, text_of(graph)
        with pytest.raises(MCPError, match="unknown tool `nosuch__tool`"):
            await client.call_tool("nosuch__tool", {})


@pytest.mark.parametrize("face", FACES)
async def test_denied_write_leaves_the_file_unwritten(make_gateway, files, face):
    gw = make_gateway({"fs": fs_server(files)}, policy={"deny": ["mcp__fs__write_file"]})
    target = files / "denied.txt"
    async with connect(gw, face, "fs") as client:
        result = await client.call_tool("write_file", {"path": str(target), "content": "nope"})
    assert result.is_error
    text = text_of(result)
    assert "mcp__fs__write_file" in text and "deny:mcp__fs__write_file" in text and "ask your administrator" in text
    assert not target.exists()
    rec = gw.wait_audit(lambda r: r["tool"] == "write_file" and r["outcome"], "the denial's record")[0]
    assert (rec["decision"], rec["outcome"], rec["rule"]) == ("deny", "denied", "deny:mcp__fs__write_file")
    assert rec["arguments"]["path"] == str(target)


@pytest.mark.parametrize("face", FACES)
async def test_approved_write_writes_the_file(make_gateway, files, face):
    gw = make_gateway({"fs": fs_server(files)}, policy={"ask": ["mcp__fs__write_file"]})
    target = files / "approved.txt"
    async with connect(gw, face, "fs") as client:
        async with anyio.create_task_group() as tg:
            answered = {}

            async def approve():
                answered["prompt"] = await anyio.to_thread.run_sync(gw.answer_next, "approve")

            tg.start_soon(approve)
            result = await client.call_tool("write_file", {"path": str(target), "content": "yes"})
    assert not result.is_error, text_of(result)
    assert target.read_text() == "yes"
    assert answered["prompt"]["tool"] == "write_file"
    assert answered["prompt"]["arguments"] == {"path": str(target), "content": "yes"}
    rec = gw.wait_audit(lambda r: r["tool"] == "write_file" and r["outcome"], "the approved call's outcome")[0]
    assert (rec["decision"], rec["approval"], rec["outcome"]) == ("ask", "approved", "ok")


async def test_a_denied_prompt_does_not_write(make_gateway, files):
    gw = make_gateway({"fs": fs_server(files)}, policy={"ask": ["mcp__fs__write_file"]})
    target = files / "no.txt"
    async with connect(gw, "http", "fs") as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, gw.answer_next, "deny")
            result = await client.call_tool("write_file", {"path": str(target), "content": "x"})
    assert result.is_error and "denied" in text_of(result)
    assert not target.exists()


async def test_an_unanswered_prompt_times_out_as_denied(make_gateway, files):
    gw = make_gateway({"fs": fs_server(files)}, policy={"ask": ["mcp__fs__write_file"]},
                      gateway={"approval_timeout_secs": 1})
    target = files / "late.txt"
    async with connect(gw, "http", "fs") as client:
        result = await client.call_tool("write_file", {"path": str(target), "content": "x"})
    assert result.is_error and "no answer within 1s" in text_of(result)
    assert not target.exists()
    rec = gw.wait_audit(lambda r: r["tool"] == "write_file" and r["outcome"], "the timeout's record")[0]
    assert (rec["approval"], rec["outcome"]) == ("timeout", "timeout")
    assert gw.status()["approvals"] == []


@pytest.mark.parametrize("face", FACES)
async def test_progress_reaches_the_client_with_its_own_token(make_gateway, face):
    gw = make_gateway({"everything": everything_server()})
    seen = []

    async def on_progress(progress, total, message):
        seen.append((progress, total))

    async with connect(gw, face, "everything") as client:
        result = await client.call_tool("trigger-long-running-operation", {"duration": 0.3, "steps": 3},
                                        progress_callback=on_progress)
    assert "completed" in text_of(result)
    assert seen == [(1, 3), (2, 3), (3, 3)]


async def test_cancellation_frees_the_request(make_gateway):
    gw = make_gateway({"everything": everything_server()})
    async with connect(gw, "http", "everything") as client:
        with anyio.move_on_after(1.0):
            await client.call_tool("trigger-long-running-operation", {"duration": 30, "steps": 30})
        await until(lambda: all(s["pending"] == 0 for s in gw.status()["sessions"]), what="the cancelled call to clear")
        # The session still works after the cancellation.
        echo = await client.call_tool("echo", {"message": "still here"})
        assert "still here" in text_of(echo)


async def test_list_changed_reaches_the_client(make_gateway):
    gw = make_gateway({"everything": everything_server()})
    changed = anyio.Event()

    async def handler(message):
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async def sampling(context, params):
        return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="x"),
                                         model="m")

    # server-everything registers its conditional tools after `initialized`, announcing them.
    async with connect(gw, "http", "everything", message_handler=handler, sampling_callback=sampling) as client:
        with anyio.fail_after(20):
            await changed.wait()
        names = {t.name for t in (await client.list_tools()).tools}
        assert "trigger-sampling-request" in names


@pytest.mark.parametrize("face", FACES)
async def test_sampling_and_elicitation_round_trip_to_the_client(make_gateway, face):
    gw = make_gateway({"everything": everything_server()}, policy={"allow": ["mcp__everything"]})
    asked = {}

    async def sampling(context, params):
        asked["sampling"] = params.messages[0].content.text
        return types.CreateMessageResult(role="assistant", model="test-model",
                                         content=types.TextContent(type="text", text="sampled answer"))

    async def elicitation(context, params):
        asked["elicitation"] = params.message
        return types.ElicitResult(action="decline")

    async with connect(gw, face, "everything", sampling_callback=sampling,
                       elicitation_callback=elicitation) as client:
        await wait_tool(client, "trigger-sampling-request")
        result = await client.call_tool("trigger-sampling-request", {"prompt": "hi there", "maxTokens": 5})
        assert "sampled answer" in text_of(result), text_of(result)
        assert "hi there" in asked["sampling"]
        result = await client.call_tool("trigger-elicitation-request", {})
        assert "elicitation" in asked and not result.is_error, text_of(result)




async def test_an_upstream_killed_mid_call_fails_the_call_and_restarts(make_gateway):
    gw = make_gateway({"everything": everything_server()})
    async with connect(gw, "http", "everything") as client:
        # Listed first, so the only request in flight below is the call itself.
        await client.list_tools()
        async with anyio.create_task_group() as tg:
            outcome = {}

            async def long_call():
                with pytest.raises(MCPError) as failed:
                    await client.call_tool("trigger-long-running-operation", {"duration": 60, "steps": 60})
                outcome["error"] = str(failed.value)

            tg.start_soon(long_call)
            await until(lambda: any(s["pending"] for s in gw.status()["sessions"]), what="the call to be in flight")
            pids = await until(lambda: [p for p, _ in gw.children()], what="the upstream process")
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
        assert "upstream server `everything` stopped before answering (it exited (signal: 9" in outcome["error"]
        # No zombies left behind, and the next call starts a fresh upstream.
        await until(lambda: not [p for p, stat in gw.children() if p in pids], what="the killed upstream to be reaped")
        echo = await client.call_tool("echo", {"message": "back"})
        assert "back" in text_of(echo)


def test_shim_without_a_gateway_answers_with_an_error(tmp_path):
    env = {**os.environ, "COUNTERSIGN_HOME": str(tmp_path / "empty")}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    r = subprocess.run([str(BIN), "connect", "fs"], input=json.dumps(init) + "\n", env=env,
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0
    reply = json.loads(r.stdout.splitlines()[0])
    assert reply["id"] == 1 and "not running" in reply["error"]["message"]
    assert "no gateway is running" in r.stderr


def test_a_config_mistake_names_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[servers.fs]\ncomand = "npx"\n')
    env = {**os.environ, "COUNTERSIGN_HOME": str(tmp_path / "h")}
    r = subprocess.run([str(BIN), "serve", "--config", str(bad)], env=env, capture_output=True, text=True, timeout=20)
    assert r.returncode != 0
    assert f"{bad}:2:1: comand: unknown field `comand`" in r.stderr


async def test_audit_export_has_the_contract_fields(make_gateway, files):
    gw = make_gateway({"fs": fs_server(files)})
    async with connect(gw, "http", "fs") as client:
        await client.call_tool("read_text_file", {"path": str(files / "hello.txt")})
    rec = gw.wait_audit(lambda r: r["kind"] == "call" and r["outcome"] == "ok", "the call's record")[0]
    for field in ["id", "time", "user", "device", "client", "session", "server", "tool", "arguments", "decision",
                  "rule", "policy_version", "outcome", "duration_ms"]:
        assert field in rec, field
    assert rec["policy_version"].startswith("sha256:")
    assert rec["client_name"] and rec["duration_ms"] >= 0


@pytest.mark.parametrize("face", FACES)
async def test_a_default_client_speaks_2026_07_28_statelessly_to_a_stdio_server(make_gateway, files, face):
    """The SDK's default mode probes 2026-07-28 `server/discover` first. On the HTTP face
    the gateway serves it statelessly, translated onto one session of its own with the
    stdio server, and each call is decided and recorded as a stateless one. The stdio shim
    sends no 2026-07-28 headers, so there the gateway answers that it uses the handshake
    and the client falls back to initialize."""
    gw = make_gateway({"fs": fs_server(files)})
    async with connect(gw, face, "fs", mode="auto") as client:
        assert client.protocol_version == ("2026-07-28" if face == "http" else "2025-11-25")
        result = await client.call_tool("read_text_file", {"path": str(files / "hello.txt")})
        assert "hello from countersign" in text_of(result)
    rec = gw.wait_audit(lambda r: r["tool"] == "read_text_file" and r["outcome"], "the call's record")[0]
    assert rec["decision"] == "allow"
    assert rec["session"].startswith("stateless") == (face == "http"), rec


async def test_a_default_client_speaks_2026_07_28_statelessly_on_the_aggregate_endpoint(make_gateway, files):
    """The same client on the aggregate `/mcp`: discover is answered for the gateway, the
    listing is every server's tools by their namespaced names, and a call is decided and
    recorded as a stateless one, as on `/mcp/<server>`."""
    gw = make_gateway({"fs": fs_server(files)})
    async with connect(gw, "http", None, mode="auto") as client:
        assert client.protocol_version == "2026-07-28"
        names = {t.name for t in (await client.list_tools()).tools}
        assert "fs__read_text_file" in names, names
        result = await client.call_tool("fs__read_text_file", {"path": str(files / "hello.txt")})
        assert "hello from countersign" in text_of(result)
    rec = gw.wait_audit(lambda r: r["tool"] == "read_text_file" and r["outcome"], "the call's record")[0]
    assert (rec["decision"], rec["server"]) == ("allow", "fs"), rec
    assert rec["session"].startswith("stateless"), rec


async def test_a_hanging_upstream_hits_the_request_time_limit(make_gateway, tmp_path):
    from conftest import python_server

    gw = make_gateway({"hang": {**python_server("misbehaving_server.py", "hang", str(tmp_path / "s")),
                                "trusted": True}}, limits={"request_timeout_secs": 1})
    async with connect(gw, "http", "hang") as client:
        with pytest.raises(MCPError, match="did not answer within 1s"):
            await client.call_tool("poke", {})
    rec = gw.wait_audit(lambda r: r["tool"] == "poke" and r["outcome"], "the timed-out call's outcome")[0]
    assert rec["outcome"] == "error" and "within 1s" in rec["detail"]


async def test_answered_calls_leave_no_timers_or_tasks_behind(make_gateway):
    # Each forwarded call has a deadline; an answered call must leave nothing waiting for
    # it (a timer per call once held ~1 KiB for the whole request_timeout_secs).
    gw = make_gateway({"everything": everything_server()}, policy={"allow": ["mcp__everything__echo"]})
    async with connect(gw, "http", "everything") as client:
        await client.call_tool("echo", {"message": "warm"})
        before = gw.status()["tasks"]
        for i in range(300):
            result = await client.call_tool("echo", {"message": f"m{i}"})
            assert f"m{i}" in text_of(result)
        after = gw.status()["tasks"]
    assert after - before < 20, f"live tasks grew from {before} to {after} over 300 answered calls"


async def test_a_calls_log_lines_carry_its_session_and_call_but_never_its_arguments(make_gateway, monkeypatch):
    """At debug level, what the gateway logs while it handles a call names the session
    (id, client token) and the call (server, tool, record id, decision), so one call's
    lines can be found; no argument value appears anywhere in the log."""
    monkeypatch.setenv("COUNTERSIGN_LOG", "debug")
    gw = make_gateway({"fast": fast_server()}, policy={"allow": ["mcp__fast"]})
    marker = "argument-value-3f9c1e"
    async with connect(gw, "http", "fast") as client:
        result = await client.call_tool("echo", {"text": marker})
        assert not result.is_error and marker in text_of(result)
    record = gw.wait_audit(lambda r: r["tool"] == "echo" and r["outcome"] == "ok", "the call's record")[0]
    log = re.sub(r"\x1b\[[0-9;]*m", "", gw.log_path.read_text())
    pattern = (r"session\{session=([\w-]{32}) token=pytest\}:call\{server=fast tool=echo call=" + record["id"]
               + r" decision=allow\}: .*decided")
    found = re.search(pattern, log)
    assert found, f"no line of the call carries its spans:\n{log}"
    assert found.group(1) == record["session"], "the span names the record's session"
    assert marker not in log, "an argument value reached the log"


def test_aggregate_endpoint_routes_resources_and_completions_without_a_listing(make_gateway, tmp_path):
    """On /mcp a client may read a resource it never listed (a template URI included),
    and complete a namespaced prompt's or a template's arguments: each reaches the one
    server that offers it. A URI nobody offers is MCP's "resource not found" with its URI."""
    from conftest import Rpc
    gw = make_gateway({"e": everything_server(), "m": memory_server(tmp_path / "mem.jsonl")})
    rpc = Rpc(gw, "/mcp")
    templated = "demo://resource/dynamic/text/7"
    read = rpc.request("resources/read", {"uri": templated})
    assert read["result"]["contents"][0]["uri"] == templated, read
    prompt = rpc.request("completion/complete", {"ref": {"type": "ref/prompt", "name": "e__completable-prompt"},
                                                 "argument": {"name": "department", "value": "Eng"}})
    assert prompt["result"]["completion"]["values"] == ["Engineering"], prompt
    template = rpc.request("completion/complete",
                           {"ref": {"type": "ref/resource", "uri": "demo://resource/dynamic/text/{resourceId}"},
                            "argument": {"name": "resourceId", "value": "1"}})
    assert "result" in template and isinstance(template["result"]["completion"]["values"], list), template
    unknown = rpc.request("resources/read", {"uri": "nosuch://thing"})
    assert unknown["error"]["code"] == -32602 and unknown["error"]["data"] == {"uri": "nosuch://thing"}, unknown
    bad_prompt = rpc.request("completion/complete", {"ref": {"type": "ref/prompt", "name": "completable-prompt"},
                                                     "argument": {"name": "department", "value": ""}})
    assert bad_prompt["error"]["code"] == -32602 and "server__prompt" in bad_prompt["error"]["message"]
    # Each reached server `e` under its own names, on record.
    gw.wait_audit(lambda r: r.get("method") == "resources/read" and r.get("server") == "e" and r["outcome"] == "ok",
                  "the templated read's record")
    done = gw.wait_audit(lambda r: r.get("method") == "completion/complete" and r["outcome"] == "ok",
                         "the completions' records")
    assert {r["server"] for r in done} == {"e"}
