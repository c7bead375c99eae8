"""Shared harness for the end-to-end tests: a real `countersign serve` process with a
real configuration, real upstream MCP servers from the pinned fixtures, and the real
Python MCP client. Waits are on conditions with deadlines, never bare sleeps."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("COUNTERSIGN_BIN", ROOT / "target" / "debug" / "countersign"))
FAST_UPSTREAM = Path(os.environ.get("COUNTERSIGN_FAST_UPSTREAM", ROOT / "target" / "debug" / "fast-upstream"))
FIXTURES = ROOT / "fixtures"
NODE_BIN = FIXTURES / "node_modules" / ".bin"
HERE = Path(__file__).resolve().parent


@pytest.fixture
def anyio_backend():
    return "asyncio"


# PostgreSQL databases the running test made (admin URL, name): dropped when it ends.
_databases: list[tuple[str, str]] = []


def create_database(admin: str) -> str:
    """A new PostgreSQL database of the test's own, through `admin` (a role that may create
    databases); returns its URL. It is dropped when the test ends, whatever happened."""
    name = f"hub_{uuid.uuid4().hex[:12]}"
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    _databases.append((admin, name))
    return admin.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(autouse=True)
def _drop_test_databases():
    """Autouse, so set up before (and torn down after) the fixtures that run hubs on them:
    FORCE ends the connections of a hub a test left running."""
    yield
    failed = []
    while _databases:
        admin, name = _databases.pop()
        r = subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            failed.append(f"{name}: {r.stderr.strip()}")
    assert not failed, f"test databases left behind: {failed}"


def wait_for(predicate, timeout: float = 20.0, what: str = "a condition"):
    """Polls `predicate` until it returns something truthy or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


async def until(predicate, timeout: float = 20.0, what: str = "a condition"):
    """`wait_for` for async tests: polls in a worker thread so the event loop keeps running."""
    import anyio

    return await anyio.to_thread.run_sync(lambda: wait_for(predicate, timeout, what))


async def wait_tool(client, name: str, timeout: float = 20.0):
    """Waits until the server lists the tool `name` (some register tools after start)."""
    import anyio

    with anyio.fail_after(timeout):
        while name not in {t.name for t in (await client.list_tools()).tools}:
            await anyio.sleep(0.05)


