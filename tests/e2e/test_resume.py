"""Resumable SSE (2025-11-25): a client whose connection breaks mid-call comes back with
GET + Last-Event-ID and still receives the answer."""

import http.client
import json

from conftest import everything_server

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "r", "version": "1"}}}


def open_conn(gw):
    host, port = gw.addr.rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=30)


def headers(gw, sid=None):
    h = {"Authorization": f"Bearer {gw.token}", "Content-Type": "application/json",
         "Accept": "application/json, text/event-stream"}
    if sid:
        h["Mcp-Session-Id"] = sid
    return h


def read_events(resp, stop):
    """Reads SSE events (id, data) until `stop(events)` is true or the stream ends."""
    events, current = [], {}
    while not stop(events):
        line = resp.fp.readline()
        if not line:
            break
        line = line.decode().rstrip("\r\n")
        if line == "":
            if current:
                events.append((current.get("id"), current.get("data")))
            current = {}
        elif line.startswith("id:"):
            current["id"] = line[3:].strip()
        elif line.startswith("data:"):
            current["data"] = line[5:].lstrip(" ")
    return events


def test_a_broken_stream_resumes_with_last_event_id(make_gateway):
    gw = make_gateway({"everything": everything_server()})
    conn = open_conn(gw)
    conn.request("POST", "/mcp/everything", json.dumps(INIT), headers(gw))
    resp = conn.getresponse()
    sid = resp.getheader("Mcp-Session-Id")
    init_events = read_events(resp, lambda ev: any(d for _, d in ev))
    assert init_events[0][1] == "", "2025-11-25 clients get a priming event first"
    conn.close()

    post = open_conn(gw)
    post.request("POST", "/mcp/everything", json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                 headers(gw, sid))
    post.getresponse().read()
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "trigger-long-running-operation", "arguments": {"duration": 1, "steps": 2},
        "_meta": {"progressToken": "p1"}}}
    post.request("POST", "/mcp/everything", json.dumps(call), headers(gw, sid))
    resp = post.getresponse()
    # Read up to the first progress event, then drop the connection mid-call.
    seen = read_events(resp, lambda ev: any(d and "progress" in d for _, d in ev))
    last_id = [i for i, _ in seen if i][-1]
    post.close()

    back = open_conn(gw)
    h = headers(gw, sid)
    h["Last-Event-ID"] = last_id
    h["Accept"] = "text/event-stream"
    back.request("GET", "/mcp/everything", headers=h)
    resp = back.getresponse()
    assert resp.status == 200
    rest = read_events(resp, lambda ev: any(d and '"result"' in d for _, d in ev))
    answers = [json.loads(d) for _, d in rest if d and '"result"' in d]
    assert answers and answers[0]["id"] == 2 and "completed" in json.dumps(answers[0])
    seq = lambda event_id: tuple(int(x) for x in event_id.split("-"))  # noqa: E731
    assert all(seq(i) > seq(last_id) for i, _ in rest if i), "only what was missed is replayed"
    back.close()
