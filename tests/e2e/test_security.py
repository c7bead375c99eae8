"""Cases 1 to 8 of the shared security cases, against the running gateway over real HTTP."""

import http.client
import json
import os
import stat
import subprocess

import pytest

from conftest import BIN, connect, fs_server, python_server, text_of, wait_for, write_config

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "sec", "version": "1"}}}


def post(gw, path, body, headers=None, token=True, raw=False):
    host, port = gw.addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    h = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        h["Authorization"] = f"Bearer {gw.token if token is True else token}"
    h.update(headers or {})
    data = body if raw else json.dumps(body)
    try:
        conn.request("POST", path, body=data, headers=h)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the gateway answered (413) and closed before the whole body was sent
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp, payload


def request(gw, method, path, headers):
    host, port = gw.addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request(method, path, headers=headers)
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp, payload


def rpc_error(payload):
    return json.loads(payload)["error"]


def session(gw, token=True):
    resp, _ = post(gw, "/mcp/fs", INIT, token=token)
    assert resp.status == 200
    return resp.getheader("Mcp-Session-Id")


@pytest.fixture
def gw(make_gateway, files):
    return make_gateway({"fs": fs_server(files)}, policy={"ask": ["mcp__fs__write_file"]})


def test_sec_01_foreign_host_and_origin_are_refused_and_audited(gw):
    for headers in [{"Host": "evil.test"}, {"Host": f"evil.test:{gw.addr.rsplit(':', 1)[1]}"},
                    {"Origin": "https://evil.test"}, {"Origin": "null"}, {"Origin": "file://"},
                    {"Origin": "chrome-extension://abcdef"}]:
        resp, _ = post(gw, "/mcp/fs", INIT, headers=headers)
        assert resp.status == 403, headers
        assert resp.getheader("Access-Control-Allow-Origin") is None
    assert gw.children() == [], "nothing may be forwarded: no upstream started"
    rejected = wait_for(lambda: [r for r in gw.audit() if r["outcome"] == "rejected"][5:] and
                        [r for r in gw.audit() if r["outcome"] == "rejected"], what="all six rejections' records")
    assert len(rejected) == 6
    assert {r["decision"] for r in rejected} == {"deny"}


def test_sec_02_only_loopback_is_bound(gw, tmp_path):
    assert gw.addr.startswith("127.0.0.1:")
    bad = write_config(tmp_path / "open.toml", {}, gateway={})
    bad.write_text(bad.read_text().replace("127.0.0.1:0", "0.0.0.0:47999"))
    r = subprocess.run([str(BIN), "serve", "--config", str(bad)], env=gw.env, capture_output=True, text=True,
                       timeout=20)
    assert r.returncode != 0 and "0.0.0.0 is not a loopback address" in r.stderr


def test_sec_03_token_required_and_kept_private(gw):
    resp, _ = post(gw, "/mcp/fs", INIT, token=False)
    assert resp.status == 401 and resp.getheader("WWW-Authenticate") == "Bearer"
    resp, _ = post(gw, "/mcp/fs", INIT, token="cst_wrong")
    assert resp.status == 401
    resp, _ = post(gw, f"/mcp/fs?token={gw.token}", INIT, token=False)
    assert resp.status == 401
    resp, _ = post(gw, f"/mcp/fs?access_token={gw.token}", INIT)
    assert resp.status == 401, "a token in the URL is refused even beside a good header"
    for name in ["tokens.json", "control.token", "gateway.json"]:
        mode = stat.S_IMODE(os.stat(gw.home / name).st_mode)
        assert mode == 0o600, (name, oct(mode))
    assert not (gw.home / "shim.token").exists(), "the shim's token lives in the keychain, not in a file"
    assert stat.S_IMODE(os.stat(gw.home).st_mode) == 0o700
    assert gw.token not in (gw.home / "tokens.json").read_text()
    gw.wait_audit(lambda r: r["outcome"] == "rejected", "the rejections")
    assert gw.token not in gw.log_path.read_text()
    assert gw.token.encode() not in (gw.home / "audit.db").read_bytes()