def _candidate_port() -> int:
    """A port that was free a moment ago: only a candidate, as anyone may take it before
    the process meant to use it binds it. `start_listening` retries when that happens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listen_inodes(port: int) -> set[str]:
    """The inodes of the TCP sockets listening on `port` (any address, IPv4 or IPv6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(fields[9])
    return inodes


def process_tree(pid: int) -> set[int]:
    """`pid` and every process descended from it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    tree, todo = set(), [pid]
    while todo:
        p = todo.pop()
        tree.add(p)
        todo += children.get(p, [])
    return tree


def _socket_inodes(pids: set[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    return inodes


def who_listens(pid: int, port: int) -> str | None:
    """Who listens on `port`: "ours" (`pid` or a process it started), "foreign" (someone
    else took the port) or None (nobody yet). A connect alone cannot tell the two apart."""
    # The table first: a socket is in its process's fd table before it listens.
    listeners = _listen_inodes(port)
    if not listeners:
        return None
    return "ours" if listeners & _socket_inodes(process_tree(pid)) else "foreign"


def kill_tree(proc: subprocess.Popen):
    """Ends `proc` and every process it started (SIGKILL), and reaps `proc`."""
    for pid in process_tree(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(10)


def start_listening(spawn, ports: int = 1, attempts: int = 5, timeout: float = 20.0,
                    what: str = "a server") -> tuple[subprocess.Popen, list[int]]:
    """Starts a server on ports of its own: `spawn(ports)` starts it on `ports` candidate
    ports and returns its process. Ready once that process (or one it started) listens
    on every port; if the process exits first, or someone else holds one of the ports
    (taken between choosing it and binding it), the attempt is ended and tried again on
    fresh ports. Returns the process and its ports."""
    failures = []
    for _ in range(attempts):
        chosen = [_candidate_port() for _ in range(ports)]
        proc = spawn(chosen)

        def settled():
            if proc.poll() is not None:
                return "exited"
            owners = [who_listens(proc.pid, port) for port in chosen]
            if "foreign" in owners:
                return "foreign"
            return "ours" if all(o == "ours" for o in owners) else None

        outcome = wait_for(settled, timeout=timeout, what=f"{what} to listen on {chosen}")
        if outcome == "ours":
            return proc, chosen
        failures.append(f"{chosen}: {outcome}")
        if proc.poll() is None:
            kill_tree(proc)
    raise AssertionError(f"{what} could not listen after {attempts} attempts: {failures}")


class Served:
    def __init__(self, proc: subprocess.Popen, port: int):
        self.proc, self.port = proc, port


@contextmanager
def background(argv_for, log: Path, env=None):
    """Runs a server process until the block ends, once it listens on a port of its own:
    `argv_for(port)` is its command line, `env` extra environment (or a function of the
    port that returns it). Yields it (`.proc`, `.port`)."""
    with open(log, "ab") as out:
        argv = argv_for(0)

        def spawn(ports):
            out.write(f"--- starting on port {ports[0]}\n".encode())
            out.flush()
            extra = env(ports[0]) if callable(env) else env
            return subprocess.Popen(argv_for(ports[0]), env={**os.environ, **(extra or {})}, stdout=out,
                                    stderr=subprocess.STDOUT)

        name = Path(argv[1] if len(argv) > 1 else argv[0]).name
        try:
            proc, (port,) = start_listening(spawn, what=name)
        except AssertionError as e:
            raise AssertionError(f"{e}; its log: {log.read_text(errors='replace')}") from None
        try:
            yield Served(proc, port)
        finally:
            proc.terminate()
            proc.wait(10)


def default_browser(tmp: Path) -> tuple[dict, Path]:
    """The desktop's default web browser as GLib looks it up (a handler for http and https
    in XDG_DATA_HOME/applications, made the default in XDG_CONFIG_HOME/mimeapps.list): here a
    recorder of the arguments it is started with. Returns the environment a process needs
    to see it, and the file the recorder writes (the count of arguments, then each)."""
    data, config = tmp / "browser-data", tmp / "browser-config"
    (data / "applications").mkdir(parents=True, exist_ok=True)
    config.mkdir(exist_ok=True)
    record = tmp / "browser-opened.txt"
    script = tmp / "test-browser"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$#" "$@" > "{record}"\n')
    script.chmod(0o755)
    (data / "applications" / "countersign-test-browser.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=Test browser\nNoDisplay=true\n"
        f"Exec={script} %u\nMimeType=x-scheme-handler/http;x-scheme-handler/https;\n")
    (config / "mimeapps.list").write_text(
        "[Default Applications]\nx-scheme-handler/http=countersign-test-browser.desktop\n"
        "x-scheme-handler/https=countersign-test-browser.desktop\n")
    return {"XDG_DATA_HOME": str(data), "XDG_CONFIG_HOME": str(config)}, record


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (str, Path)):
        return json.dumps(str(v))
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


def write_config(path: Path, servers: dict, policy: dict | None = None, gateway: dict | None = None,
                 limits: dict | None = None, sync: dict | None = None) -> Path:
    lines = ["[gateway]", 'listen = "127.0.0.1:0"']
    for k, v in (gateway or {}).items():
        lines.append(f"{k} = {toml_value(v)}")
    for table, values in (("limits", limits), ("sync", sync)):
        if values:
            lines.append(f"[{table}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    for name, server in servers.items():
        lines.append(f"[servers.{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in server.items()]
    if policy:
        lines.append("[policy]")
        lines += [f"{k} = {toml_value(v)}" for k, v in policy.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def fs_server(root: Path) -> dict:
    return {"command": NODE_BIN / "mcp-server-filesystem", "args": [str(root)], "trusted": True}


def memory_server(path: Path) -> dict:
    return {"command": NODE_BIN / "mcp-server-memory", "env": {"MEMORY_FILE_PATH": str(path)}, "trusted": True}


def everything_server() -> dict:
    return {"command": NODE_BIN / "mcp-server-everything", "args": ["stdio"], "trusted": True}


def fast_server(log: Path | None = None) -> dict:
    """The rmcp fixture that answers as fast as it can; with `log`, it appends every
    `echo` text it receives to that file."""
    server = {"command": str(FAST_UPSTREAM), "args": [], "trusted": True}
    if log:
        server["args"] = ["--log", str(log)]
    return server


def start_echo_calls(gw, server: str, total: int, threads: int = 16):
    """Starts sending up to `total` `echo` calls over raw streamable HTTP from `threads`
    clients at once (much faster than the SDK client); each text is `call-N`. A client
    stops when the gateway goes away. Returns the client threads and the sent counter."""
    import http.client
    import threading

    host, port = gw.addr.rsplit(":", 1)
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "Authorization": f"Bearer {gw.token}"}
    path = f"/mcp/{server}"

    def rpc(conn, body, session=None):
        h = dict(headers, **({"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-06-18"} if session else {}))
        conn.request("POST", path, body=json.dumps(body), headers=h)
        resp = conn.getresponse()
        resp.read()
        return resp

    init = http.client.HTTPConnection(host, int(port), timeout=30)
    session = rpc(init, {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                         "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "load", "version": "1"}}}).getheader("Mcp-Session-Id")
    rpc(init, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    sent, lock = [0], threading.Lock()

    def client():
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        while True:
            with lock:
                if sent[0] >= total:
                    return
                sent[0] += 1
                n = sent[0]
            try:
                rpc(conn, {"jsonrpc": "2.0", "id": n, "method": "tools/call",
                           "params": {"name": "echo", "arguments": {"text": f"call-{n}"}}}, session)
            except (OSError, http.client.HTTPException):
                return  # the gateway is gone

    workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    return workers, sent


def echo_calls(gw, server: str, total: int) -> int:
    """`start_echo_calls`, waited for; returns how many calls were sent."""
    workers, sent = start_echo_calls(gw, server, total)
    for w in workers:
        w.join(120)
    return sent[0]


class Rpc:
    """One streamable HTTP session over raw HTTP, for load and for attacks the SDK client
    would not send: any method, any kind of message, any client name or token."""

    def __init__(self, gw, path: str, token: str | None = None, client_name: str = "raw",
                 accept: str = "application/json, text/event-stream", timeout: float = 60,
                 capabilities: dict | None = None):
        host, port = gw.addr.rsplit(":", 1)
        self.gw, self.path = gw, path
        self.conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        self.headers = {"Content-Type": "application/json", "Accept": accept,
                        "Authorization": f"Bearer {token or gw.token}"}
        data, session = self.post({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                                   "params": {"protocolVersion": "2025-06-18", "capabilities": capabilities or {},
                                              "clientInfo": {"name": client_name, "version": "1"}}})
        self.session, self.init_status = session, self.status
        self.headers["Mcp-Session-Id"] = session or ""
        self.headers["MCP-Protocol-Version"] = "2025-06-18"
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        self.next = 0

    def post(self, body: dict) -> tuple[bytes, str | None]:
        self.conn.request("POST", self.path, body=json.dumps(body), headers=self.headers)
        resp = self.conn.getresponse()
        self.status = resp.status
        data = resp.read()
        return data, resp.getheader("Mcp-Session-Id")

    def side(self, timeout: float = 60) -> "Rpc":
        """Another connection into the same session (to send while this one waits)."""
        other = object.__new__(Rpc)
        other.__dict__.update(self.__dict__)
        host, port = self.gw.addr.rsplit(":", 1)
        other.conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        other.headers = dict(self.headers)
        return other

    def message(self, body: dict) -> dict | None:
        """Sends one message; the JSON-RPC answer (from a JSON body or the last SSE event)."""
        data, _ = self.post(body)
        return last_message(data)

    def request(self, method: str, params: dict | None = None) -> dict | None:
        self.next += 1
        return self.message({"jsonrpc": "2.0", "id": self.next, "method": method, "params": params or {}})

    def call(self, method: str, params: dict) -> bool:
        self.next += 1
        data, _ = self.post({"jsonrpc": "2.0", "id": self.next, "method": method, "params": params})
        return b'"result"' in data and b'"isError":true' not in data

    def close(self):
        self.conn.request("DELETE", self.path, headers=self.headers)
        self.conn.getresponse().read()
        self.conn.close()


class GetStream:
    """A session's GET stream (messages the server sends on its own), read on a thread
    into `.got`, or opened and never read (`read=False`, a client that stopped reading)."""

    def __init__(self, rpc: Rpc, read: bool = True):
        host, port = rpc.gw.addr.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=600)
        self.conn.request("GET", rpc.path, headers={**rpc.headers, "Accept": "text/event-stream"})
        self.resp = self.conn.getresponse()
        self.got: list[dict] = []
        if read:
            import threading
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            while line := self.resp.fp.readline():
                text = line.decode().rstrip("\n")
                if text.startswith("data:") and text[5:].strip():
                    self.got.append(json.loads(text[5:].strip()))
        except (OSError, ValueError):
            return

    def wait(self, predicate, what: str = "a message") -> dict:
        return wait_for(lambda: [m for m in self.got if predicate(m)], what=what)[0]


def rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def last_message(data: bytes) -> dict | None:
    """The JSON-RPC message in a response body: the body itself, or an SSE stream's last
    message event."""
    text = data.decode("utf-8", "replace").strip()
    if not text:
        return None
    if text.startswith("{"):
        return json.loads(text)
    found = None
    for line in text.splitlines():
        if line.startswith("data:") and line[5:].strip():
            found = json.loads(line[5:].strip())
    return found


def python_server(script: str, *args: str) -> dict:
    return {"command": sys.executable, "args": [str(HERE / script), *args]}


class CountersignCli:
    """The `countersign` CLI against a gateway's data directory (`self.env`)."""

    env: dict

    def cli(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        r = subprocess.run([str(BIN), *args], env=self.env, capture_output=True, text=True, input=input, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"countersign {' '.join(args)} failed ({r.returncode}): {r.stderr}")
        return r

    def status(self) -> dict:
        return json.loads(self.cli("status", "--json").stdout)

    def audit(self) -> list[dict]:
        out = self.cli("audit", "export", "--format", "jsonl").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]


