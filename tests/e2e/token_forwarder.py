"""Test plumbing for the conformance run: the official suite's client cannot send an
Authorization header, and the gateway (rightly) requires one. This forwarder listens on
its own loopback port, adds the bearer token, maps its own port to the gateway's in the
Host and Origin headers (hostile host names stay hostile), and streams the answer back
unchanged, SSE included. It is not part of the product.

Usage: token_forwarder.py LISTEN_PORT GATEWAY_PORT  (token on stdin)"""

import http.client
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LISTEN, TARGET = int(sys.argv[1]), int(sys.argv[2])
TOKEN = sys.stdin.readline().strip()
HOP = {"connection", "content-length", "transfer-encoding", "keep-alive"}


class Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def relay(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        for key in list(headers):
            if key.lower() in ("host", "origin"):
                headers[key] = headers[key].replace(f":{LISTEN}", f":{TARGET}")
        headers["Authorization"] = f"Bearer {TOKEN}"
        upstream = http.client.HTTPConnection("127.0.0.1", TARGET, timeout=300)
        upstream.request(self.command, self.path, body=body, headers=headers)
        resp = upstream.getresponse()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        if resp.status in (204, 304):
            self.end_headers()
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while chunk := resp.read1(65536):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        upstream.close()

    do_GET = do_POST = do_DELETE = do_OPTIONS = relay


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", LISTEN), Forward).serve_forever()
