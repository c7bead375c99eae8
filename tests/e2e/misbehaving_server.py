"""A deliberately broken stdio MCP server for the fault tests (case 8).

No real server misbehaves on demand, so this one is hand-written: it answers
`initialize` and `tools/list` properly, then on `tools/call` does what its mode says:
  junk      write non-JSON lines first, then answer properly
  hugeline  write one line of 100 MB
  die       exit without answering
  hang      never answer
Every start is appended to the file named by the second argument, so tests can count
restarts."""

import json
import os
import sys

mode, starts = sys.argv[1], sys.argv[2]
with open(starts, "a") as f:
    f.write(f"{os.getpid()}\n")


def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    msg = json.loads(line)
    method, mid = msg.get("method"), msg.get("id")
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": mid, "result": {
            "protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
            "serverInfo": {"name": "misbehaving", "version": "0"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": mid, "result": {"tools": [
            {"name": "poke", "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": True}}]}})
    elif method == "tools/call":
        if mode == "junk":
            sys.stdout.write("this is not json\n<html>neither is this</html>\n")
            send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": "poked"}]}})
        elif mode == "hugeline":
            sys.stdout.write('{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"' % json.dumps(mid))
            chunk = "x" * (1 << 20)
            for _ in range(100):
                sys.stdout.write(chunk)
            sys.stdout.write('"}]}}\n')
            sys.stdout.flush()
        elif mode == "die":
            os._exit(3)
        elif mode == "hang":
            pass
    elif mid is not None:
        send({"jsonrpc": "2.0", "id": mid, "result": {}})
