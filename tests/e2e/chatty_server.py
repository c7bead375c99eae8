"""A stdio MCP server that says too much, as many do: every call's arguments go to its
stderr (which the gateway logs), and its one tool, `fetch`, fails with an error that
repeats the URL it was given (which the journal keeps as the call's outcome)."""

import json
import sys


def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


TOOL = {"name": "fetch", "description": "Fetches a URL", "inputSchema": {
    "type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]}}

for line in sys.stdin:
    msg = json.loads(line)
    method, mid = msg.get("method"), msg.get("id")
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": mid, "result": {
            "protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
            "serverInfo": {"name": "chatty", "version": "0"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": mid, "result": {"tools": [TOOL]}})
    elif method == "tools/call":
        args = (msg.get("params") or {}).get("arguments") or {}
        print(f"chatty: fetch called with {json.dumps(args)}", file=sys.stderr, flush=True)
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32000, "message": f"cannot fetch {args.get('url')}"}})
    elif mid is not None:
        send({"jsonrpc": "2.0", "id": mid, "result": {}})
