"""`countersign clients list` against a temporary home holding real clients' files:
every client found, each server marked routed or shadow, nothing written."""

import json
import os
import shutil
import subprocess
from pathlib import Path

from conftest import BIN, ROOT

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