def test_sec_04_browser_requests_and_cors_are_refused(gw):
    resp, _ = post(gw, "/mcp/fs", json.dumps(INIT), headers={"Content-Type": "text/plain"}, raw=True)
    assert resp.status == 415
    resp, _ = request(gw, "OPTIONS", "/mcp/fs", {"Origin": "https://evil.test",
                                                  "Access-Control-Request-Method": "POST"})
    assert resp.status == 403
    resp, _ = request(gw, "OPTIONS", "/mcp/fs", {})
    assert resp.status == 403
    resp, _ = post(gw, "/mcp/fs", INIT)
    assert resp.status == 200
    assert not [h for h, _ in resp.getheaders() if h.lower().startswith("access-control-")]


def test_sec_05_sessions_are_bound_to_their_client(gw):
    sid = session(gw)
    assert len(sid) >= 22, "at least 128 random bits"
    other = gw.cli("token", "create", "other").stdout.strip()
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    resp, payload = post(gw, "/mcp/fs", listing, headers={"Mcp-Session-Id": sid}, token=other)
    assert resp.status == 404, payload
    resp, _ = post(gw, "/mcp", listing, headers={"Mcp-Session-Id": sid})
    assert resp.status == 404, "a session belongs to the endpoint that opened it"
    resp, _ = post(gw, "/mcp/fs", listing, headers={"Mcp-Session-Id": "0" * 32})
    assert resp.status == 404
    resp, payload = post(gw, "/mcp/fs", listing, headers={"Mcp-Session-Id": sid})
    assert resp.status == 200 and "read_text_file" in payload.decode()


def test_sec_06_mcp_headers_must_match_the_body(gw):
    sid = session(gw)
    call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "delete_repo", "arguments": {}}}
    resp, payload = post(gw, "/mcp/fs", call, headers={"Mcp-Session-Id": sid, "Mcp-Name": "read_file"})
    assert resp.status == 400 and rpc_error(payload)["code"] == -32020
    resp, payload = post(gw, "/mcp/fs", call, headers={"Mcp-Session-Id": sid, "Mcp-Method": "tools/list"})
    assert resp.status == 400 and rpc_error(payload)["code"] == -32020
    # Control: headers that agree with the body pass, and the call runs.
    files = gw.config.parent / "files"
    read = {"jsonrpc": "2.0", "id": 4, "method": "tools/call",
            "params": {"name": "read_text_file", "arguments": {"path": str(files / "hello.txt")}}}
    resp, payload = post(gw, "/mcp/fs", read, headers={"Mcp-Session-Id": sid, "Mcp-Method": "tools/call",
                                                       "Mcp-Name": "read_text_file"})
    answer = json.loads(payload)
    assert resp.status == 200 and not answer["result"].get("isError"), answer
    assert answer["result"]["content"][0]["text"] == "hello from countersign\n"
    listing = {"jsonrpc": "2.0", "id": 5, "method": "tools/list"}
    resp, payload = post(gw, "/mcp/fs", listing, headers={"Mcp-Session-Id": sid, "Mcp-Method": "tools/list"})
    assert resp.status == 200 and "read_text_file" in payload.decode()


