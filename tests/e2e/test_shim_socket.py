"""The shim socket (issue 17): `countersign connect` reaches the gateway on a Unix socket in
the data folder, authenticated by the peer's user, with no keychain. Each test runs the
real gateway, the real shim and a real client, and checks the effect: the call ran (or
the upstream was never started), the record exists, the file modes are what they say."""

import json
import os
import pwd
import queue
import signal
import stat
import subprocess
import sys
import threading

import pytest
from mcp import Client, StdioServerParameters

from conftest import BIN, Gateway, error_text, fast_server, python_server, text_of, wait_for, write_config

pytestmark = pytest.mark.anyio

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "sock", "version": "1"}}}


def gateway_without_a_keychain(tmp_path, servers: dict, **config) -> Gateway:
    """A gateway whose session bus leads nowhere: no Secret Service for it, nor for a shim
    that adopts the bus the gateway recorded."""
    gw = Gateway(tmp_path, write_config(tmp_path / "countersign.toml", servers, **config))
    gw.env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={tmp_path / 'no-bus'}"
    gw.env.pop("XDG_RUNTIME_DIR", None)
    return gw.start()


def shim_params(gw: Gateway, server: str, *extra: str, bus: str | None = None) -> StdioServerParameters:
    """The shim as a client's entry starts it (`connect NAME --home DIR`), with the MCP SDK's
    trimmed environment: no session bus, unless `bus` names one."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    if bus is not None:
        env["DBUS_SESSION_BUS_ADDRESS"] = bus
    return StdioServerParameters(command=str(BIN), args=["connect", server, "--home", str(gw.home), *extra], env=env)


async def test_the_shim_calls_through_the_socket_with_no_secret_service(tmp_path):
    log = tmp_path / "echo.log"
    gw = gateway_without_a_keychain(tmp_path, {"fast": fast_server(log)})
    try:
        # No bus in the environment (so the shim adopts the gateway's, which leads nowhere),
        # and a bus address that leads nowhere: neither has a keychain.
        for n, bus in enumerate([None, f"unix:path={tmp_path / 'nowhere'}"]):
            async with Client(shim_params(gw, "fast", bus=bus)) as client:
                assert "echo" in {t.name for t in (await client.list_tools()).tools}
                result = await client.call_tool("echo", {"text": f"no-keychain-{n}"})
                assert not result.is_error and text_of(result) == f"no-keychain-{n}", text_of(result)
        assert log.read_text().splitlines() == ["no-keychain-0", "no-keychain-1"], "the upstream got both calls"
        records = wait_for(lambda: [r for r in gw.audit() if r["tool"] == "echo" and r["outcome"] == "ok"][1:] and
                           [r for r in gw.audit() if r["tool"] == "echo"], what="both calls' records")
        assert [r["client"] for r in records] == ["stdio-shim", "stdio-shim"]
        assert all(r["decision"] == "allow" for r in records)

        # The HTTP path needs the token from the keychain, which is not there: so the calls
        # above went over the socket, and they could not have gone any other way.
        with pytest.raises(Exception) as refused:
            async with Client(shim_params(gw, "fast", "--transport", "http")) as client:
                await client.list_tools()
        assert "keychain" in error_text(refused.value), error_text(refused.value)
        assert log.read_text().splitlines() == ["no-keychain-0", "no-keychain-1"]
    finally:
        gw.stop()


def _other_user_connects(path: str, fs_root: bool) -> dict:
    """In a child process: become `nobody` and connect to `path`, then send a hello, an
    initialize and a tool call, and read what comes back. With `fs_root`, only the
    effective user changes and the filesystem user stays root (setfsuid), so the file
    modes let the connect through and the gateway itself must refuse the peer."""
    nobody = pwd.getpwnam("nobody")
    script = f"""
import ctypes, json, os, socket, sys
os.setgroups([])
if {fs_root!r}:
    os.setegid({nobody.pw_gid}); os.seteuid({nobody.pw_uid})
    ctypes.CDLL(None).setfsuid(0)
