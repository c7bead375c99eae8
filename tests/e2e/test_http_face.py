"""The HTTP face as a keep-alive client sees it: early refusals (401, 403, 404, 415)
arrive on a connection the client can go on using, and every error on the MCP endpoints
is a JSON-RPC error body. Real gateway, real server-everything, httpx's connection pool."""

from __future__ import annotations

import json
import socket
import time

import httpx2 as httpx

from conftest import everything_server

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "keep-alive", "version": "1"}}}


def rpc_error(resp: httpx.Response) -> dict:
    assert resp.headers["content-type"].startswith("application/json"), resp.text
    body = resp.json()
    assert body["jsonrpc"] == "2.0" and "error" in body, body
    assert body["error"]["message"], body
    return body["error"]


def test_refusals_and_answers_back_to_back_on_one_keep_alive_client(make_gateway):
    gw = make_gateway({"e": everything_server()})
    url = gw.url("e")
    good = {"Authorization": f"Bearer {gw.token}", "Accept": "application/json, text/event-stream"}
    # One connection at most, so every request reuses the previous one's connection.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(limits=limits, timeout=30) as client:
        init = client.post(url, json=INIT, headers=good)
        assert init.status_code == 200, init.text
        session = {**good, "Mcp-Session-Id": init.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-06-18"}
        client.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
        body = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
        refusals = [
            (401, {**session, "Authorization": "Bearer not-a-token"}, url),
            (401, {k: v for k, v in session.items() if k != "Authorization"}, url),
            (403, {**session, "Origin": "https://evil.test"}, url),
            (404, {**session, "Mcp-Session-Id": "no-such-session"}, url),
            (404, session, gw.url("no-such-server")),
            (415, {**session, "Content-Type": "text/plain"}, url),
        ]
        answered = refused = 0
        for i in range(200):
            if i % 2:
                status, headers, target = refusals[(i // 2) % len(refusals)]
                content = httpx.Request("POST", target, json=body).content
                headers = {"Content-Type": "application/json", **headers}
                resp = client.post(target, content=content, headers=headers)
                assert resp.status_code == status, (i, resp.status_code, resp.text)
                error = rpc_error(resp)
                if status == 401:
                    assert resp.headers["www-authenticate"].startswith("Bearer")
                    assert "token" in error["message"]
                refused += 1
            else:
                resp = client.post(url, json={**body, "id": 100 + i}, headers=session)
                assert resp.status_code == 200, resp.text
                assert '"tools"' in resp.text
                answered += 1
        # httpx raised nothing: no "server disconnected" in 200 back-to-back requests.
        assert (answered, refused) == (100, 100)


def read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    """One HTTP/1.1 response with a Content-Length body; raises ConnectionError on EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server disconnected before answering")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server disconnected mid-answer")
        rest += chunk
    return int(lines[0].split()[1]), headers, rest[:length]


def test_a_body_that_arrives_after_its_headers_does_not_cost_the_connection(make_gateway):
    """The race behind "server disconnected": a refusal answered from the headers alone,
    before the body arrived. The body follows its headers a few milliseconds later (a
    stimulus standing in for a client's separate writes, not a synchronisation); the
    connection must stay usable, request after request."""
    gw = make_gateway({"e": everything_server()})
    host, port = gw.addr.rsplit(":", 1)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}).encode()
    sock = socket.create_connection((host, int(port)), timeout=30)
    statuses = []
    for i in range(100):
        token = gw.token if i % 2 == 0 else "not-a-token"
        head = (f"POST /mcp/e HTTP/1.1\r\nHost: {gw.addr}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        sock.sendall(head)
        time.sleep(0.005)
        sock.sendall(body)
        status, headers, answer = read_response(sock)
        assert headers.get("connection") != "close", (i, status, headers)
        statuses.append(status)
        if status == 401:
            assert json.loads(answer)["error"]["message"] == "unknown client token"
    sock.close()
    # Sessionless tools/list is refused with 400 (initialize first); the bad token with 401.
    assert statuses.count(401) == 50 and len(statuses) == 100


def test_guard_refusals_and_wrong_methods_are_json_rpc_errors(make_gateway):
    gw = make_gateway({"e": everything_server()})
    auth = {"Authorization": f"Bearer {gw.token}"}
    with httpx.Client(timeout=30) as client:
        foreign = client.post(gw.url("e"), json=INIT, headers={**auth, "Host": "evil.test"})
        assert foreign.status_code == 403
        assert "Host" in rpc_error(foreign)["message"]
        put = client.put(gw.url("e"), json=INIT, headers=auth)
        assert put.status_code == 405 and "POST" in put.headers["allow"]
        rpc_error(put)
        nowhere = client.get(f"http://{gw.addr}/elsewhere", headers=auth)
        assert nowhere.status_code == 404
        assert "/mcp" in rpc_error(nowhere)["message"]
    # Each refusal at the door is on record.
    gw.wait_audit(lambda r: r.get("rule") == "transport" and "Host" in (r.get("reason") or ""),
                  "the foreign Host refusal in the journal")
