"""Issue 19, "ask less": a session plan. The client (the Python MCP SDK, over the HTTP
face) declares the calls of its task with `countersign/plan`; the person sees one prompt
(`countersign status` lists what it allows and what will still ask) and approves it once;
the calls inside the plan then run unasked for the session, with the real filesystem and
memory servers, and everything outside it (another folder, the project's `.git`, a
destructive tool, another session) still asks or is denied: checked on disk, not only in
the messages.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import anyio
import pytest
from mcp import types
from mcp.shared.exceptions import MCPError
from pydantic import TypeAdapter

from conftest import NODE_BIN, connect, memory_server, text_of, wait_for

pytestmark = pytest.mark.anyio

RESULT = TypeAdapter(dict[str, Any])


async def declare(client, title: str, items: list[dict]) -> dict:
    """Sends `countersign/plan` on the client's session; the gateway's answer."""
    request = types.Request[dict[str, Any], str](method="countersign/plan", params={"title": title, "items": items})
    return await client.session.send_request(request, RESULT, request_read_timeout_seconds=120)


def servers(tmp_path):
    project, outside = tmp_path / "work" / "site", tmp_path / "work" / "elsewhere"
    (project / "src").mkdir(parents=True)
    outside.mkdir()
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    fs = {"command": NODE_BIN / "mcp-server-filesystem", "args": [str(project), str(outside)], "trusted": True}
    return project, outside, {"fs": fs, "memory": memory_server(tmp_path / "memory.json")}


async def asked_then_denied(gw, client, tool: str, args: dict) -> dict:
    """Calls `tool`; it must ask; the person denies. Returns the prompt."""
    result = {}
    async with anyio.create_task_group() as tg:
        async def call():
            result["r"] = await client.call_tool(tool, args)

        tg.start_soon(call)
        prompt = await anyio.to_thread.run_sync(lambda: wait_for(lambda: gw.status()["approvals"], what="a prompt"))
        gw.cli("deny", prompt[0]["id"])
    assert result["r"].is_error
    return prompt[0]


async def test_a_plan_is_one_prompt_and_covers_only_its_items_for_the_session(tmp_path, make_gateway):
    project, outside, both = servers(tmp_path)
    gw = make_gateway(both, policy={"grants": {"lockout_after": 0}}, gateway={"approval_timeout_secs": 60})
    items = [
        {"server": "fs", "tool": "write_file", "under": str(project)},
        {"server": "fs", "tool": "edit_file", "under": str(project)},
        {"server": "memory", "tool": "create_entities"},
        {"server": "fs", "tool": "move_file", "under": str(project)},
        {"server": "fs", "tool": "write_file"},
        {"server": "fs", "tool": "write_file", "under": str(tmp_path.anchor)},
        {"server": "fs", "tool": "no_such_tool", "under": str(project)},
        {"server": "fs", "tool": "read_text_file", "under": str(project)},
    ]
    async with connect(gw, "http", None) as client:
        async with anyio.create_task_group() as tg:
            answer = {}

            async def plan():
                answer["r"] = await declare(client, "Build the site", items)

            tg.start_soon(plan)
            prompts = await anyio.to_thread.run_sync(lambda: wait_for(lambda: gw.status()["approvals"],
                                                                      what="the plan's prompt"))
            assert len(prompts) == 1, "one prompt for the whole plan"
            shown = gw.cli("status").stdout
            assert "a plan for this session, as the client names it: “Build the site”" in shown, shown
            assert f"allows `write_file` calls via fs under {project}/" in shown, shown
            assert "not granted: fs.move_file: policy denies it" in shown, shown
            assert "pytest (says it is “mcp”) declares a plan for this session" in shown, shown
            gw.cli("approve", prompts[0]["id"])
        result = answer["r"]
        assert result["approved"] is True, result
        granted = [(g["server"], g["tool"]) for g in result["granted"]]
        assert granted == [("fs", "write_file"), ("fs", "edit_file"), ("memory", "create_entities")], result
        why = {(r["tool"], r.get("why", "")) for r in result["refused"]}
        reasons = " | ".join(w for _, w in why)
        assert any(t == "move_file" and "destructive" in w for t, w in why), reasons
        assert "name the folder its files lie in" in reasons, reasons
        assert "wider than policy allows" in reasons, reasons
        assert "lists no tool `no_such_tool`" in reasons, reasons
        assert "runs without asking already" in reasons, reasons

        # Inside the plan: no prompt, the files are written.
        for path, content in [(project / "index.html", "1"), (project / "src" / "app.js", "2")]:
            r = await client.call_tool("fs__write_file", {"path": str(path), "content": content})
            assert not r.is_error, text_of(r)
            assert path.read_text() == content
        r = await client.call_tool("fs__edit_file", {"path": str(project / "index.html"),
                                                     "edits": [{"oldText": "1", "newText": "3"}]})
        assert not r.is_error and (project / "index.html").read_text() == "3", text_of(r)
        r = await client.call_tool("memory__create_entities",
                                   {"entities": [{"name": "site", "entityType": "project", "observations": []}]})
        assert not r.is_error, text_of(r)
        assert gw.status()["approvals"] == []

        # Outside it: another folder, the project's `.git`, a tool not in the plan.
        await asked_then_denied(gw, client, "fs__write_file", {"path": str(outside / "x.txt"), "content": "x"})
        assert not (outside / "x.txt").exists()
        hook = project / ".git" / "hooks" / "pre-commit"
        await asked_then_denied(gw, client, "fs__write_file", {"path": str(hook), "content": "#!/bin/sh\nexit 1\n"})
        assert not hook.exists()
        await asked_then_denied(gw, client, "fs__create_directory", {"path": str(project / "new")})
        assert not (project / "new").exists()
        moved = await client.call_tool("fs__move_file", {"source": str(project / "index.html"),
                                                         "destination": str(project / "gone.html")})
        assert moved.is_error and (project / "index.html").exists()

    # A new session of the same client: the plan ended with the old one.
    async with connect(gw, "http", None) as client:
        await asked_then_denied(gw, client, "fs__write_file", {"path": str(project / "later.txt"), "content": "x"})
    assert not (project / "later.txt").exists()

    records = gw.audit()
    plan = [r for r in records if r.get("rule") == "session-plan"]
    assert len(plan) == 1 and plan[0]["decision"] == "allow" and "Build the site" in plan[0]["reason"], plan
    ran = [r for r in records if r.get("kind") == "call" and (r.get("grant_id") or "").startswith("p-")]
    assert [r["tool"] for r in ran] == ["write_file", "write_file", "edit_file", "create_entities"], ran
    assert all(r["decision"] == "allow" for r in ran)


async def test_a_denied_plan_grants_nothing(tmp_path, make_gateway):
    project, _, both = servers(tmp_path)
    gw = make_gateway(both, gateway={"approval_timeout_secs": 60})
    async with connect(gw, "http", None) as client:
        async with anyio.create_task_group() as tg:
            answer = {}

            async def plan():
                answer["r"] = await declare(client, "t", [{"server": "fs", "tool": "write_file",
                                                           "under": str(project)}])

            tg.start_soon(plan)
            prompts = await anyio.to_thread.run_sync(lambda: wait_for(lambda: gw.status()["approvals"],
                                                                      what="the plan's prompt"))
            gw.cli("deny", prompts[0]["id"])
        assert answer["r"]["approved"] is False and answer["r"]["granted"] == [], answer["r"]
        await asked_then_denied(gw, client, "fs__write_file", {"path": str(project / "a.txt"), "content": "x"})
    assert not (project / "a.txt").exists()
    assert json.loads(gw.cli("grants", "--json").stdout) == []


async def test_bad_plans_get_a_clear_error_and_policy_can_turn_plans_off(tmp_path, make_gateway):
    project, _, both = servers(tmp_path)
    item = {"server": "fs", "tool": "write_file", "under": str(project)}
    gw = make_gateway(both)
    async with connect(gw, "http", None) as client:
        for title, items, expected in [
            ("", [item], "a plan needs a title"),
            ("t", [], "a plan declares 1 to 16 items, not 0"),
            ("t", [item] * 17, "a plan declares 1 to 16 items, not 17"),
            ("t", [{**item, "extra": 1}], "unknown field `extra`"),
            ("t", [{"server": "fs"}], "missing field `tool`"),
        ]:
            with pytest.raises(MCPError) as e:
                await declare(client, title, items)
            assert expected in str(e.value), str(e.value)
        assert gw.status()["approvals"] == [], "no prompt for a bad plan"
    gw.stop()
    off = make_gateway(both, policy={"grants": {"plans": {"enabled": False}}})
    async with connect(off, "http", None) as client:
        with pytest.raises(MCPError) as e:
            await declare(client, "t", [item])
        assert "policy takes no session plans" in str(e.value), str(e.value)
    refused = [r for r in off.audit() if r.get("rule") == "session-plan"]
    assert refused and refused[0]["decision"] == "deny", refused


async def test_a_plan_through_the_stdio_shim_covers_its_own_connection(tmp_path, make_gateway):
    """Every client behind the shim speaks as one name; a plan lasts its own connection."""
    project, _, both = servers(tmp_path)
    gw = make_gateway(both, gateway={"approval_timeout_secs": 60})
    async with connect(gw, "shim", "fs") as client:
        async with anyio.create_task_group() as tg:
            answer = {}

            async def plan():
                answer["r"] = await declare(client, "t", [{"server": "fs", "tool": "write_file", "under": str(project)},
                                                          {"server": "memory", "tool": "create_entities"}])

            tg.start_soon(plan)
            prompts = await anyio.to_thread.run_sync(lambda: wait_for(lambda: gw.status()["approvals"],
                                                                      what="the plan's prompt"))
            gw.cli("approve", prompts[0]["id"])
        result = answer["r"]
        assert [g["tool"] for g in result["granted"]] == ["write_file"], result
        assert result["refused"][0]["why"] == "no server `memory` for this client", result
        r = await client.call_tool("write_file", {"path": str(project / "a.txt"), "content": "1"})
        assert not r.is_error and (project / "a.txt").read_text() == "1", text_of(r)
    async with connect(gw, "shim", "fs") as other:
        await asked_then_denied(gw, other, "write_file", {"path": str(project / "b.txt"), "content": "2"})
    assert not (project / "b.txt").exists()
