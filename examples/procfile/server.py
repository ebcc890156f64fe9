"""A Procfile-only app: answers every GET on $PORT with its version, and stops on SIGTERM."""

import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = open("VERSION").read().strip() if os.path.exists("VERSION") else "dev"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # http.server writes a response's head and body separately; with Nagle on, every
    # keep-alive request would then wait ~40 ms for a delayed ACK.
    disable_nagle_algorithm = True

    def do_GET(self):
        body = ("hello from a Procfile app, version %s (%s)\n" % (VERSION, os.environ.get("SLIPWAY_RELEASE"))).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
server.daemon_threads = True
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
print("procfile app %s on port %s" % (VERSION, os.environ["PORT"]), flush=True)
server.serve_forever()
