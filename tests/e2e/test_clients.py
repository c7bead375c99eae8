"""`countersign clients list` against a temporary home holding real clients' files:
every client found, each server marked routed or shadow, nothing written."""

import json
import os
import re
import shutil
import subprocess
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import BIN, NODE_BIN, ROOT
from test_vault import auth_server, browser  # noqa: F401  (fixtures shared with the vault's tests)

TESTDATA = ROOT / "crates" / "clients" / "testdata"


def test_clients_list_finds_routed_and_shadow_servers_in_a_temporary_home(tmp_path):
    home = tmp_path / "home"
    (home / ".config" / "Claude").mkdir(parents=True)
    (home / ".cursor").mkdir(parents=True)
    shutil.copy(TESTDATA / "claude-desktop" / "original.json", home / ".config" / "Claude" / "claude_desktop_config.json")
    shutil.copy(TESTDATA / "cursor" / "original.json", home / ".cursor" / "mcp.json")
    project = tmp_path / "shop"
    project.mkdir()
    shutil.copy(TESTDATA / "project" / ".mcp.json", project / ".mcp.json")
    before = {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_CONFIG_HOME", "APPDATA")}
    env.update(HOME=str(home), COUNTERSIGN_HOME=str(tmp_path / "cs"))
    out = subprocess.run([str(BIN), "clients", "list", "--json", "--project", str(project)], env=env,
                         capture_output=True, text=True, check=True).stdout
    reports = json.loads(out)
    files = {r["file"]: r for r in reports}
    assert set(files) == {"~/.config/Claude/claude_desktop_config.json", "~/.cursor/mcp.json",
                          str(project / ".mcp.json")}
    desktop = {s["name"]: s["route"] for s in files["~/.config/Claude/claude_desktop_config.json"]["servers"]}
    assert desktop == {"filesystem": "shadow", "github": "routed"}
    assert files[str(project / ".mcp.json")]["project"] == str(project)
    cursor = {s["name"]: s["route"] for s in files["~/.cursor/mcp.json"]["servers"]}
    assert cursor == {"time": "shadow", "countersign": "routed", "notion": "shadow"}, "the default port is ours"
    text = subprocess.run([str(BIN), "clients", "list"], env=env, capture_output=True, text=True, check=True).stdout
    assert "Claude Desktop" in text and "SHADOW  filesystem" in text and "routed  github" in text
    assert {p: p.read_bytes() for p in home.rglob("*") if p.is_file()} == before, "listing changes nothing"


def test_the_gateway_records_shadow_servers_in_the_audit_journal(tmp_path, make_gateway):
    from conftest import wait_for

    home = tmp_path / "client-home"
    (home / ".cursor").mkdir(parents=True)
    shutil.copy(TESTDATA / "cursor" / "original.json", home / ".cursor" / "mcp.json")
    gw = make_gateway({})
    gw.stop()
    gw.env["HOME"] = str(home)
    gw.env.pop("XDG_CONFIG_HOME", None)
    gw.start()
    record = gw.wait_audit(lambda r: r["rule"] == "client-inventory", "the inventory record")[0]
    assert record["decision"] == "ask" and "Cursor `time`" in record["reason"] and "Cursor `notion`" in record["reason"]
    found = record["arguments"]["clients"][0]
    assert found["file"] == "~/.cursor/mcp.json" and {s["name"] for s in found["servers"]} == {"time", "countersign", "notion"}


def client_env(gw, home: Path) -> dict:
    """The environment a desktop client passes to what it starts: the user's session (its
    D-Bus, hence the keychain) and home. No COUNTERSIGN_HOME: the entry names the data
    folder itself."""
    session = {k: os.environ[k] for k in ("DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR") if k in os.environ}
    return {"PATH": os.environ["PATH"], "HOME": str(home), **session}


@pytest.mark.anyio
async def test_install_routes_claude_desktop_and_cursor_and_uninstall_puts_them_back(tmp_path, make_gateway, files):
    import anyio
    import httpx2
    from mcp import Client, StdioServerParameters
    from mcp.client.streamable_http import streamable_http_client

    from conftest import FIXTURES, NODE_BIN, text_of

    home = tmp_path / "client-home"
    desktop_file = home / ".config" / "Claude" / "claude_desktop_config.json"
    cursor_file = home / ".cursor" / "mcp.json"
    desktop_file.parent.mkdir(parents=True)
    cursor_file.parent.mkdir(parents=True)
    secret = "s3cret-filesystem-token-0f9a"
    desktop_file.write_text(json.dumps({
        "mcpServers": {
            "filesystem": {"command": str(NODE_BIN / "mcp-server-filesystem"), "args": [str(files)],
                           "env": {"FS_API_TOKEN": secret, "LOG_LEVEL": "info"}},
        },
        "globalShortcut": "Ctrl+Space",
    }, indent=2) + "\n")
    cursor_file.write_text('{\n  "mcpServers": {\n    "time": { "command": "%s", "args": ["--local-timezone", "UTC"] }\n  }\n}\n'
                           % (FIXTURES / ".venv" / "bin" / "mcp-server-time"))
    originals = {p: p.read_bytes() for p in (desktop_file, cursor_file)}

    gw = make_gateway({})
    gw.env["HOME"] = str(home)
    gw.env.pop("XDG_CONFIG_HOME", None)
    result = json.loads(gw.cli("clients", "install", "claude-desktop", "cursor", "--json").stdout)
    by_client = {r["client"]: r for r in result}
    assert [m["via"] for m in by_client["claude-desktop"]["changed"]] == ["shim"]
    assert [m["via"] for m in by_client["cursor"]["changed"]] == ["http"]
    assert by_client["claude-desktop"]["restart"] and Path(by_client["cursor"]["backup"]).read_bytes() == originals[cursor_file]

    # The credential went to the keychain: not in the client's file, Countersign's config
    # or the install record.
    config_text = gw.config.read_text()
    assert "[servers.filesystem]" in config_text and "[servers.time]" in config_text
    for text in (config_text, desktop_file.read_text(), cursor_file.read_text(),
                 (gw.home / "client-routes.json").read_text()):
        assert secret not in text
    assert "filesystem-fs_api_token" in gw.cli("secret", "list", "--config", str(gw.config)).stdout

    # Claude Desktop starts the command in its file, as it would.
    entry = json.loads(desktop_file.read_text())["mcpServers"]["filesystem"]
    assert entry["args"] == ["connect", "filesystem", "--home", str(gw.home)]
    assert Path(entry["command"]).name == "countersign"
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env=client_env(gw, home))
    with anyio.fail_after(60):
        async with Client(params) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert {"read_text_file", "list_directory"} <= tools
            read = await client.call_tool("read_text_file", {"path": str(files / "hello.txt")})
            assert "hello from countersign" in text_of(read)

    # Cursor posts to the URL in its file with the headers in its file.
    entry = json.loads(cursor_file.read_text())["mcpServers"]["time"]
    assert entry["url"] == gw.url("time") and entry["headers"]["Authorization"].startswith("Bearer ")
    assert oct(cursor_file.stat().st_mode & 0o777) == "0o600", "a file holding a client token is owner-only"
    with anyio.fail_after(60):
        async with httpx2.AsyncClient(headers=entry["headers"], timeout=60) as http:
            async with Client(streamable_http_client(entry["url"], http_client=http)) as client:
                assert "get_current_time" in {t.name for t in (await client.list_tools()).tools}
                now = await client.call_tool("get_current_time", {"timezone": "UTC"})
                assert "UTC" in text_of(now)
    calls = gw.wait_audit(lambda r: r["kind"] == "call" and r["server"] in ("filesystem", "time"), "routed calls")
    assert {r["client"] for r in calls} == {"stdio-shim", "client-cursor"}

    # Installing again changes nothing.
    installed = {p: p.read_bytes() for p in (desktop_file, cursor_file)}
    again = gw.cli("clients", "install").stdout
    assert "nothing to change" in again
    assert {p: p.read_bytes() for p in installed} == installed and gw.config.read_text() == config_text
    listed = json.loads(gw.cli("clients", "list", "--json").stdout)
    assert {s["route"] for r in listed for s in r["servers"]} == {"routed"}

    # Uninstall gives the original files back byte for byte (the credential with them),
    # removes what install added, and the client's token stops working.
    gw.cli("clients", "uninstall")
    assert {p: p.read_bytes() for p in originals} == originals
    assert "[servers.filesystem]" not in gw.config.read_text()
    assert "filesystem-fs_api_token" not in gw.cli("secret", "list", "--config", str(gw.config)).stdout
    request = urllib.request.Request(entry["url"], method="POST", data=b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
                                     headers={**entry["headers"], "Content-Type": "application/json",
                                              "Accept": "application/json, text/event-stream"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 401, "the client's token was revoked with its routes"


@pytest.mark.anyio
async def test_a_same_named_server_with_other_values_gets_its_own_name(tmp_path, make_gateway):
    """Issue 14, item 11: Countersign's `memory` and the clients' `memory` have the same keys;
    only an equal definition (values compared, the credential by its digest) is reused."""
    import anyio
    from mcp import Client, StdioServerParameters

    from conftest import NODE_BIN, memory_server, text_of

    ours_file, theirs_file = tmp_path / "countersign-memory.jsonl", tmp_path / "ana-memory.jsonl"
    token = "countersign-own-api-token-5b1c"
    gw = make_gateway({"memory": {**memory_server(ours_file),
                                  "env": {"MEMORY_FILE_PATH": str(ours_file), "API_TOKEN": {"secret": "memory-api"}}}},
                      policy={"allow": ["mcp__memory", "mcp__memory-claude-desktop"]})
    gw.cli("secret", "set", "memory-api", input=token)
    config_before = gw.config.read_text()

    home = tmp_path / "client-home"
    command = str(NODE_BIN / "mcp-server-memory")
    desktop = home / ".config" / "Claude" / "claude_desktop_config.json"
    codex = home / ".codex" / "config.toml"
    cont = home / ".continue" / "config.yaml"
    for f in (desktop, codex, cont):
        f.parent.mkdir(parents=True)
    # Another data file, the same token.
    desktop.write_text(json.dumps({"mcpServers": {"memory": {
        "command": command, "env": {"MEMORY_FILE_PATH": str(theirs_file), "API_TOKEN": token}}}}, indent=2) + "\n")
    # The same data file, another token.
    other_token = "someone-elses-api-token-77e0"
    codex.write_text(f'[mcp_servers.memory]\ncommand = "{command}"\n'
                     f'env = {{ MEMORY_FILE_PATH = "{ours_file}", API_TOKEN = "{other_token}" }}\n')
    # The very same definition.
    cont.write_text(f"mcpServers:\n  - name: memory\n    command: {command}\n    env:\n"
                    f"      MEMORY_FILE_PATH: {ours_file}\n      API_TOKEN: {token}\n")
    originals = {p: p.read_bytes() for p in (desktop, codex, cont)}

    gw.env["HOME"] = str(home)
    gw.env.pop("XDG_CONFIG_HOME", None)
    result = json.loads(gw.cli("clients", "install", "claude-desktop", "codex-cli", "continue", "--json").stdout)
    server_of = {r["client"]: r["changed"][0]["server"] for r in result}
    assert server_of == {"claude-desktop": "memory-claude-desktop", "codex-cli": "memory-codex-cli",
                         "continue": "memory"}

    # The config: Countersign's own server unchanged, each different definition its own,
    # with its own values; no credential written in it.
    config_text = gw.config.read_text()
    servers = tomllib.loads(config_text)["servers"]
    assert servers["memory"] == tomllib.loads(config_before)["servers"]["memory"]
    assert token not in config_text and other_token not in config_text
    assert servers["memory-claude-desktop"]["env"]["MEMORY_FILE_PATH"] == str(theirs_file)
    assert set(servers["memory-claude-desktop"]["env"]["API_TOKEN"]) == {"secret"}, "a keychain reference"
    assert servers["memory-codex-cli"]["env"]["MEMORY_FILE_PATH"] == str(ours_file)
    secrets = {s["name"]: s for s in json.loads(gw.cli("secret", "list", "--config", str(gw.config),
                                                       "--json").stdout)}
    assert secrets["memory-api"]["used_by"] == ["servers.memory.env.API_TOKEN"]
    codex_secret = next(n for n, s in secrets.items() if s["used_by"] == ["servers.memory-codex-cli.env.API_TOKEN"])
    assert codex_secret != "memory-api" and secrets[codex_secret]["stored"]
    # The reused definition's credential is not kept in plain text in the install record.
    routes = (gw.home / "client-routes.json").read_text()
    assert token not in routes and other_token not in routes

    # Each client's entry reaches its own definition.
    assert json.loads(desktop.read_text())["mcpServers"]["memory"]["args"][:2] == ["connect", "memory-claude-desktop"]
    assert 'args = ["connect", "memory-codex-cli"' in codex.read_text()
    assert "- memory\n" in cont.read_text()

    # A call through Claude Desktop's entry writes to Claude Desktop's data file, not to
    # Countersign's.
    entry = json.loads(desktop.read_text())["mcpServers"]["memory"]
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env=client_env(gw, home))
    with anyio.fail_after(60):
        async with Client(params) as client:
            r = await client.call_tool("create_entities", {"entities": [
                {"name": "Ada", "entityType": "person", "observations": ["wrote the first program"]}]})
            assert not r.is_error, text_of(r)
    assert "Ada" in theirs_file.read_text()
    assert not ours_file.exists() or "Ada" not in ours_file.read_text()

    # Uninstall: the files as they were, Countersign's own secret kept, the one install
    # made removed.
    gw.cli("clients", "uninstall")
    assert {p: p.read_bytes() for p in originals} == originals
    assert "[servers.memory-" not in gw.config.read_text() and "[servers.memory]" in gw.config.read_text()
    left = {s["name"] for s in json.loads(gw.cli("secret", "list", "--config", str(gw.config), "--json").stdout)}
    assert "memory-api" in left and codex_secret not in left


def test_a_linked_client_file_is_written_through_its_link(tmp_path, make_gateway, files):
    """Issue 14, item 12: a client's file that a dotfile manager links into place stays a
    link; install and uninstall change the file it points to."""
    from conftest import NODE_BIN

    home = tmp_path / "client-home"
    dotfiles = home / "dotfiles"
    dotfiles.mkdir(parents=True)
    target = dotfiles / "claude_desktop_config.json"
    target.write_text(json.dumps({"mcpServers": {"filesystem": {
        "command": str(NODE_BIN / "mcp-server-filesystem"), "args": [str(files)]}}}, indent=2) + "\n")
    target.chmod(0o644)
    original = target.read_bytes()
    link = home / ".config" / "Claude" / "claude_desktop_config.json"
    link.parent.mkdir(parents=True)
    link.symlink_to("../../dotfiles/claude_desktop_config.json")

    gw = make_gateway({})
    gw.env["HOME"] = str(home)
    gw.env.pop("XDG_CONFIG_HOME", None)
    result = json.loads(gw.cli("clients", "install", "claude-desktop", "--json").stdout)
    assert [m["server"] for m in result[0]["changed"]] == ["filesystem"], result
    assert link.is_symlink() and os.readlink(link) == "../../dotfiles/claude_desktop_config.json"
    entry = json.loads(target.read_text())["mcpServers"]["filesystem"]
    assert entry["args"][:2] == ["connect", "filesystem"], "the linked file itself was routed"
    assert Path(result[0]["backup"]).read_bytes() == original
    assert sorted(p.name for p in dotfiles.iterdir()) == [target.name], "no temporary file left"
    listed = json.loads(gw.cli("clients", "list", "--json").stdout)
    assert [s["route"] for r in listed for s in r["servers"]] == ["routed"]

    gw.cli("clients", "uninstall")
    assert link.is_symlink() and os.readlink(link) == "../../dotfiles/claude_desktop_config.json"
    assert target.read_bytes() == original


def test_uninstall_gives_the_client_file_its_mode_back(tmp_path, make_gateway):
    """Issue 14, item 13: install makes a file holding a client token owner-only; uninstall
    gives it the mode it had."""
    from conftest import FIXTURES

    home = tmp_path / "client-home"
    cursor_file = home / ".cursor" / "mcp.json"
    cursor_file.parent.mkdir(parents=True)
    cursor_file.write_text('{\n  "mcpServers": {\n    "time": { "command": "%s" }\n  }\n}\n'
                           % (FIXTURES / ".venv" / "bin" / "mcp-server-time"))
    cursor_file.chmod(0o644)
    original = cursor_file.read_bytes()

    gw = make_gateway({})
    gw.env["HOME"] = str(home)
    gw.env.pop("XDG_CONFIG_HOME", None)
    gw.cli("clients", "install", "cursor")
    assert cursor_file.stat().st_mode & 0o777 == 0o600
    gw.cli("clients", "uninstall", "cursor")
    assert cursor_file.read_bytes() == original
    assert cursor_file.stat().st_mode & 0o777 == 0o644, "the mode it had before install"


def client_entries(home: Path) -> dict:
    """The `filesystem` entry of each stdio client's file, read as the client reads it."""
    def yaml(path: Path):
        out = subprocess.run([str(NODE_BIN / "yaml"), "--json"], input=path.read_text(), capture_output=True,
                             text=True, check=True).stdout
        return json.loads(out)[0]

    config = home / ".config"
    continue_servers = yaml(home / ".continue" / "config.yaml")["mcpServers"]
    return {
        "claude-desktop": json.loads((config / "Claude" / "claude_desktop_config.json").read_text())["mcpServers"],
        "zed": json.loads((config / "zed" / "settings.json").read_text().split("\n", 1)[1])["context_servers"],
        "continue": {s["name"]: s for s in continue_servers},
        "codex-cli": tomllib.loads((home / ".codex" / "config.toml").read_text())["mcp_servers"],
        "goose": yaml(config / "goose" / "config.yaml")["extensions"],
    }


@pytest.mark.anyio
async def test_a_stdio_client_entry_works_with_a_trimmed_environment_and_another_data_folder(
        tmp_path, make_gateway, files):
    """Issue 14, item 14: the entry install writes for each stdio client reaches the gateway
    of a data folder that is not the default, when the client starts it exactly as its file
    says with the environment the MCP SDK's stdio client passes by default (no
    COUNTERSIGN_HOME, no session bus: the shim's token is in the keychain on that bus)."""
    import anyio
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import get_default_environment

    from conftest import text_of

    trimmed = get_default_environment()
    assert set(trimmed) <= {"HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER"}, trimmed
    assert "DBUS_SESSION_BUS_ADDRESS" in os.environ, "run inside scripts/keyring-session.sh"

    home = tmp_path / "client-home"
    command, args = str(NODE_BIN / "mcp-server-filesystem"), [str(files)]
    config = home / ".config"
    for f in (config / "Claude" / "claude_desktop_config.json", config / "zed" / "settings.json",
              home / ".continue" / "config.yaml", home / ".codex" / "config.toml", config / "goose" / "config.yaml"):
        f.parent.mkdir(parents=True)
    (config / "Claude" / "claude_desktop_config.json").write_text(
        json.dumps({"mcpServers": {"filesystem": {"command": command, "args": args}}}, indent=2) + "\n")
    (config / "zed" / "settings.json").write_text(
        "// Zed settings\n" + json.dumps({"context_servers": {"filesystem": {"command": command, "args": args}}},
                                         indent=2) + "\n")
    (home / ".continue" / "config.yaml").write_text(
        f"name: Assistant\nmcpServers:\n  - name: filesystem\n    command: {command}\n    args:\n      - {files}\n")
    (home / ".codex" / "config.toml").write_text(f'[mcp_servers.filesystem]\ncommand = "{command}"\nargs = ["{files}"]\n')
    (config / "goose" / "config.yaml").write_text(
        f"extensions:\n  filesystem:\n    type: stdio\n    cmd: {command}\n    args:\n    - {files}\n"
        "    enabled: true\n    name: filesystem\n")

    gw = make_gateway({})
    assert gw.home != Path.home() / ".local" / "share" / "countersign"
    gw.env["HOME"] = str(home)
    gw.env.pop("XDG_CONFIG_HOME", None)
    result = json.loads(gw.cli("clients", "install", "--json").stdout)
    assert {r["client"]: [m["via"] for m in r["changed"]] for r in result} == {
        c: ["shim"] for c in ("claude-desktop", "zed", "continue", "codex-cli", "goose")}

    for client, entries in client_entries(home).items():
        entry = entries["filesystem"]
        program = entry.get("command") or entry.get("cmd")
        assert Path(program).is_absolute() and Path(program).name == "countersign", (client, entry)
        assert entry["args"] == ["connect", "filesystem", "--home", str(gw.home)], (client, entry)
        env = entry.get("env") or entry.get("envs")
        assert env is None, f"{client}: the entry needs no environment: {entry}"
        params = StdioServerParameters(command=program, args=entry["args"])
        with anyio.fail_after(60):
            async with Client(params) as session:
                assert "read_text_file" in {t.name for t in (await session.list_tools()).tools}, client
                read = await session.call_tool("read_text_file", {"path": str(files / "hello.txt")})
                assert not read.is_error and "hello from countersign" in text_of(read), (client, text_of(read))
    calls = gw.wait_audit(lambda r: r["kind"] == "call" and r["tool"] == "read_text_file", "the shims' calls")
    assert len(calls) == 5 and {r["client"] for r in calls} == {"stdio-shim"}


@pytest.mark.anyio
async def test_after_install_every_command_reads_the_config_install_wrote(tmp_path, make_gateway, files,
                                                                          auth_server, browser):
    """Issue 14, item 15: the gateway runs with a config outside the data folder; after
    `clients install` moved a credential and a remote server into it, `secret list` and
    the printed `auth login` hint (run exactly as printed) work on that same config."""
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from conftest import text_of, wait_for

    auth = auth_server()
    gw = make_gateway({}, policy={"allow": ["mcp__remote-docs"]})
    assert gw.config.parent != gw.home and not (gw.home / "config.toml").exists()
    home = tmp_path / "client-home"
    cursor_file = home / ".cursor" / "mcp.json"
    cursor_file.parent.mkdir(parents=True)
    cursor_file.write_text(json.dumps({"mcpServers": {
        "filesystem": {"command": str(NODE_BIN / "mcp-server-filesystem"), "args": [str(files)],
                       "env": {"FS_READ_TOKEN": "s3cret-moved-by-install-4d2e"}},
        "remote-docs": {"url": auth.url},
    }}, indent=2) + "\n")
    gw.env["HOME"] = str(home)
    gw.env.pop("XDG_CONFIG_HOME", None)
    out = gw.cli("clients", "install", "cursor").stdout
    assert f"Countersign config: {gw.config}" in out, out

    # `secret list`, no --config: the moved credential is used by the moved server.
    rows = {r["name"]: r for r in json.loads(gw.cli("secret", "list", "--json").stdout)}
    assert rows["filesystem-fs_read_token"]["stored"]
    assert rows["filesystem-fs_read_token"]["used_by"] == ["servers.filesystem.env.FS_READ_TOKEN"]

    # The printed hint, run as printed, signs in to the remote server install moved.
    hint = re.search(r"run `(countersign auth login [^`]+)`", out)
    assert hint, out
    argv = hint.group(1).split()
    assert argv == ["countersign", "auth", "login", "remote-docs"]
    proc = subprocess.Popen([str(BIN), *argv[1:]], env={**gw.env, **browser.env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        opened = wait_for(lambda: proc.poll() is not None or (len(browser.opened()) == 2 and browser.opened()),
                          what="the browser to be opened")
        assert opened is not True, proc.communicate()
        browser.visit(opened[1])
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0 and "Signed in to `remote-docs`" in stdout, stdout + stderr
        status = {r["server"]: r["credentials"] for r in json.loads(gw.cli("auth", "status", "--json").stdout)}
        assert status["remote-docs"]["state"] == "signed_in"

        # And the client, through its routed entry, reaches the remote server signed in.
        entry = json.loads(cursor_file.read_text())["mcpServers"]["remote-docs"]
        with anyio.fail_after(60):
            async with httpx2.AsyncClient(headers=entry["headers"], timeout=60) as http:
                async with Client(streamable_http_client(entry["url"], http_client=http)) as client:
                    r = await client.call_tool("whoami", {})
                    assert not r.is_error and text_of(r) == "signed in", text_of(r)
    finally:
        # Sign-ins are filed in the keychain by server name: leave none for other tests.
        if proc.poll() is None:
            proc.kill()
        gw.cli("auth", "logout", "remote-docs", check=False)
        gw.cli("secret", "rm", "filesystem-fs_read_token", check=False)
