"""The vault end to end: secrets referenced from the config are read from the real Secret
Service (gnome-keyring in the D-Bus session `make test` starts), and remote servers that
require OAuth are signed in to through the Python MCP SDK's own authorization server.
Security cases 20 to 22 of the shared list have named tests here."""

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx2 as httpx
import pytest
from mcp.shared.exceptions import MCPError

from conftest import (BIN, HERE, background, connect, default_browser, error_text, memory_server, text_of,
                      wait_for, write_config)

pytestmark = pytest.mark.anyio


def needs_keyring():
    assert os.environ.get("COUNTERSIGN_KEYRING_PASSWORD"), \
        "run inside scripts/keyring-session.sh (make test does): these tests use the real Secret Service"


# ---- secrets ---------------------------------------------------------------------------

@pytest.fixture
def stored(tmp_path):
    """The names of the keychain secrets a test may store: removed when it ends, whatever
    happened, so none is left for a later test (the keychain outlives each test)."""
    names: list[str] = []
    yield names
    for name in names:
        r = subprocess.run([str(BIN), "secret", "rm", name], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "COUNTERSIGN_HOME": str(tmp_path / "home")})
        assert r.returncode == 0 or "no secret" in r.stderr, f"could not remove `{name}`: {r.stderr}"


async def test_a_secret_reference_is_read_from_the_keychain_and_reaches_the_server(make_gateway, tmp_path, stored):
    needs_keyring()
    stored.append("e2e-memory-path")
    memory_file = tmp_path / "from-the-keychain.json"
    server = memory_server(tmp_path / "unused.json")
    server["env"] = {"MEMORY_FILE_PATH": {"secret": "e2e-memory-path"}}
    gw = make_gateway({"memory": server}, policy={"allow": ["mcp__memory"]})
    gw.cli("secret", "set", "e2e-memory-path", input=str(memory_file) + "\n")

    listed = json.loads(gw.cli("secret", "list", "--config", str(gw.config), "--json").stdout)
    row = next(r for r in listed if r["name"] == "e2e-memory-path")
    assert row == {"name": "e2e-memory-path", "stored": True, "used_by": ["servers.memory.env.MEMORY_FILE_PATH"]}
    assert str(memory_file) not in gw.cli("secret", "list", "--config", str(gw.config)).stdout

    async with connect(gw, "http", "memory") as client:
        r = await client.call_tool("create_entities", {"entities": [{"name": "k", "entityType": "t", "observations": []}]})
        assert not r.is_error, text_of(r)
    wait_for(memory_file.exists, what="the server to write where the secret said")
    gw.cli("secret", "rm", "e2e-memory-path")
    assert "MISSING" in gw.cli("secret", "list", "--config", str(gw.config)).stdout


async def test_a_missing_secret_stops_the_server_and_names_the_secret(make_gateway, tmp_path):
    needs_keyring()
    server = memory_server(tmp_path / "m.json")
    server["env"] = {"API_TOKEN": {"secret": "e2e-never-stored"}}
    gw = make_gateway({"memory": server}, policy={"allow": ["mcp__memory"]})
    with pytest.raises(Exception) as failure:
        async with connect(gw, "http", "memory") as client:
            await client.call_tool("read_graph", {})
    message = error_text(failure.value)
    assert "could not start" in message and "e2e-never-stored" in message and "countersign secret set e2e-never-stored" in message, message
    assert gw.children() == [], "the server must not start without its secret"


def test_secret_values_never_come_from_the_command_line(make_gateway, tmp_path, stored):
    stored += ["e2e-argv", "e2e-empty"]
    gw = make_gateway({})
    r = gw.cli("secret", "set", "e2e-argv", "hunter2", check=False)
    assert r.returncode != 0 and "unexpected argument" in r.stderr
    r = gw.cli("secret", "set", "e2e-empty", input="", check=False)
    assert r.returncode != 0 and "empty" in r.stderr