def test_sec_07_malformed_and_oversized_messages_are_refused(gw):
    sid = session(gw)
    h = {"Mcp-Session-Id": sid}
    cases = {
        '{"jsonrpc":"2.0","id":5,"id":6,"method":"tools/list"}': -32600,
        '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"write_file",'
        '"arguments":{"path":"a","path":"b"}}}': -32600,
        '{"jsonrpc":"2.0","id":5,"method":"x","params":{"s":"\\ud800"}}': -32700,
        '{"jsonrpc":"2.0","id":5,"method":"x","params":{"n":1e400}}': -32700,
        '{"jsonrpc":"2.0","id":5,"method":"x","params":' + "[" * 200 + "]" * 200 + "}": -32600,
        '[{"jsonrpc":"2.0","id":5,"method":"tools/list"}]': -32600,
        '{"jsonrpc":"2.0","id":{"a":1},"method":"tools/list"}': -32600,
        "not json": -32700,
    }
    for body, code in cases.items():
        resp, payload = post(gw, "/mcp/fs", body, headers=h, raw=True)
        assert resp.status == 400, body
        assert rpc_error(payload)["code"] == code, (body, payload)
    big = '{"jsonrpc":"2.0","id":5,"method":"x","params":{"s":"' + "a" * (50 * 1024 * 1024) + '"}}'
    resp, payload = post(gw, "/mcp/fs", big, headers=h, raw=True)
    assert resp.status == 413 and "limit" in rpc_error(payload)["message"]
    # A request id already in flight is refused, not answered twice.
    slow = {"jsonrpc": "2.0", "id": 77, "method": "tools/call",
            "params": {"name": "write_file", "arguments": {"path": "/nope/x", "content": "x"}}}
    import threading
    first = threading.Thread(target=post, args=(gw, "/mcp/fs", slow), kwargs={"headers": h})
    first.start()  # waits for an approval that never comes (the prompt stays pending)
    wait_for(lambda: gw.status()["approvals"], what="the first call to wait for approval")
    resp, payload = post(gw, "/mcp/fs", slow, headers=h)
    assert resp.status == 200 and "already in flight" in rpc_error(payload)["message"]
    gw.cli("deny", gw.status()["approvals"][0]["id"])
    first.join(10)
    # An answer to a request nobody made is absorbed.
    resp, _ = post(gw, "/mcp/fs", {"jsonrpc": "2.0", "id": 999, "result": {}}, headers=h)
    assert resp.status == 202
    resp, payload = post(gw, "/mcp/fs", {"jsonrpc": "2.0", "id": 7, "method": "tools/list"}, headers=h)
    assert resp.status == 200 and "read_text_file" in payload.decode(), "the gateway still serves"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_sec_08_misbehaving_upstreams_fail_calls_cleanly(make_gateway, tmp_path, anyio_backend):
    from mcp.shared.exceptions import MCPError

    starts = {m: tmp_path / f"{m}.starts" for m in ["junk", "hugeline", "die"]}
    gw = make_gateway({m: {**python_server("misbehaving_server.py", m, str(p)), "trusted": True}
                       for m, p in starts.items()}, limits={"max_line_bytes": 1048576})
    async with connect(gw, "http", "junk") as client:
        result = await client.call_tool("poke", {})
        assert text_of(result) == "poked", "non-JSON lines are skipped, the answer still arrives"
    for mode, why in [("hugeline", "over the 1048576-byte limit"), ("die", "it exited (exit status: 3)")]:
        async with connect(gw, "http", mode) as client:
            with pytest.raises(MCPError, match="stopped before answering") as failed:
                await client.call_tool("poke", {})
            assert why in str(failed.value)
            # The next request starts a fresh process (and the replayed handshake works).
            tools = await client.list_tools()
            assert [t.name for t in tools.tools] == ["poke"]
        assert len(starts[mode].read_text().split()) == 2
    wait_for(lambda: not [p for p, s in gw.children() if s.startswith("Z")], what="no zombie upstreams")


def test_an_abandoned_session_is_closed_and_its_upstream_stopped(make_gateway, files):
    gw = make_gateway({"fs": fs_server(files)}, limits={"session_idle_secs": 1})
    sid = session(gw)
    post(gw, "/mcp/fs", {"jsonrpc": "2.0", "method": "notifications/initialized"}, headers={"Mcp-Session-Id": sid})
    assert wait_for(lambda: gw.children(), what="the session's upstream process")
    # The client goes away without a DELETE: the session is closed and the process stopped.
    wait_for(lambda: gw.status()["sessions"] == [], what="the idle session to be closed")
    wait_for(lambda: gw.children() == [], what="its upstream process to be stopped and reaped")
    resp, _ = post(gw, "/mcp/fs", {"jsonrpc": "2.0", "id": 9, "method": "tools/list"}, headers={"Mcp-Session-Id": sid})
    assert resp.status == 404