else:
    os.setgid({nobody.pw_gid}); os.setuid({nobody.pw_uid})
out = {{"euid": os.geteuid()}}
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
try:
    s.connect({path!r})
except OSError as e:
    out["connect"] = e.__class__.__name__
    print(json.dumps(out)); sys.exit(0)
out["connect"] = "ok"
got = b""
try:
    s.sendall(b'{{"countersign":"connect","server":"marker","nonce":"0123456789abcdef0123"}}\\n')
    s.sendall(json.dumps({INIT!r}).encode() + b"\\n")
    s.sendall(b'{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"environment","arguments":{{"names":["HOME"]}}}}}}\\n')
    while chunk := s.recv(4096):
        got += chunk
except OSError as e:
    out["error"] = e.__class__.__name__
out["got"] = got.decode(errors="replace")
print(json.dumps(out))
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
async def test_a_connection_from_another_user_is_refused_unread_recorded_and_starts_nothing(make_gateway, tmp_path):
    marker = tmp_path / "the-server-started"
    gw = make_gateway({"marker": python_server("env_server.py", "--marker", str(marker))},
                      policy={"allow": ["mcp__marker"]})
    sock = gw.home / "gateway.sock"
    st, home = os.lstat(sock), os.lstat(gw.home)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    assert stat.S_ISDIR(home.st_mode) and stat.S_IMODE(home.st_mode) == 0o700, oct(home.st_mode)
    assert st.st_uid == home.st_uid == os.geteuid() == 0

    # Another user cannot even open it: the socket's mode and the folder's say no.
    plain = _other_user_connects(str(sock), fs_root=False)
    assert plain == {"euid": pwd.getpwnam("nobody").pw_uid, "connect": "PermissionError"}, plain

    # Past the file modes (the filesystem user is root, the process is nobody's): the gateway
    # reads the peer's user from the kernel and closes the connection without reading it.
    past = _other_user_connects(str(sock), fs_root=True)
    assert past["connect"] == "ok" and past["got"] == "", f"the gateway answered another user: {past}"
    rejected = gw.wait_audit(lambda r: r["method"] == "CONNECT shim socket" and r["outcome"] == "rejected",
                             "the refusal's record")
    assert len(rejected) == 1
    r = rejected[0]
    assert (r["kind"], r["decision"], r["rule"], r["client"]) == ("rejected", "deny", "transport", None)
    assert f"user {pwd.getpwnam('nobody').pw_uid}" in r["reason"] and "only the gateway's own user (0)" in r["reason"]
    assert not marker.exists(), "the upstream was started for another user's connection"
    assert gw.status()["sessions"] == [], "no session was opened for it"
    assert not [r for r in gw.audit() if r["kind"] == "call"], "nothing reached the method table or policy"

    # The gateway's own user is served on the same socket (the check above could have seen it).
    async with Client(shim_params(gw, "marker", "--transport", "socket")) as client:
        result = await client.call_tool("environment", {"names": ["HOME"]})
        assert not result.is_error, text_of(result)
    wait_for(marker.exists, what="the server to start for the gateway's own user")


