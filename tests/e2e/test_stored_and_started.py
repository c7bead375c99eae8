"""Issue 15, items 8 and 10: what Countersign stores in the keychain and what it lets a
project's files start. Each test performs the attack against the running programs (the
real gnome-keyring of the test session, a real gateway, the real CLI) and asserts the
effect did not happen: the other server's keychain item still holds its value and that
server still starts with it; a cloned repository's server neither starts unasked nor
starts for another client, and no token lands in the repository's tree."""

import json
import os
import pty
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from conftest import BIN, HERE, Gateway, connect, error_text, python_server, text_of, wait_for, write_config

pytestmark = pytest.mark.anyio

ENV_SERVER = HERE / "env_server.py"


def needs_keyring():
    assert os.environ.get("COUNTERSIGN_KEYRING_PASSWORD"), \
        "run inside scripts/keyring-session.sh (make test does): these tests use the real Secret Service"


def env_server(env: dict | None = None, marker: Path | None = None) -> dict:
    server = python_server("env_server.py", *(["--marker", str(marker)] if marker else []))
    if env:
        server["env"] = env
    return server


async def started_with(gw: Gateway, server: str, names: list[str]) -> dict:
    """The environment `server` really started with, as it says through the gateway."""
    async with connect(gw, "http", server) as client:
        r = await client.call_tool("environment", {"names": names})
        assert not r.is_error, text_of(r)
        return json.loads(text_of(r))


def forget(gw: Gateway, *names: str):
    for n in names:
        gw.cli("secret", "rm", n, check=False)


# ---- item 8: keychain items are never overwritten -----------------------------------------

async def test_i15_08_secret_import_never_overwrites_another_servers_item(make_gateway):
    needs_keyring()
    ours = f"e2e15i{uuid.uuid4().hex[:6]}"
    item = f"{ours}-api_key"                      # what `API_KEY` and `api_key` of `ours` are filed as
    value = f"a-holds-this-{uuid.uuid4().hex}"
    gw = make_gateway({
        # Server `a` reads the item by name.
        "a": env_server({"API_KEY": {"secret": item}}),
        # Server `ours` writes two credentials in plain text whose names meet once lower-cased,
        # and meet `a`'s item.
        ours: env_server({"API_KEY": "attacker-upper", "api_key": "attacker-lower"}),
    }, policy={"allow": ["mcp__a", f"mcp__{ours}"]})
    forget(gw, item, f"{item}-2", f"{item}-3")
    try:
        gw.cli("secret", "set", item, input=value + "\n")
        r = gw.cli("secret", "import", "--config", str(gw.config), "--yes")
        gw.stop()
        gw.start()
        assert await started_with(gw, "a", ["API_KEY"]) == {"API_KEY": value}, "a still starts with its own value"
        assert await started_with(gw, ours, ["API_KEY", "api_key"]) == \
            {"API_KEY": "attacker-upper", "api_key": "attacker-lower"}, "each credential got its own item"

        text = gw.config.read_text()
        assert "attacker-upper" not in text and "attacker-lower" not in text
        servers = tomllib.loads(text)["servers"]
        assert servers[ours]["env"] == {"API_KEY": {"secret": f"{item}-2"}, "api_key": {"secret": f"{item}-3"}}
        assert servers["a"]["env"] == {"API_KEY": {"secret": item}}, "a's reference is left as it was"
        assert f"`{item}` is taken" in r.stdout, "the output says so"
    finally:
        forget(gw, item, f"{item}-2", f"{item}-3")


async def test_i15_08_clients_install_never_overwrites_an_item_it_did_not_make(make_gateway, tmp_path):
    needs_keyring()
    ours = f"e2e15c{uuid.uuid4().hex[:6]}"
    item = f"{ours}-api_key"
    value = f"a-holds-this-{uuid.uuid4().hex}"
    # Server `a`, in the running gateway's config, reads the item; the install below goes
    # to another config, which does not name it.
    gw = make_gateway({"a": env_server({"API_KEY": {"secret": item}})}, policy={"allow": ["mcp__a"]})
    forget(gw, item, f"{item}-2")
    try:
        gw.cli("secret", "set", item, input=value + "\n")
        home = tmp_path / "client-home"
        (home / ".cursor").mkdir(parents=True)
        server = env_server({"API_KEY": "from-the-cursor-file"})
        (home / ".cursor" / "mcp.json").write_text(json.dumps({"mcpServers": {ours: server}}))
        other = write_config(tmp_path / "other.toml", {}, policy={"allow": [f"mcp__{ours}"]})
        gw.env["HOME"] = str(home)
        gw.env.pop("XDG_CONFIG_HOME", None)

        out = json.loads(gw.cli("clients", "install", "cursor", "--config", str(other), "--json").stdout)
        assert await started_with(gw, "a", ["API_KEY"]) == {"API_KEY": value}, "a still starts with its own value"
        assert tomllib.loads(other.read_text())["servers"][ours]["env"] == {"API_KEY": {"secret": f"{item}-2"}}
        assert out[0]["renamed_secrets"] == [{"taken": item, "stored_as": f"{item}-2"}], "the output says so"

        # The installed server gets its own item.
        gw.stop()
        gw.config = other
        gw.start()
        assert await started_with(gw, ours, ["API_KEY"]) == {"API_KEY": "from-the-cursor-file"}
    finally:
        forget(gw, item, f"{item}-2")


# ---- item 10: a cloned repository's servers ---------------------------------------------

