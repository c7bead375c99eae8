"""Attacks by a hostile server that speaks only MCP 2026-07-28 (modern_hostile_server.py):
what it asks of a client in the middle of a call (`input_required`) must be decided by
the gateway's policy before any client sees it (a 2026-07-28 client), or never reach a
client that cannot answer it (an older client, whose session the gateway translates),
however the answer is dressed."""

import json
import subprocess
import sys

import httpx2
import pytest

from conftest import HERE, Rpc, start_listening, wait_for

TRICKS = ["none", "deep", "bignum", "spelling"]


@pytest.fixture
def hostile_modern(tmp_path):
    log = tmp_path / "modern-hostile.jsonl"
    log.touch()
    proc, (port,) = start_listening(
        lambda ports: subprocess.Popen([sys.executable, str(HERE / "modern_hostile_server.py"), str(ports[0]),
                                        str(log)], stderr=subprocess.DEVNULL),
        what="the hostile 2026-07-28 server")
    yield f"http://127.0.0.1:{port}/mcp", log
    proc.terminate()
    proc.wait(10)


def calls_received(log) -> list[dict]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [json.loads(e["body"]) for e in lines if e["headers"].get("mcp-method") == "tools/call"]


def stateless_ask(gw, server: str, trick: str, rid: int) -> tuple[int, dict]:
    body = {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
            "params": {"name": "ask", "arguments": {"trick": trick},
                       "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                 "io.modelcontextprotocol/clientCapabilities": {"roots": {}}}}}
    headers = {"Authorization": f"Bearer {gw.token}", "Content-Type": "application/json",
               "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2026-07-28",
               "Mcp-Method": "tools/call", "Mcp-Name": "ask"}
    answer = httpx2.post(gw.url(server), json=body, headers=headers, timeout=60)
    return answer.status_code, answer.json()


@pytest.mark.parametrize("trick", ["none", "deep", "bignum"])
def test_a_2026_client_never_sees_an_input_request_the_policy_refuses_however_it_is_dressed(
        make_gateway, hostile_modern, trick):
    """The policy denies this server asking for the client's roots. Whatever the server
    does to its `input_required` answer (a member nested deeper than the gateway parses, a
    number no double holds), the 2026-07-28 client gets an error and never the roots
    request. (`resultType` in capitals is not tried here: a 2026-07-28 client compares it
    exactly and does not act on it.)"""
    url, log = hostile_modern
    gw = make_gateway({"h": {"url": url, "trusted": True}},
                      policy={"allow": ["mcp__h"], "deny": ["mcp__h request:roots/*"]})
    status, answer = stateless_ask(gw, "h", trick, 11)
    assert calls_received(log), "the call reached the server (the attack ran)"
    assert "error" in answer and "result" not in answer, answer
    assert "roots/list" not in json.dumps(answer.get("result", {})), answer


@pytest.mark.parametrize("trick", TRICKS)
def test_an_older_client_through_translation_never_gets_an_input_required_answer_as_a_result(
        make_gateway, hostile_modern, trick):
    """A 2025-06-18 session client reaches the server through the gateway's translation.
    An `input_required` answer, however dressed, is an error for it, never a result it
    would take for the call's answer."""
    url, log = hostile_modern
    gw = make_gateway({"h": {"url": url, "trusted": True}}, policy={"allow": ["mcp__h"]})
    rpc = Rpc(gw, "/mcp/h")
    assert rpc.init_status == 200
    answer = rpc.request("tools/call", {"name": "ask", "arguments": {"trick": trick}})
    assert calls_received(log), "the call reached the server (the attack ran)"
    assert answer is not None and "error" in answer and "result" not in answer, answer
    records = gw.wait_audit(lambda r: r["tool"] == "ask" and r["outcome"], "the call's record")
    assert records[0]["decision"] == "allow", records
