"""The web service of the worker example: shows its version and the worker's heartbeat."""

import json
import os
import signal
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = open("VERSION").read().strip() if os.path.exists("VERSION") else "dev"
STATE = os.path.join(
    tempfile.gettempdir(),
    "slipway-%s-%s-worker.json" % (os.environ.get("SLIPWAY_APP", "jobs"), os.environ.get("SLIPWAY_ENVIRONMENT", "local")),
)


def worker_state():
    try:
        with open(STATE) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # http.server writes a response's head and body separately; with Nagle on, every
    # keep-alive request would then wait ~40 ms for a delayed ACK.
    disable_nagle_algorithm = True

    def do_GET(self):
        if self.path == "/healthcheck":
            body = b"ok\n"
        else:
            page = {"version": VERSION, "release": os.environ.get("SLIPWAY_RELEASE"), "worker": worker_state()}
            body = (json.dumps(page) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print("web %s on port %s" % (VERSION, os.environ["PORT"]), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