def on_a_terminal(gw: Gateway, args: list[str], answer: str) -> subprocess.CompletedProcess:
    """Runs the CLI with a terminal for stdin (a pseudo-terminal) and types `answer`."""
    master, slave = pty.openpty()
    try:
        os.write(master, answer.encode())
        r = subprocess.run([str(BIN), *args], env=gw.env, stdin=slave, capture_output=True, text=True, timeout=60)
    finally:
        os.close(slave)
        os.close(master)
    return r


def cloned_repo(tmp_path: Path) -> tuple[Path, Path, dict]:
    """A repository someone cloned: Claude Code's and Cursor's project files name a server
    that writes the marker file the moment it starts."""
    repo = tmp_path / "cloned-repo"
    marker = tmp_path / "the-repository-server-ran"
    hostile = env_server(marker=marker)
    files = {repo / ".mcp.json": {"mcpServers": {"helper": hostile}},                # Claude Code
             repo / ".cursor" / "mcp.json": {"mcpServers": {"helper": hostile}}}     # Cursor (an HTTP client)
    for path, doc in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2) + "\n")
    return repo, marker, files


def tree(repo: Path) -> dict:
    return {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()}


def project_gateway(make_gateway, tmp_path: Path) -> Gateway:
    # Policy would let the tool run: only what install does may keep the server away.
    gw = make_gateway({}, policy={"allow": ["mcp__helper"]})
    gw.env["HOME"] = str(tmp_path / "client-home")
    gw.env.pop("XDG_CONFIG_HOME", None)
    return gw


def test_i15_10_a_cloned_projects_servers_are_shown_and_routed_only_when_confirmed(make_gateway, tmp_path):
    repo, marker, _ = cloned_repo(tmp_path)
    before = tree(repo)
    gw = project_gateway(make_gateway, tmp_path)
    install = ["clients", "install", "claude-code", "cursor", "--project", str(repo)]

    # Off a terminal, without --yes: the command is shown and nothing is installed.
    r = gw.cli(*install, check=False)
    assert r.returncode != 0, f"installed without asking: {r.stdout}"
    assert str(ENV_SERVER) in r.stdout and "--marker" in r.stdout, "what it would run is shown"
    assert "nothing was changed" in r.stderr, r.stderr
    # On a terminal, answered no: nothing either.
    r = on_a_terminal(gw, install, "n\n")
    assert r.returncode != 0 and "not confirmed" in r.stderr, (r.stdout, r.stderr)
    assert "[y/N]" in r.stdout and str(ENV_SERVER) in r.stdout
    assert tree(repo) == before, "the project's files are as they were"
    assert "servers" not in tomllib.loads(gw.config.read_text()), "nothing added to Countersign's config"
    assert not marker.exists()

    # With --yes (for scripts): the commands are printed all the same, then routed.
    r = gw.cli(*install, "--yes")
    assert str(ENV_SERVER) in r.stdout and r.stdout.index(str(ENV_SERVER)) < r.stdout.index("routed through")
    assert tomllib.loads(gw.config.read_text())["servers"]["helper"]["project"] == str(repo)
    assert not marker.exists(), "routing starts nothing"


async def test_i15_10_a_confirmed_projects_servers_serve_only_that_project_and_leave_no_token_in_its_tree(
        make_gateway, tmp_path):
    needs_keyring()
    repo, marker, files = cloned_repo(tmp_path)
    gw = project_gateway(make_gateway, tmp_path)
    r = on_a_terminal(gw, ["clients", "install", "claude-code", "cursor", "--project", str(repo)], "y\n")
    assert r.returncode == 0, (r.stdout, r.stderr)
    entries = {p: json.loads(p.read_text())["mcpServers"]["helper"] for p in files}
    gw.stop()
    gw.start()
    assert "helper" in {s["name"] for s in gw.status()["servers"]}, "the gateway runs with the project's server"

    # Another client's session on /mcp neither sees nor starts it, nor does /mcp/helper.
    async with connect(gw, "http", None) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert not any(t.startswith("helper__") for t in tools), f"served to another client: {tools}"
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("helper__environment", {"names": ["HOME"]})
        assert "unknown tool" in str(unknown.value)
    assert not marker.exists(), "the repository's server was started for another client"
    with pytest.raises(Exception) as refused:
        async with connect(gw, "http", "helper") as client:
            await client.list_tools()
    assert "serves only that project's own entries" in error_text(refused.value)
    assert not marker.exists(), "the repository's server was started for another client"
    assert any(r.get("rule") == "scope:project" and r.get("client") == "pytest" for r in gw.audit()), \
        "the refusal is recorded"

    # No file in the repository's tree holds a token: not a client's, not the control token.
    control = (gw.home / "control.token").read_text().strip()
    for path, data in tree(repo).items():
        for secret in (gw.token.encode(), control.encode(), b"cst_", b"csc_", b"Bearer"):
            assert secret not in data, f"{path} holds a token"
    for entry in entries.values():
        assert entry["args"][0] == "connect" and entry["args"][2:] == ["--home", str(gw.home)], entry

    # The project's own entry, started as Claude Code would, reaches it (the marker works).
    entry = entries[repo / ".mcp.json"]
    session = {k: os.environ[k] for k in ("DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR") if k in os.environ}
    params = StdioServerParameters(command=entry["command"], args=entry["args"],
                                   env={"PATH": os.environ["PATH"], "HOME": gw.env["HOME"], **session})
    async with Client(params) as client:
        assert "environment" in {t.name for t in (await client.list_tools()).tools}
    wait_for(marker.exists, what="the project's own entry to start its server")
