"""Issue 15, item 9: hostile text shown to a person in the terminal. Names a client
declares, names in AI clients' files (a cloned repository's `.mcp.json`) and arguments
are printed by `clients list`, `clients install` and `status` with control, bidi and
zero-width characters as visible escapes: no name draws a line of its own ("Countersign:
verified safe read-only call"), reorders what follows it or hides a character. The
desktop notification and the app's window are tested in tests/desktop/test_shown.py."""

import json
import os
import subprocess

from conftest import BIN, Rpc, fs_server, wait_for
from test_adversary import call, in_thread

FAKE_LINE = "Countersign: verified safe read-only call"
HOSTILE_NAME = "x\n" + FAKE_LINE
HIDDEN = "\n\r\u202e\u200b\u2028\u2066\x1b\x85"


def assert_nothing_hidden(text: str):
    """Only the printer's own line breaks: no character of HIDDEN, no line of its own."""
    for line in text.splitlines():
        assert not line.startswith(FAKE_LINE), f"a name drew its own line: {text!r}"
    assert not any(c in text.replace("\n", "") for c in HIDDEN), f"a hidden character was printed raw: {text!r}"


def test_issue15_09_hostile_names_in_clients_list_and_install_are_shown_escaped(tmp_path):
    home = tmp_path / "home"
    (home / ".config" / "Claude").mkdir(parents=True)
    config = home / ".config" / "Claude" / "claude_desktop_config.json"
    config.write_text(json.dumps({"mcpServers": {
        HOSTILE_NAME: {"command": "npx", "args": ["-y", "pkg\u202etxt.exe", "r\u200bm", "\x1b[2Kfake"]},
    }}))
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_CONFIG_HOME", "APPDATA", "COUNTERSIGN_CONFIG")}
    env.update(HOME=str(home), COUNTERSIGN_HOME=str(tmp_path / "cs"))

    def run(*args: str) -> str:
        return subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, check=True,
                              timeout=60).stdout

    listed = run("clients", "list")
    assert_nothing_hidden(listed)
    assert f"SHADOW  x\\n{FAKE_LINE} npx -y pkg\\u{{202e}}txt.exe r\\u{{200b}}m \\u{{1b}}[2Kfake" in listed, listed
    # Machine readers get the data as it is.
    assert json.loads(run("clients", "list", "--json"))[0]["servers"][0]["name"] == HOSTILE_NAME

    installed = run("clients", "install", "claude-desktop")
    assert_nothing_hidden(installed)
    assert f"x\\n{FAKE_LINE} routed through Countersign" in installed, installed


def test_issue15_09_status_shows_a_claimed_name_and_arguments_with_escapes(make_gateway, files):
    gw = make_gateway({"fs": fs_server(files)}, gateway={"approval_timeout_secs": 30})
    rpc = Rpc(gw, "/mcp/fs", client_name=HOSTILE_NAME + "\u202e")
    target = files / "w.txt"
    content = "<s>rm</s> <small>-rf /</small> a\u202eb r\u200bm"
    waiter, out = in_thread(call, rpc, "write_file", {"path": str(target), "content": content})
    prompt = wait_for(lambda: gw.status()["approvals"], what="the call to ask")[0]
    assert prompt["client_name"] == HOSTILE_NAME + "\u202e", "the JSON status keeps the data as it is"
    status = gw.cli("status").stdout
    assert_nothing_hidden(status)
    assert f"pytest (says it is “x\\n{FAKE_LINE}\\u{{202e}}”) wants fs.write_file" in status, status
    assert "<s>rm</s> <small>-rf /</small> a\\u{202e}b r\\u{200b}m" in status, status
    gw.cli("deny", prompt["id"])
    waiter.join(30)
    assert out["value"][0] and not target.exists()
