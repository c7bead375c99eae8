"""A reverse proxy that misbehaves on request, in front of the hub, for the sync tests:
`POST /__fault__` with {"mode": "500" | "drop-after-forward", "count": N} makes the next N
ingestion requests (`POST /v1/ingest`; a policy poll passing by is never the one hit) answer 500, or reach the hub and then lose the answer (the connection closes
before a byte comes back, as when a network drops after the hub has written). Anything
else is forwarded unchanged. Test plumbing, not part of the product.

Usage: fault_proxy.py LISTEN_PORT HUB_PORT"""

import http.client
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LISTEN, TARGET = int(sys.argv[1]), int(sys.argv[2])
STATE = {"mode": None, "count": 0, "served": 0}
LOCK = threading.Lock()
HOP = {"connection", "content-length", "transfer-encoding", "keep-alive", "host"}


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_any(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/__fault__":
            with LOCK:
                STATE.update(json.loads(body))
            return self.reply(200, b"{}")
        if self.path == "/__stats__":
            with LOCK:
                return self.reply(200, json.dumps(STATE).encode())
        with LOCK:
            ingest = self.command == "POST" and self.path.startswith("/v1/ingest")
            mode = STATE["mode"] if STATE["count"] > 0 and ingest else None
            if mode:
                STATE["count"] -= 1
            STATE["served"] += 1
        if mode == "500":
            return self.reply(500, b'{"error":"injected failure"}')
        conn = http.client.HTTPConnection("127.0.0.1", TARGET, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        conn.request(self.command, self.path, body=body or None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        if mode == "drop-after-forward":
            # The hub has written; the answer is lost on the way back.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def reply(self, status: int, data: bytes):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = handle_any


ThreadingHTTPServer(("127.0.0.1", LISTEN), Proxy).serve_forever()
