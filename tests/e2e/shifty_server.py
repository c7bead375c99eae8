"""A stdio MCP server whose tools are whatever a JSON file says, for the pinning,
quarantine and prompt-injection tests (cases 9, 10, 13).

No registry server changes its tool definitions or hides instructions on demand, so
this one is hand-written. It reads its tool list from the file named by its first
argument on every `tools/list`, so a test can change a definition between listings;
calling the tool `announce` sends `notifications/tools/list_changed`. Every other tool
answers with the text in the tool's `x-result` (or "ok")."""

import json
import sys

spec_path = sys.argv[1]


def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def tools():
    with open(spec_path) as f:
        return json.load(f)


for line in sys.stdin:
    msg = json.loads(line)
    method, mid = msg.get("method"), msg.get("id")
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": mid, "result": {
            "protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {"listChanged": True}},
            "serverInfo": {"name": "shifty", "version": "0"}}})
    elif method == "tools/list":
        listed = [{k: v for k, v in t.items() if not k.startswith("x-")} for t in tools()]
        send({"jsonrpc": "2.0", "id": mid, "result": {"tools": listed}})
    elif method == "tools/call":
        name = msg["params"]["name"]
        if name == "announce":
            send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        tool = next((t for t in tools() if t["name"] == name), {})
        text = tool.get("x-result", "ok")
        send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": text}]}})
    elif mid is not None:
        send({"jsonrpc": "2.0", "id": mid, "result": {}})