def test_the_socket_is_removed_at_shutdown_and_a_crashed_gateways_is_replaced(make_gateway, tmp_path):
    gw = make_gateway({"fast": fast_server()})
    sock = gw.home / "gateway.sock"
    # A hard link keeps each old socket's inode alive, so a new socket cannot be given
    # the same inode number by chance and the comparisons below mean what they say.
    os.link(sock, tmp_path / "first.sock")
    first = os.lstat(sock).st_ino
    gw.stop()
    assert not sock.exists(), "removed at shutdown"
    gw.start()
    assert stat.S_ISSOCK(os.lstat(sock).st_mode)
    os.killpg(gw.proc.pid, signal.SIGKILL)  # a crash leaves the socket behind
    gw.proc.wait(10)
    assert stat.S_ISSOCK(os.lstat(sock).st_mode), "left behind by the crash"
    stale = os.lstat(sock).st_ino
    os.link(sock, tmp_path / "stale.sock")
    gw.start()
    now = os.lstat(sock)
    assert stat.S_ISSOCK(now.st_mode) and stat.S_IMODE(now.st_mode) == 0o600
    assert now.st_ino not in (first, stale), "the stale socket was replaced by a new one"
    r = subprocess.run([str(BIN), "connect", "fast", "--transport", "socket"], input="", env=gw.env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_a_link_in_the_sockets_place_is_left_alone_and_the_shim_falls_back_to_http(make_gateway, tmp_path):
    gw = make_gateway({"fast": fast_server()})
    gw.stop()
    target = tmp_path / "not-a-socket.txt"
    target.write_text("keep")
    os.chmod(target, 0o644)
    sock = gw.home / "gateway.sock"
    sock.symlink_to(target)
    gw.start()
    assert sock.is_symlink() and target.read_text() == "keep" and stat.S_IMODE(target.stat().st_mode) == 0o644
    assert "no shim socket" in gw.log_path.read_text()
    # The shim does not use a link; it reaches the gateway over HTTP (with the keychain).
    proc = Shim(gw, "fast")
    try:
        proc.send(INIT)
        assert proc.next()["result"]["serverInfo"]["name"] == "fast-upstream"
    finally:
        err = proc.close()
    assert "not using the shim socket" in err and "not a socket of this user's" in err, err


class Shim:
    """`countersign connect` driven line by line, its output read on a thread."""

    def __init__(self, gw: Gateway, server: str, *extra: str):
        self.proc = subprocess.Popen([str(BIN), "connect", server, *extra], env=gw.env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def write(self, data: bytes):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message: dict):
        self.write(json.dumps(message).encode() + b"\n")

    def next(self) -> dict:
        line = self.lines.get(timeout=20)
        assert line is not None, "the shim closed its output"
        return json.loads(line)

    def close(self) -> str:
        self.proc.stdin.close()
        self.proc.wait(20)
        return self.proc.stderr.read().decode()


def test_lines_that_are_not_messages_get_error_lines_and_limits_hold(make_gateway):
    gw = make_gateway({"fast": fast_server()}, limits={"max_body_bytes": 4096})
    shim = Shim(gw, "fast", "--transport", "socket")
    try:
        shim.write(b"this is not JSON\n")
        assert shim.next()["error"]["code"] == -32700
        shim.write(b'{"jsonrpc":"2.0","id":9,"method":"tools/list","params":{"x":"' + b"y" * 100_000 + b'"}}\n')
        too_big = shim.next()
        assert too_big["error"]["code"] == -32600 and "4096-byte limit" in too_big["error"]["message"], too_big
        shim.write(b'{"jsonrpc":"2.0","id":3,"id":4,"method":"tools/list"}\n')
        assert shim.next()["error"]["code"] == -32600, "duplicate keys are refused as over HTTP"
        shim.send(INIT)
        assert shim.next()["id"] == 1
        shim.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        shim.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                   "params": {"name": "echo", "arguments": {"text": "after the junk"}}})
        answer = shim.next()
        assert answer["id"] == 2 and answer["result"]["content"][0]["text"] == "after the junk", answer
    finally:
        err = shim.close()
    assert shim.proc.returncode == 0 and err == "", err
    wait_for(lambda: gw.status()["sessions"] == [], what="the session to end with the shim's input")


def test_a_hello_the_gateway_refuses_is_the_answer_to_every_request(make_gateway):
    gw = make_gateway({"fast": fast_server()})
    shim = Shim(gw, "nosuch")
    try:
        shim.send(INIT)
        error = shim.next()["error"]
        assert "no server named `nosuch`" in error["message"] and "fast" in error["message"], error
    finally:
        err = shim.close()
    assert "no server named `nosuch`" in err and "keychain" not in err, err
