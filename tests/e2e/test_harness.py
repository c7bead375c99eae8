"""The harness itself: a server a test starts is the one it talks to, even when the port
chosen for it is taken by someone else first (the `free_port` race)."""

import socket
import subprocess
import sys

import httpx2 as httpx

import conftest
from conftest import background, wait_for, who_listens


def test_a_port_taken_before_the_server_binds_it_is_never_mistaken_for_the_server(monkeypatch, tmp_path):
    """The first port offered to the server is already held by another listener (as when
    another process takes a port between its choice and its use): a connect alone would
    find that port open and take the other listener for the server. The attempt fails,
    is retried on a fresh port, and the server the test gets is its own."""
    with socket.socket() as thief:
        thief.bind(("127.0.0.1", 0))
        thief.listen()
        stolen = thief.getsockname()[1]
        offered = iter([stolen])
        fresh = conftest._candidate_port
        monkeypatch.setattr(conftest, "_candidate_port", lambda: next(offered, None) or fresh())
        (tmp_path / "root").mkdir()
        (tmp_path / "root" / "mine.txt").write_text("the test's own server\n")
        log = tmp_path / "server.log"
        with background(lambda port: [sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                                      "--directory", str(tmp_path / "root"), str(port)], log) as served:
            assert served.port != stolen
            assert who_listens(served.proc.pid, served.port) == "ours"
            assert httpx.get(f"http://127.0.0.1:{served.port}/mine.txt").text == "the test's own server\n"
        assert f"starting on port {stolen}" in log.read_text(), "the stolen port was tried first"


def test_who_listens_tells_the_server_from_another_listener(tmp_path):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            assert who_listens(idle.pid, port) == "foreign"
        finally:
            idle.kill()
            idle.wait()
    wait_for(lambda: who_listens(idle.pid, port) is None, timeout=5, what="the closed listener to go")
