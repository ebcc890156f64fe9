"""A small web app for Slipway: answers on $PORT, has a /healthcheck, and stops
cleanly on SIGTERM (finishing the request in flight)."""

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GREETING = os.environ.get("GREETING", "hello from Slipway")
VERSION = open("VERSION").read().strip() if os.path.exists("VERSION") else "dev"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # http.server writes a response's head and body separately; with Nagle on, every
    # keep-alive request would then wait ~40 ms for a delayed ACK.
    disable_nagle_algorithm = True

    def do_GET(self):
        if self.path == "/healthcheck":
            body = b"ok\n"
        else:
            body = (json.dumps({
                "greeting": GREETING,
                "version": VERSION,
                "release": os.environ.get("SLIPWAY_RELEASE"),
                "warmed": os.path.exists("/tmp/slipway-hello-warm-" + os.environ.get("SLIPWAY_ENVIRONMENT", "")),
            }) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain" if self.path == "/healthcheck" else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
    server.daemon_threads = True

    def stop(signum, frame):
        print("SIGTERM: shutting down", flush=True)
        # shutdown() waits for serve_forever to return; call it from another thread.
        import threading
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"{GREETING}: version {VERSION} on port {os.environ['PORT']}", flush=True)
    # A short poll interval lets shutdown() return promptly after SIGTERM (the default,
    # 0.5 s, would keep every deploy waiting for the old instances that long).
    server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