def test_plaintext_secrets_in_a_config_move_into_the_keychain(make_gateway, tmp_path, stored):
    needs_keyring()
    stored += ["gh-github_token", "remote-authorization"]
    gw = make_gateway({})
    config = tmp_path / "plain.toml"
    config.write_text('# my servers\n[servers.gh]\ncommand = "gh-mcp" # the GitHub server\n'
                      'env = { GITHUB_TOKEN = "ghp_e2eplaintext0123456789", LOG_LEVEL = "debug" }\n'
                      '[servers.remote]\nurl = "https://example.test/mcp"\n'
                      'headers = { Authorization = "Bearer e2e-remote-0123456789" }\n')
    r = gw.cli("secret", "import", "--config", str(config), check=False)
    assert r.returncode != 0 and "servers.gh.env.GITHUB_TOKEN" in r.stdout, "without --yes off a terminal: only a list"
    gw.cli("secret", "import", "--config", str(config), "--yes")
    text = config.read_text()
    assert "ghp_e2eplaintext" not in text and "e2e-remote-0123456789" not in text
    assert '# my servers' in text and '# the GitHub server' in text and 'LOG_LEVEL = "debug"' in text
    assert 'GITHUB_TOKEN = { secret = "gh-github_token" }' in text
    assert 'Authorization = { secret = "remote-authorization", format = "Bearer {}" }' in text
    listed = {r["name"]: r for r in json.loads(gw.cli("secret", "list", "--config", str(config), "--json").stdout)}
    assert listed["gh-github_token"]["stored"] and listed["remote-authorization"]["stored"]
    gw.cli("secret", "rm", "gh-github_token")
    gw.cli("secret", "rm", "remote-authorization")


# ---- OAuth -----------------------------------------------------------------------------

class AuthServer:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/mcp"

    def stats(self) -> dict:
        return httpx.get(f"{self.base}/test/stats").json()

    def post(self, path: str):
        httpx.post(f"{self.base}{path}").raise_for_status()


@pytest.fixture
def auth_server(tmp_path):
    started = []

    def start(*flags: str) -> AuthServer:
        ctx = background(lambda port: [sys.executable, str(HERE / "oauth_server.py"), str(port), *flags],
                         tmp_path / f"oauth-{len(started)}.log")
        served = ctx.__enter__()
        started.append(ctx)
        return AuthServer(served.port)

    yield start
    for ctx in started:
        ctx.__exit__(None, None, None)


@pytest.fixture
def remote(tmp_path):
    """The name of this test's remote server, its own: sign-ins are filed in the keychain
    by server name alone, and the keychain outlives the test. Whatever sign-in the test
    leaves is signed out when it ends, so no test sees another's, in any order."""
    name = f"remote-{uuid.uuid4().hex[:8]}"
    yield name
    r = subprocess.run([str(BIN), "auth", "logout", name], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "COUNTERSIGN_HOME": str(tmp_path / "home")})
    assert r.returncode == 0 or "no sign-in" in r.stderr, f"could not sign out of `{name}`: {r.stderr}"


@pytest.fixture
def browser(tmp_path):
    """The user's browser as the OS opener finds it (see `default_browser`): it records the
    URL it is started with; `visit` then follows that URL as a browser would."""
    env, record = default_browser(tmp_path)

    class Browser:
        def __init__(self):
            self.env = env

        def opened(self) -> list[str]:
            return record.read_text().splitlines() if record.exists() else []

        def visit(self, url: str, tamper=None) -> httpx.Response:
            first = httpx.get(url, follow_redirects=False)
            assert first.status_code in (302, 303, 307), first.text
            target = first.headers["location"]
            if tamper:
                target = tamper(target)
            return httpx.get(target)

    return Browser()


