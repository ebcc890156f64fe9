//! End to end: the router's timeouts are set from `slipway serve`'s flags (here through
//! their `SLIPWAY_*` variables): an instance that never answers gets the client a 504
//! after the configured upstream timeout, not after the 60 s default.

mod common;

use std::time::{Duration, Instant};

use common::Workspace;

const APP: &str = r#"
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/never":
            time.sleep(120)
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
server.daemon_threads = True
server.serve_forever(poll_interval=0.05)
"#;

#[test]
fn an_instance_that_never_answers_gets_a_504_after_the_configured_timeout() {
    // This file holds one test, so the variable reaches only its server.
    std::env::set_var("SLIPWAY_ROUTER_UPSTREAM_TIMEOUT", "700ms");
    let ws = Workspace::new();
    let server = ws.serve();
    let dir = ws.path("slow");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("app.py"), APP).unwrap();
    std::fs::write(
        dir.join("slipway.yml"),
        "app: slow\nservices:\n  web:\n    command: exec python3 app.py\n",
    )
    .unwrap();
    ws.cli(&server, &["deploy", dir.to_str().unwrap(), "--env", "prod"])
        .ok();
    assert_eq!(server.get("slow-prod.localhost", "/").unwrap().0, 200);

    let started = Instant::now();
    let (status, body) = server.get("slow-prod.localhost", "/never").unwrap();
    let waited = started.elapsed();
    assert_eq!(status, 504, "{body}");
    // The default is 60 s: an answer this early can only come from the flag's 700 ms.
    assert!(
        waited < Duration::from_secs(30),
        "the 504 came after {waited:?}"
    );
}