class Gateway(CountersignCli):
    """A running `countersign serve` in a private COUNTERSIGN_HOME."""

    def __init__(self, tmp: Path, config: Path):
        self.home = tmp / "home"
        self.config = config
        # Managed policy comes from this folder (empty unless a test writes managed.toml),
        # never from the machine's /etc/countersign: in debug builds only,
        # COUNTERSIGN_TEST_OS_MANAGED_DIR stands it in for the OS location.
        # COUNTERSIGN_MANAGED_DIR is a folder a user adds, which can only tighten; naming
        # the same folder adds nothing, and lets builds from before issue 15 (which took it
        # as the OS location) run these tests too.
        self.managed = tmp / "managed"
        self.managed.mkdir(exist_ok=True)
        self.env = {**os.environ, "COUNTERSIGN_HOME": str(self.home), "COUNTERSIGN_TEST_OS_MANAGED_DIR": str(self.managed),
                    "COUNTERSIGN_MANAGED_DIR": str(self.managed),
                    "COUNTERSIGN_LOG": os.environ.get("COUNTERSIGN_LOG", "info")}
        self.log_path = tmp / "gateway.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Gateway":
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([str(BIN), "serve", "--config", str(self.config)], env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        runtime = self.home / "gateway.json"

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited: {self.log_path.read_text()}")
            try:
                info = json.loads(runtime.read_text())
            except (OSError, ValueError):
                return None
            return info if info.get("pid") == self.proc.pid else None

        info = wait_for(up, what="the gateway to listen")
        self.addr = info["listen"]
        self.cli("token", "revoke", "pytest", check=False)  # a restart in the same home
        self.token = self.cli("token", "create", "pytest").stdout.strip()
        return self

    def url(self, server: str | None = None) -> str:
        return f"http://{self.addr}/mcp" + (f"/{server}" if server else "")


    def wait_audit(self, predicate, what: str) -> list[dict]:
        return wait_for(lambda: [r for r in self.audit() if predicate(r)], what=what)

    def answer_next(self, verdict: str, timeout: float = 30.0) -> dict:
        """Waits for a pending approval and answers it through the CLI."""
        pending = wait_for(lambda: self.status()["approvals"], timeout=timeout, what="a pending approval")
        self.cli(verdict, pending[0]["id"])
        return pending[0]

    def children(self) -> list[int]:
        """Processes in the gateway's session (its upstreams and their helpers)."""
        out = subprocess.run(["ps", "-eo", "pid=,sid=,stat="], capture_output=True, text=True).stdout
        pids = []
        for line in out.splitlines():
            pid, sid, stat = line.split()[:3]
            if int(sid) == self.proc.pid and int(pid) != self.proc.pid:
                pids.append((int(pid), stat))
        return pids

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@pytest.fixture
def make_gateway(tmp_path):
    started: list[Gateway] = []

    def make(servers: dict, policy: dict | None = None, gateway: dict | None = None,
             limits: dict | None = None, sync: dict | None = None) -> Gateway:
        config = write_config(tmp_path / f"countersign{len(started)}.toml", servers, policy, gateway, limits, sync)
        gw = Gateway(tmp_path, config).start()
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()


@pytest.fixture
def files(tmp_path) -> Path:
    d = tmp_path / "files"
    d.mkdir()
    (d / "hello.txt").write_text("hello from countersign\n")
    return d


@asynccontextmanager
async def connect(gw: Gateway, face: str, server: str | None, mode: str = "legacy", **kwargs):
    """An MCP client session through the HTTP face or the stdio shim."""
    if face == "http":
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {gw.token}"},
                                  timeout=httpx2.Timeout(60.0, read=120.0))
        async with http:
            async with Client(streamable_http_client(gw.url(server), http_client=http), mode=mode,
                              **kwargs) as client:
                yield client
    else:
        assert server is not None, "the shim serves one server"
        # What a desktop client passes on: the user's session (its D-Bus, hence the keychain).
        session = {k: os.environ[k] for k in ("DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR") if k in os.environ}
        params = StdioServerParameters(command=str(BIN), args=["connect", server],
                                       env={"COUNTERSIGN_HOME": str(gw.home), "PATH": os.environ["PATH"], **session})
        async with Client(params, mode=mode, **kwargs) as client:
            yield client


def error_text(error: BaseException) -> str:
    """Every message in an error, exception groups (as the MCP client raises them) included."""
    parts = [str(error)]
    for inner in getattr(error, "exceptions", ()):
        parts.append(error_text(inner))
    return "\n".join(parts)


def text_of(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)