def login(gw, server: str, browser, tamper=None, use_browser: bool = True, env: dict | None = None):
    """Runs `countersign auth login` and plays the browser's part; returns (exit code, output)."""
    args = [str(BIN), "auth", "login", server, "--config", str(gw.config)]
    if not use_browser:
        args.append("--no-browser")
    proc_env = {**gw.env, **browser.env, **(env or {})}
    proc = subprocess.Popen(args, env=proc_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = None
    if use_browser:
        def opened():
            if proc.poll() is not None:
                return "exited"
            got = browser.opened()
            return got if len(got) == 2 else None
        got = wait_for(opened, what="the browser to be opened")
        if got != "exited":
            assert got[0] == "1", f"the opener must get exactly one argument: {got}"
            url = got[1]
    else:
        line = proc.stdout.readline()
        while line and not line.startswith("http"):
            line = proc.stdout.readline()
        url = line.strip() or None
    if url:
        browser.visit(url, tamper)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out + err, url


def start_login(gw, server: str, browser):
    """Starts `countersign auth login` and waits for the browser to be opened; returns the
    process and the authorization URL (the test plays the browser)."""
    proc = subprocess.Popen([str(BIN), "auth", "login", server, "--config", str(gw.config)],
                            env={**gw.env, **browser.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    got = wait_for(lambda: proc.poll() is not None or (len(browser.opened()) == 2 and browser.opened()),
                   what="the browser to be opened")
    if got is True:
        out, err = proc.communicate()
        raise AssertionError(f"auth login ended before opening the browser: {out}{err}")
    return proc, got[1]


def stop(proc):
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def status_of(gw, server: str) -> dict:
    rows = json.loads(gw.cli("auth", "status", "--config", str(gw.config), "--json").stdout)
    return next(r["credentials"] for r in rows if r["server"] == server)


async def call_whoami(gw, server):
    async with connect(gw, "http", server) as client:
        return await client.call_tool("whoami", {})


async def test_a_server_that_needs_oauth_is_signed_in_to_and_no_client_token_goes_upstream(
        make_gateway, remote, auth_server, browser):
    needs_keyring()
    auth = auth_server()
    gw = make_gateway({remote: {"url": auth.url, "trusted": True}}, policy={"allow": [f"mcp__{remote}"]})
    assert status_of(gw, remote) == {"state": "none"}

    code, output, url = login(gw, remote, browser)
    assert code == 0, output
    assert f"Signed in to `{remote}`" in output
    assert url.startswith(f"{auth.base}/authorize?") and "code_challenge_method=S256" in url
    stats = auth.stats()
    assert stats["resources"] == [auth.url], "RFC 8707: the resource is the server's URL"
    assert stats["codes_exchanged"] == 1
    state = status_of(gw, remote)
    assert state["state"] == "signed_in" and state["issuer"] == auth.base

    r = await call_whoami(gw, remote)
    assert not r.is_error and text_of(r) == "signed in", text_of(r)
    seen = auth.stats()["bearers_seen"]
    assert seen and all(gw.token not in b for b in seen), "the client's own token must never reach the server"
    assert all(b.removeprefix("Bearer ") in auth.stats()["issued"] for b in seen)


async def test_without_a_sign_in_the_client_is_told_how_to_sign_in(make_gateway, remote, auth_server):
    needs_keyring()
    auth = auth_server()
    gw = make_gateway({remote: {"url": auth.url}}, policy={"allow": [f"mcp__{remote}"]})
    with pytest.raises(Exception) as failure:
        async with connect(gw, "http", remote) as client:
            await client.list_tools()
    message = error_text(failure.value)
    assert "needs you to sign in" in message and f"countersign auth login {remote}" in message, message


async def test_expiring_and_revoked_tokens_are_refreshed_and_a_dead_sign_in_asks_again(
        make_gateway, remote, auth_server, browser):
    needs_keyring()
    auth = auth_server("--expires-in", "2")
    gw = make_gateway({remote: {"url": auth.url, "trusted": True}}, policy={"allow": [f"mcp__{remote}"]})
    code, output, _ = login(gw, remote, browser)
    assert code == 0, output

    async with connect(gw, "http", remote) as client:
        # Tokens live 2 s; calls keep working across expiry because the gateway refreshes.
        async def refreshed():
            r = await client.call_tool("whoami", {})
            assert not r.is_error, text_of(r)
            return auth.stats()["refreshes"] >= 2
        import anyio
        with anyio.fail_after(30):
            while not await refreshed():
                await anyio.sleep(0.2)

        # The server revokes the access token: a 401, one refresh, the call goes through.
        before = auth.stats()["refreshes"]
        auth.post("/test/revoke-access")
        r = await client.call_tool("whoami", {})
        assert not r.is_error, text_of(r)
        assert auth.stats()["refreshes"] == before + 1

        # Refresh token revoked too: the call fails and says to sign in again.
        auth.post("/test/revoke-all")
        with pytest.raises(MCPError) as failure:
            await client.call_tool("whoami", {})
        assert f"countersign auth login {remote}" in str(failure.value), str(failure.value)


async def test_logout_revokes_the_tokens_at_the_authorization_server(make_gateway, remote, auth_server, browser):
    needs_keyring()
    auth = auth_server()
    gw = make_gateway({remote: {"url": auth.url}})
    assert login(gw, remote, browser, use_browser=False)[0] == 0
    assert auth.stats()["live_refresh_tokens"] == 1
    out = gw.cli("auth", "logout", remote).stdout
    assert "2 token(s) revoked" in out, out
    stats = auth.stats()
    assert stats["revocations"] == 2 and stats["live_access_tokens"] == 0 and stats["live_refresh_tokens"] == 0
    assert status_of(gw, remote) == {"state": "none"}


@pytest.mark.parametrize("mode", ["file", "javascript", "shell", "flag", "metadata-ip"])
def test_sec_20_hostile_authorization_endpoints_are_refused_and_nothing_is_opened(make_gateway, remote, browser, tmp_path,
                                                                                 mode):
    needs_keyring()
    marker = tmp_path / "pwned"  # what a shell running the `shell` metadata would create
    with background(lambda port: [sys.executable, str(HERE / "hostile_oauth.py"), str(port), mode, str(marker)],
                    tmp_path / "h.log") as hostile:
        gw = make_gateway({remote: {"url": f"http://127.0.0.1:{hostile.port}/mcp"}})
        code, output, url = login(gw, remote, browser)
    assert code != 0 and url is None, output
    assert "refused" in output or "unusable" in output or "not allowed" in output, output
    assert browser.opened() == [], "no browser may be opened for hostile metadata"
    assert not marker.exists(), "a shell ran the metadata"
    assert status_of(gw, remote) == {"state": "none"}


@pytest.mark.parametrize("mode", ["no-pkce", "plain-pkce"])
def test_sec_21_an_authorization_server_without_pkce_s256_is_refused(make_gateway, remote, browser, tmp_path, mode):
    needs_keyring()
    with background(lambda port: [sys.executable, str(HERE / "hostile_oauth.py"), str(port), mode],
                    tmp_path / "h.log") as hostile:
        gw = make_gateway({remote: {"url": f"http://127.0.0.1:{hostile.port}/mcp"}})
        code, output, url = login(gw, remote, browser)
    assert code != 0 and url is None, output
    assert "PKCE" in output, output
    assert browser.opened() == []


def test_sec_21_a_mismatched_issuer_aborts_the_sign_in(make_gateway, remote, auth_server, browser):
    needs_keyring()
    auth = auth_server("--wrong-iss")
    gw = make_gateway({remote: {"url": auth.url}})
    code, output, _ = login(gw, remote, browser)
    assert code != 0 and "issuer" in output and "evil.example" in output, output
    assert auth.stats()["codes_exchanged"] == 0, "the code must not be exchanged"
    assert status_of(gw, remote) == {"state": "none"}


def test_sec_21_a_mismatched_state_is_refused_and_its_code_never_exchanged(make_gateway, remote, auth_server, browser):
    """The redirect comes back with a forged `state`: its code is not exchanged, the tab
    says so, and the sign-in keeps waiting for its own redirect (issue 15, item 11)."""
    needs_keyring()
    auth = auth_server()
    gw = make_gateway({remote: {"url": auth.url}})
    proc, url = start_login(gw, remote, browser)
    try:
        forged = browser.visit(url, lambda target: re.sub(r"state=[^&]+", "state=forged-by-an-attacker", target))
        assert forged.status_code == 400 and "Not this sign-in" in forged.text, forged.text
        assert proc.poll() is None, "a forged state must not end the sign-in"
        assert auth.stats()["codes_presented"] == [], "the forged redirect's code must not be exchanged"
        assert status_of(gw, remote) == {"state": "none"}
        real = browser.visit(url)
        assert real.status_code == 200 and "Signed in" in real.text, real.text
        out, err = proc.communicate(timeout=60)
    finally:
        stop(proc)
    assert proc.returncode == 0, out + err
    assert auth.stats()["codes_exchanged"] == 1
    assert status_of(gw, remote)["state"] == "signed_in"


def test_sec_21_a_token_for_another_audience_is_discarded(make_gateway, remote, auth_server, browser):
    needs_keyring()
    auth = auth_server("--wrong-audience")
    gw = make_gateway({remote: {"url": auth.url}})
    code, output, _ = login(gw, remote, browser)
    assert code != 0 and "another audience" in output and "another.example" in output, output
    assert status_of(gw, remote) == {"state": "none"}


async def test_sec_22_no_token_lands_in_the_journal_logs_or_files(make_gateway, remote, auth_server, browser, tmp_path,
                                                                  monkeypatch):
    """Sign in, call, refresh, revoke, sign out, the gateway and every CLI command at
    `trace`; then every token the authorization server issued (and the authorization
    codes' shape) is searched for in every file the gateway and the CLI wrote, their logs
    and outputs included. The trace log is shown to hold what trace logging writes (the
    relayed messages, the refresh), so the search looks at real content."""
    needs_keyring()
    monkeypatch.setenv("COUNTERSIGN_LOG", "trace")
    auth = auth_server("--expires-in", "2")
    gw = make_gateway({remote: {"url": auth.url, "trusted": True}}, policy={"allow": [f"mcp__{remote}"]})
    assert gw.env["COUNTERSIGN_LOG"] == "trace"
    code, output, _ = login(gw, remote, browser)
    assert code == 0, output
    async with connect(gw, "http", remote) as client:
        import anyio
        with anyio.fail_after(30):
            while auth.stats()["refreshes"] < 1:
                r = await client.call_tool("whoami", {})
                assert not r.is_error, text_of(r)
                await anyio.sleep(0.2)
    logout = gw.cli("auth", "logout", remote)
    gw.stop()
    issued = auth.stats()["issued"]
    assert len(issued) >= 4
    # The search below would see a leak: the gateway's log holds what only trace and debug
    # logging write, at the moments a token passes (the refresh, its keychain write).
    trace = re.sub(r"\x1b\[[0-9;]*m", "", gw.log_path.read_text())
    levels = {line.split()[1] for line in trace.splitlines() if line[:4].isdigit() and len(line.split()) > 1}
    assert {"TRACE", "DEBUG", "INFO"} <= levels, levels
    for marker in ["Refreshed access token", f'set password for entry Specifier {{ label: "Countersign sign-in to {remote}"',
                   "Sending message: Msg { type: MethodCall"]:
        assert marker in trace, f"the trace log lacks {marker!r}"
    assert " TRACE " in re.sub(r"\x1b\[[0-9;]*m", "", output), "the sign-in ran at trace too"
    haystacks = {"login output": output, "logout output": logout.stdout + logout.stderr}
    for path in tmp_path.rglob("*"):
        if path.is_file() and "oauth-" not in path.name:
            haystacks[str(path)] = path.read_bytes().decode("latin-1")
    for where, text in haystacks.items():
        for token in issued:
            assert token not in text, f"a token leaked into {where}"
        assert not re.search(r"\b(at|rt)_[A-Za-z0-9_-]{20,}", text), f"a token-shaped string in {where}"
        assert "code=" not in text or where == "login output", f"an authorization code in {where}"


async def test_removing_a_remote_server_revokes_its_sign_in(make_gateway, remote, auth_server, browser):
    needs_keyring()
    auth = auth_server()
    gw = make_gateway({remote: {"url": auth.url}})
    assert login(gw, remote, browser, use_browser=False)[0] == 0
    gw.stop()
    write_config(gw.config, {})
    gw.start()
    wait_for(lambda: auth.stats()["revocations"] == 2, what="the removed server's tokens to be revoked")
    assert auth.stats()["live_refresh_tokens"] == 0
    record = gw.wait_audit(lambda r: r.get("rule") == "sign-out", "the sign-out record")[0]
    assert record["server"] == remote and "2 token(s) revoked" in record["reason"]
    r = gw.cli("auth", "logout", remote, check=False)
    assert r.returncode != 0 and "no sign-in" in r.stderr


# ---- issue 15: what is stored, pushed and shown -----------------------------------------

async def test_i15_11_bad_callbacks_from_a_local_process_do_not_end_the_sign_in(make_gateway, remote, auth_server, browser):
    """While the sign-in waits, a local process knocks on its loopback listener: an
    `error` without the state, a junk code with a junk state, an `error` with a junk state,
    this sign-in's state through another `Host` (as a web page rebinding a name to
    127.0.0.1 would), and another path. Each is answered in its own tab; the sign-in goes on
    and completes with the real redirect; the junk code never reaches the token endpoint."""
    needs_keyring()
    from urllib.parse import parse_qs, urlsplit
    auth = auth_server()
    gw = make_gateway({remote: {"url": auth.url, "trusted": True}}, policy={"allow": [f"mcp__{remote}"]})
    proc, url = start_login(gw, remote, browser)
    try:
        query = parse_qs(urlsplit(url).query)
        redirect, state = query["redirect_uri"][0], query["state"][0]
        port = urlsplit(redirect).port
        assert redirect == f"http://127.0.0.1:{port}/countersign/oauth/callback", redirect
        knocks = [
            (f"{redirect}?error=access_denied", {}),
            (f"{redirect}?code=junk&state=junk", {}),
            (f"{redirect}?error=access_denied&state=junk", {}),
            (f"{redirect}?error=access_denied&state={state}", {"Host": f"evil.example:{port}"}),
            (f"{redirect}?code=junk&state={state}", {"Host": f"localhost:{port}"}),
            (f"http://127.0.0.1:{port}/elsewhere?code=junk&state={state}", {}),
        ]
        for target, headers in knocks:
            r = httpx.get(target, headers=headers)
            assert r.status_code in (400, 404, 421), (target, headers, r.status_code, r.text)
            assert "<h1>Not " in r.text and "junk" not in r.text and state not in r.text, r.text
            assert proc.poll() is None, f"the sign-in ended on {target} {headers}: {proc.communicate()}"
        real = browser.visit(url)
        assert real.status_code == 200 and "Signed in" in real.text, real.text
        out, err = proc.communicate(timeout=60)
    finally:
        stop(proc)
    assert proc.returncode == 0 and f"Signed in to `{remote}`" in out, out + err
    stats = auth.stats()
    assert "junk" not in stats["codes_presented"], "the junk code was sent to the token endpoint"
    assert len(stats["codes_presented"]) == 1 and stats["codes_exchanged"] == 1, stats
    assert status_of(gw, remote)["state"] == "signed_in", "the token must be in the keychain"
    r = await call_whoami(gw, remote)
    assert not r.is_error and text_of(r) == "signed in", text_of(r)


def test_i15_11_an_error_with_the_right_state_ends_the_sign_in(make_gateway, remote, auth_server, browser):
    """The authorization server's own refusal (it carries the state) ends the sign-in with
    its error, shown as plain text (no escape sequences reach the terminal)."""
    needs_keyring()
    from urllib.parse import parse_qs, urlsplit
    auth = auth_server()
    gw = make_gateway({remote: {"url": auth.url}})
    proc, url = start_login(gw, remote, browser)
    try:
        query = parse_qs(urlsplit(url).query)
        r = httpx.get(query["redirect_uri"][0],
                      params={"error": "access_denied", "error_description": "no\x1b[2Jthanks", "state": query["state"][0]})
        assert r.status_code == 200 and "Sign-in refused" in r.text, r.text
        out, err = proc.communicate(timeout=60)
    finally:
        stop(proc)
    assert proc.returncode != 0 and "access_denied" in err and "no?[2Jthanks" in err, out + err
    assert "\x1b" not in out + err
    assert auth.stats()["codes_presented"] == []
    assert status_of(gw, remote) == {"state": "none"}


def bearers_sent(auth) -> list[str]:
    return [b.removeprefix("Bearer ") for b in auth.stats()["bearers_seen"]]


@pytest.mark.parametrize("how", ["expiry", "refusal"])
async def test_i15_12_a_refreshed_token_for_another_audience_never_reaches_the_server(make_gateway, remote, auth_server,
                                                                                      browser, how):
    """Sign-in issues a token for this server; the refresh (when the token expires, or
    when the server refuses it) returns a JWT whose `aud` is another resource, which the
    server would still accept. The gateway must discard it: the server never receives it,
    the call says to sign in again and why, and `auth status` says so too."""
    needs_keyring()
    import anyio
    foreign = "https://another.example/mcp"
    auth = auth_server("--refresh-audience", foreign, *(["--expires-in", "2"] if how == "expiry" else []))
    gw = make_gateway({remote: {"url": auth.url, "trusted": True}}, policy={"allow": [f"mcp__{remote}"]})
    code, output, _ = login(gw, remote, browser)
    assert code == 0, output
    failure = None
    async with connect(gw, "http", remote) as client:
        r = await client.call_tool("whoami", {})
        assert not r.is_error, text_of(r)
        if how == "refusal":
            auth.post("/test/revoke-access")
        with anyio.fail_after(30):
            while failure is None and auth.stats()["refreshes"] == 0:
                try:
                    await client.call_tool("whoami", {})
                except MCPError as e:
                    failure = e
                    break
                await anyio.sleep(0.1)
        assert auth.stats()["refreshes"] >= 1, "the gateway never refreshed"
        if failure is None:  # the refresh happened beside a call (the GET stream): the next one must fail
            try:
                await client.call_tool("whoami", {})
            except MCPError as e:
                failure = e
        foreign_tokens = [t for t in auth.stats()["issued"] if t.count(".") == 2]
        assert foreign_tokens, "the fixture issued no foreign token"
        assert not set(foreign_tokens) & set(bearers_sent(auth)), \
            "a token minted for another resource was sent upstream"
        assert failure is not None, "a call went through after the refresh"
        message = str(failure)
        assert f"countersign auth login {remote}" in message and "another audience" in message and foreign in message, \
            message
        with pytest.raises(MCPError):
            await client.call_tool("whoami", {})
    assert not set(foreign_tokens) & set(bearers_sent(auth)), "a token minted for another resource was sent upstream"
    state = status_of(gw, remote)
    assert state["state"] == "needs_sign_in" and "another audience" in state["why"], state
    assert not any(t in json.dumps(state) for t in auth.stats()["issued"])


async def test_i15_12_auth_status_shows_the_scopes_a_refresh_granted(make_gateway, remote, auth_server, browser):
    """Signed in with `read write`; the refresh grants only `read`: `auth status` shows
    what the current token carries, not what the sign-in once got."""
    needs_keyring()
    auth = auth_server("--refresh-scope", "read")
    gw = make_gateway({remote: {"url": auth.url, "trusted": True, "oauth": {"scopes": ["read", "write"]}}},
                      policy={"allow": [f"mcp__{remote}"]})
    code, output, _ = login(gw, remote, browser)
    assert code == 0 and "scopes: read write" in output, output
    signed_in = status_of(gw, remote)
    assert signed_in["scopes"] == ["read", "write"], signed_in
    async with connect(gw, "http", remote) as client:
        assert not (await client.call_tool("whoami", {})).is_error
        auth.post("/test/revoke-access")
        r = await client.call_tool("whoami", {})
        assert not r.is_error, text_of(r)
    assert auth.stats()["refreshes"] == 1
    refreshed = status_of(gw, remote)
    assert refreshed["state"] == "signed_in" and refreshed["scopes"] == ["read"], refreshed
    assert refreshed["received_at"] >= signed_in["received_at"]
    text = gw.cli("auth", "status", "--config", str(gw.config)).stdout
    assert "read" in text and "write" not in text, text
