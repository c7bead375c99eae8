"""`make bench-prompts`: how often a person is asked, replaying recorded agent sessions.

Each session in `sessions/*.jsonl` is replayed, call after call, through a real
`countersign serve` (the default policy, the headless approver) in front of the real
fixture servers, by the real Python MCP client. A scripted person answers every prompt
as the notification offers it:

- `widest` (the benchmark's person): "Allow similar" when the prompt offers it, else the
  longest grant for the tool the policy offers (1 hour);
- `tool-1h`: always "Allow for 1 hour" for the tool (the widest answer before "Allow
  similar" existed).

(A person who answers "Allow once" is asked for every write: 10 prompts per 10 writes by
construction, and at replay speed the policy's prompts-per-minute limit refuses most of
them unasked, so that person is not replayed.)

It reports prompts per 10 writes for each (measured side by side in one run), and checks
a property on the journal: every write that ran without its own prompt carried a grant,
and that grant, as the person accepted it, covers the call (its client, server, tool or
the server's read/write tools, its folder outside `.git` and the like, its exact values),
checked here independently of the gateway's own matching. Any other pass is an
"unreviewed call outside scope".

    scripts/keyring-session.sh fixtures/.venv/bin/python tests/bench_prompts/bench.py \
        [--session editing] [--person widest] [--json target/bench-prompts.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import httpx2  # noqa: E402
from conftest import NODE_BIN, Gateway, write_config  # noqa: E402
from mcp import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

VENV_BIN = ROOT / "fixtures" / ".venv" / "bin"
SESSIONS = HERE / "sessions"
PERSONS = ("widest", "tool-1h")
# Below a folder, what a similar grant never covers (the default `[grants.similar]
# exclude`, as globs below any folder): a segment named so, or a file named so.
EXCLUDED_DIRS = {".git", ".hg", ".svn", ".vscode", ".idea", ".devcontainer", ".ssh", ".aws"}
EXCLUDED_FILES = {".git", ".env", ".envrc", ".npmrc", ".pypirc", ".bashrc", ".zshrc", ".profile", ".gitlab-ci.yml"}
FILE_KEYS = ("path", "paths", "source", "destination", "file", "files", "file_path", "filepath", "filename",
             "dir", "directory", "folder", "repo_path", "repository")


@dataclass
class Report:
    session: str
    person: str
    calls: int = 0
    writes: int = 0
    prompts: int = 0
    errors: list[str] = field(default_factory=list)
    outside_scope: list[str] = field(default_factory=list)

    @property
    def per_10_writes(self) -> float:
        return 10 * self.prompts / self.writes if self.writes else 0.0


def load(name: str, project: Path) -> list[dict]:
    calls = []
    for line in (SESSIONS / f"{name}.jsonl").read_text().splitlines():
        if line.strip():
            calls.append(json.loads(line.replace("{project}", str(project))))
    return calls


def servers(project: Path, memory_file: Path) -> dict:
    return {
        "fs": {"command": NODE_BIN / "mcp-server-filesystem", "args": [str(project)], "trusted": True},
        "git": {"command": VENV_BIN / "mcp-server-git", "args": ["--repository", str(project)], "trusted": True},
        "memory": {"command": NODE_BIN / "mcp-server-memory", "env": {"MEMORY_FILE_PATH": str(memory_file)},
                   "trusted": True},
        "time": {"command": VENV_BIN / "mcp-server-time", "args": ["--local-timezone", "UTC"], "trusted": True},
    }


def fresh_project(tmp: Path) -> Path:
    project = tmp / "project"
    project.mkdir()
    for argv in (["init", "-q", "-b", "main"], ["config", "user.name", "Agent"],
                 ["config", "user.email", "agent@example.com"], ["config", "commit.gpgsign", "false"]):
        subprocess.run(["git", "-C", str(project), *argv], check=True)
    return project


def answer(gw: Gateway, prompt: dict, person: str) -> None:
    """The scripted person's answer to one prompt."""
    if person == "widest" and prompt.get("similar"):
        gw.cli("approve", prompt["id"], "--similar")
    else:
        gw.cli("approve", prompt["id"], "--for", "1h")


async def replay(gw: Gateway, calls: list[dict], report: Report, person: str) -> None:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {gw.token}"},
                              timeout=httpx2.Timeout(60.0, read=120.0))
    answered: set[str] = set()
    async with http, AsyncExitStack() as stack:
        clients = {}
        for name in sorted({c["server"] for c in calls}):
            clients[name] = await stack.enter_async_context(Client(streamable_http_client(gw.url(name), http_client=http)))
        for n, c in enumerate(calls, 1):
            task = asyncio.create_task(clients[c["server"]].call_tool(c["tool"], c["arguments"]))
            # The person looks at what waits until the call comes back.
            while not task.done():
                for prompt in (await asyncio.to_thread(gw.status))["approvals"]:
                    if prompt["id"] not in answered:
                        answered.add(prompt["id"])
                        report.prompts += 1
                        await asyncio.to_thread(answer, gw, prompt, person)
                await asyncio.wait({task}, timeout=0.05)
            result = task.result()
            report.calls += 1
            if result.is_error:
                text = "".join(getattr(x, "text", "") for x in result.content)
                report.errors.append(f"call {n} {c['server']}.{c['tool']}: {text[:300]}")


