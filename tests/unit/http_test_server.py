#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""HTTP/1.1 server for test_http, Python standard library only.

Listens on 127.0.0.1 on a port the kernel picks, prints that port on one
line of standard output and serves until killed, or for LIFETIME_SEC at
most. Endpoints:

  /echo                 200, the request's method, path, headers and body as JSON
  /status/N             reply with status N
  /request-id           200 with "request-id: rid-plain-1"
  /x-request-id         200 with "X-Request-ID: rid-x-2"
  /retry-after/delta    429 with "Retry-After: 2"
  /retry-after/date     503 with Retry-After as an HTTP date 30 s ahead
  /delay/MS             200 after MS milliseconds (at most DELAY_MAX_MS)
  /parallel/MS          as /delay, and counted in in_flight and max_in_flight
  /large/N              200 with N bytes, chunked (no Content-Length)
  /large-length/N       200 with N bytes and a Content-Length
  /stall                Content-Length 1000, 10 bytes, then silence
  /close                closes the connection without a reply
  /token                OAuth 2.0 client-credentials token endpoint
  /stats                request counters as JSON (not counted themselves)
  /arrivals             each counted request since the last reset, oldest first:
                        {"path": path with query, "monotonic": CLOCK_MONOTONIC
                        seconds when its headers were read} (not counted itself)
  /reset                zeroes the counters and clears the arrivals
"""

import email.utils
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LIFETIME_SEC = 120
DELAY_MAX_MS = 5000
STALL_SEC = 5
LARGE_MAX = 10 * 1024 * 1024
REQUEST_BODY_MAX = 1024 * 1024
ARRIVALS_MAX = 1000

TOKEN_CLIENT_ID = "watchd-test"
TOKEN_CLIENT_SECRET = "a&b=c +%/\u00e9"
TOKEN_SCOPE = "elements.cbprotected.read.all"

lock = threading.Lock()
stats = {"requests": 0, "in_flight": 0, "max_in_flight": 0, "token_requests": 0}
# time.monotonic() reads CLOCK_MONOTONIC on Linux, the clock the client's
# pause is set on, so a test can compare an arrival with the pause's end.
arrivals = []


def reset_stats():
    with lock:
        for key in stats:
            if key != "in_flight":
                stats[key] = 0
        arrivals.clear()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self.handle_request()

    def do_POST(self):
        self.handle_request()

    def send_json(self, status, obj, extra_headers=()):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra_headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def handle_request(self):
        arrived = time.monotonic()
        length = min(int(self.headers.get("Content-Length") or 0), REQUEST_BODY_MAX)
        body = self.rfile.read(length)
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")

        if parts[0] == "stats":
            with lock:
                self.send_json(200, dict(stats))
            return
        if parts[0] == "arrivals":
            with lock:
                self.send_json(200, list(arrivals))
            return
        if parts[0] == "reset":
            reset_stats()
            self.send_json(200, {})
            return

        # Only /parallel counts towards concurrency, so that a reply still
        # sleeping for an earlier test does not change the next test's count.
        counted = parts[0] == "parallel"
        with lock:
            stats["requests"] += 1
            if len(arrivals) < ARRIVALS_MAX:
                arrivals.append({"path": self.path, "monotonic": arrived})
            if counted:
                stats["in_flight"] += 1
                stats["max_in_flight"] = max(stats["max_in_flight"], stats["in_flight"])
        try:
            self.route(parts, parse_qs(url.query), body)
        finally:
            if counted:
                with lock:
                    stats["in_flight"] -= 1

    def route(self, parts, query, body):
        name = parts[0]
        arg = parts[1] if len(parts) > 1 else ""

        if name == "echo":
            headers = {k.lower(): v for k, v in self.headers.items()}
            self.send_json(200, {"method": self.command, "path": self.path, "headers": headers,
                                 "body": body.decode("utf-8", "replace")})
        elif name == "status":
            self.send_json(int(arg), {"status": int(arg)})
        elif name == "request-id":
            self.send_json(200, {}, [("request-id", "rid-plain-1")])
        elif name == "x-request-id":
            self.send_json(200, {}, [("X-Request-ID", "rid-x-2")])
        elif name == "retry-after" and arg == "delta":
            self.send_json(429, {}, [("Retry-After", "2")])
        elif name == "retry-after" and arg == "date":
            date = email.utils.formatdate(time.time() + 30, usegmt=True)
            self.send_json(503, {}, [("Retry-After", date)])
        elif name in ("delay", "parallel"):
            time.sleep(min(int(arg), DELAY_MAX_MS) / 1000)
            self.send_json(200, {"delayed_ms": int(arg)})
        elif name == "large":
            self.send_large(min(int(arg), LARGE_MAX), chunked=True)
        elif name == "large-length":
            self.send_large(min(int(arg), LARGE_MAX), chunked=False)
        elif name == "stall":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.wfile.flush()
            time.sleep(STALL_SEC)
            self.close_connection = True
        elif name == "close":
            self.close_connection = True
        elif name == "token":
            self.token(query, body)
        else:
            self.send_json(404, {"error": "not found"})

    def send_large(self, size, chunked):
        block = b"x" * 65536
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(size))
        self.end_headers()
        left = size
        try:
            while left > 0:
                piece = block[:min(left, len(block))]
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                else:
                    self.wfile.write(piece)
                left -= len(piece)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def token(self, query, body):
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        with lock:
            stats["token_requests"] += 1
            number = stats["token_requests"]
        delay_ms = int(query.get("delay_ms", ["0"])[0])
        time.sleep(min(delay_ms, DELAY_MAX_MS) / 1000)

        valid = (form.get("grant_type") == ["client_credentials"] and
                 form.get("client_id") == [TOKEN_CLIENT_ID] and
                 form.get("client_secret") == [TOKEN_CLIENT_SECRET] and
                 form.get("scope") == [TOKEN_SCOPE])
        if not valid:
            self.send_json(400, {"error": "invalid_client", "error_description": "Invalid client credentials"})
            return
        expires_in = int(query.get("expires_in", ["3600"])[0])
        self.send_json(200, {"access_token": "tok-%d" % number, "token_type": "Bearer",
                             "expires_in": expires_in, "scope": TOKEN_SCOPE})


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # Clients that give up (timeouts, size limits) are part of the tests.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def main():
    server = Server(("127.0.0.1", 0), Handler)
    sys.stdout.write("%d\n" % server.server_address[1])
    sys.stdout.flush()
    # Exits after LIFETIME_SEC even when the test does not stop it.
    timer = threading.Timer(LIFETIME_SEC, lambda: os._exit(0))
    timer.daemon = True
    timer.start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
