"""A stdio MCP server that says what it was started with, for the keychain and project
tests (test_stored_and_started.py). Tool `environment {names}` answers with the values of
those environment variables as a JSON object (missing ones as null), so a test sees which
keychain item a server really started with. With `--marker PATH` it writes PATH the moment
it starts (before reading anything), so a test sees whether it was started at all."""
import json
import os
import sys

args = sys.argv[1:]
if "--marker" in args:
    with open(args[args.index("--marker") + 1], "a") as f:
        f.write(f"started {os.getpid()}\n")

TOOL = {
    "name": "environment",
    "description": "The values of the named environment variables.",
    "inputSchema": {"type": "object", "properties": {"names": {"type": "array", "items": {"type": "string"}}},
                    "required": ["names"]},
    "annotations": {"readOnlyHint": True},
}


def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    msg = json.loads(line)
    method, mid, params = msg.get("method"), msg.get("id"), msg.get("params") or {}
    if method is None or mid is None:
        continue
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": mid, "result": {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"), "capabilities": {"tools": {}},
            "serverInfo": {"name": "env-server", "version": "0"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": mid, "result": {"tools": [TOOL]}})
    elif method == "tools/call":
        names = (params.get("arguments") or {}).get("names") or []
        values = {n: os.environ.get(n) for n in names}
        send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": json.dumps(values)}]}})
    else:
        send({"jsonrpc": "2.0", "id": mid, "result": {}})