def path_values(arguments: dict, base: Path) -> list[str] | None:
    """Every file argument as the server reads it (relative ones against `base`)."""
    out = []
    for key in FILE_KEYS:
        if key not in arguments:
            continue
        values = arguments[key] if isinstance(arguments[key], list) else [arguments[key]]
        for v in values:
            if not isinstance(v, str):
                return None
            out.append(os.path.realpath(v if os.path.isabs(v) else base / v))
    return out


def covered(grant: dict, call: dict, cls: str, project: Path) -> str | None:
    """Why `grant` (as listed when it was given) does not cover `call`; None if it does."""
    if grant["server"] != call["server"]:
        return "another server"
    if cls not in ("read", "write"):
        return f"a {cls} tool"
    similar = grant.get("similar")
    if not similar:
        return None if grant["tool"] == call["tool"] else "another tool"
    if similar["tools"] == "tool" and call["tool"] != similar["tool"]:
        return "another tool"
    args = call["arguments"]
    for key, value in (similar.get("exact") or {}).items():
        got = args.get(key)
        if got is None or os.path.normpath(str(got)) != value:
            return f"`{key}` is {got!r}, not {value!r}"
    folder = similar.get("folder")
    if folder:
        paths = path_values(args, project)
        if not paths:
            return "no file argument"
        for p in paths:
            rest = os.path.relpath(p, folder)
            parts = rest.split(os.sep)
            if rest == "." or parts[0] == "..":
                return f"{p} is outside {folder}"
            if EXCLUDED_DIRS & set(parts[:-1]) or parts[-1] in EXCLUDED_FILES or ".github/workflows" in rest:
                return f"{p} is in an excluded place"
    return None


def check_journal(gw: Gateway, calls: list[dict], report: Report, grants: dict, project: Path) -> None:
    records = [r for r in gw.audit() if r.get("kind") == "call" and r.get("tool")]
    if len(records) != len(calls):
        report.outside_scope.append(f"{len(records)} call records for {len(calls)} calls")
        return
    for n, (r, c) in enumerate(zip(records, calls), 1):
        if (r["server"], r["tool"]) != (c["server"], c["tool"]):
            report.outside_scope.append(f"record {n} is {r['server']}.{r['tool']}, call is {c['server']}.{c['tool']}")
            continue
        cls = r.get("class")
        if cls == "write":
            report.writes += 1
        if r.get("decision") != "allow" or cls == "read":
            continue
        if r.get("approval") == "approved":
            continue  # the person saw this call
        gid = r.get("grant_id")
        if gid is None:
            report.outside_scope.append(f"call {n} {c['tool']} ran unasked with no grant")
        elif gid not in grants:
            report.outside_scope.append(f"call {n} {c['tool']} ran on grant {gid} nobody was shown")
        elif (why := covered(grants[gid], c, cls, project)) is not None:
            report.outside_scope.append(f"call {n} {c['tool']} ran on grant {gid} but {why}")


def run(session: str, person: str, tmp: Path) -> Report:
    tmp.mkdir(parents=True, exist_ok=True)
    project = fresh_project(tmp)
    config = write_config(tmp / "countersign.toml", servers(project, tmp / "memory.jsonl"),
                          gateway={"approval_timeout_secs": 60})
    gw = Gateway(tmp, config).start()
    report = Report(session, person)
    grants: dict[str, dict] = {}
    try:
        calls = load(session, project)
        asyncio.run(replay(gw, calls, report, person))
        # Grants as they were given (1 h and the similar ones all outlive the replay).
        for g in json.loads(gw.cli("grants", "--json").stdout):
            grants[g["id"]] = g
        check_journal(gw, calls, report, grants, project)
    finally:
        gw.stop()
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--session", action="append", help="editing, memory, mixed (default: all)")
    ap.add_argument("--person", action="append", choices=PERSONS, help="default: all")
    ap.add_argument("--json", type=Path, help="write the reports here")
    a = ap.parse_args()
    sessions = a.session or sorted(p.stem for p in SESSIONS.glob("*.jsonl"))
    persons = a.person or list(PERSONS)
    reports = []
    with tempfile.TemporaryDirectory(prefix="bench-prompts-") as tmp:
        for s in sessions:
            for p in persons:
                reports.append(run(s, p, Path(tmp) / f"{s}-{p}"))
                r = reports[-1]
                print(f"{s:8} {p:8} calls {r.calls:3}  writes {r.writes:3}  prompts {r.prompts:3}  "
                      f"per 10 writes {r.per_10_writes:4.2f}  outside scope {len(r.outside_scope)}  "
                      f"errors {len(r.errors)}", flush=True)
                for line in r.outside_scope + r.errors:
                    print(f"    {line}")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps([{**asdict(r), "per_10_writes": r.per_10_writes} for r in reports], indent=2))
    bad = [r for r in reports if r.outside_scope or r.errors]
    editing = [r for r in reports if r.session == "editing" and r.person == "widest"]
    if editing and editing[0].per_10_writes > 1.0:
        print(f"editing/widest: {editing[0].per_10_writes:.2f} prompts per 10 writes, above the target of 1")
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
