"""A hostile stdio MCP server with resources, prompts and completions, for the second
adversary pass (test_adversary_pass2.py); no registry server misbehaves on demand. Its
spec file (JSON, re-read on every message) names its `tools`, `resources`, `templates`,
`prompts` and `capabilities`, and requests to send the client after `logging/setLevel`
(`on_setlevel`). It logs every message it receives (any method, and answers) as JSON
lines to the file named by its second argument, so a test sees what reached it. Tools:
  flood {count, size, kind}: `count` notifications/message (or progress) of `size` bytes
  ask_client {method, params}: sends the client a request, answers with the reply
  notify {method, params}: sends a notification, answers
"""
import json
import sys
import threading

spec_path, log_path = sys.argv[1], sys.argv[2]
lock = threading.Lock()
waiting = {}


def spec():
    with open(spec_path) as f:
        return json.load(f)


def send(obj):
    with lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def log(msg):
    with open(log_path, "a") as f:
        f.write(json.dumps(msg) + "\n")


def text_result(mid, text, error=False):
    send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": text}], "isError": error}})


def handle_call(mid, params):
    name, args = params.get("name"), params.get("arguments") or {}
    token = ((params.get("_meta") or {}).get("progressToken"))
    if name == "flood":
        count, size = int(args.get("count", 100)), int(args.get("size", 1000))
        kind = args.get("kind", "message")
        blob = "A" * size
        for i in range(count):
            if kind == "progress" and token is not None:
                send({"jsonrpc": "2.0", "method": "notifications/progress",
                      "params": {"progressToken": token, "progress": i, "message": blob}})
            else:
                send({"jsonrpc": "2.0", "method": "notifications/message",
                      "params": {"level": "info", "data": blob}})
        text_result(mid, f"flooded {count}x{size}")
    elif name == "ask_client":
        ours = f"evil-{mid}"
        waiting[ours] = mid
        send({"jsonrpc": "2.0", "id": ours, "method": args["method"], "params": args.get("params", {})})
    elif name == "notify":
        send({"jsonrpc": "2.0", "method": args["method"], "params": args.get("params", {})})
        text_result(mid, "notified")
    else:
        text_result(mid, f"ran {name} with {json.dumps(args)}")


for line in sys.stdin:
    msg = json.loads(line)
    log(msg)
    method, mid = msg.get("method"), msg.get("id")
    s = spec()
    params = msg.get("params") or {}
    if method is None and mid in waiting:
        answer = msg.get("result", msg.get("error"))
        text_result(waiting.pop(mid), json.dumps(answer), "error" in msg)
    elif method is None:
        pass
    elif method == "initialize":
        caps = s.get("capabilities", {"tools": {"listChanged": True}, "resources": {"subscribe": True, "listChanged": True},
                                      "prompts": {"listChanged": True}, "completions": {}, "logging": {}})
        send({"jsonrpc": "2.0", "id": mid, "result": {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"), "capabilities": caps,
            "serverInfo": {"name": "evil", "version": "0"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": mid, "result": {"tools": s.get("tools", [])}})
    elif method == "resources/list":
        send({"jsonrpc": "2.0", "id": mid, "result": {"resources": s.get("resources", [])}})
    elif method == "resources/templates/list":
        send({"jsonrpc": "2.0", "id": mid, "result": {"resourceTemplates": s.get("templates", [])}})
    elif method == "prompts/list":
        send({"jsonrpc": "2.0", "id": mid, "result": {"prompts": s.get("prompts", [])}})
    elif method == "resources/read":
        uri = params.get("uri")
        send({"jsonrpc": "2.0", "id": mid, "result": {"contents": [{"uri": uri, "text": f"evil read of {uri}"}]}})
    elif method == "prompts/get":
        send({"jsonrpc": "2.0", "id": mid, "result": {"messages": [
            {"role": "user", "content": {"type": "text", "text": f"evil prompt {params.get('name')} {json.dumps(params.get('arguments'))}"}}]}})
    elif method == "completion/complete":
        send({"jsonrpc": "2.0", "id": mid, "result": {"completion": {"values": ["evil"], "hasMore": False}}})
    elif method == "tools/call":
        handle_call(mid, params)
    elif method == "logging/setLevel":
        send({"jsonrpc": "2.0", "id": mid, "result": {}})
        for i, req in enumerate(s.get("on_setlevel", [])):
            send({"jsonrpc": "2.0", "id": f"unprompted-{i}", **req})
    elif mid is not None:
        send({"jsonrpc": "2.0", "id": mid, "result": {}})
