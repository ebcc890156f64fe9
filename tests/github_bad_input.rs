//! Bad webhook input against the real `slipway serve` on loopback: signatures missing,
//! wrong or of another algorithm, malformed headers, truncated and 30 MB bodies,
//! slow-loris clients, replays and unknown events. Each bad request gets a clear error
//! body and queues nothing; the server stays responsive and its memory bounded.

mod common;
mod fake_github;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::{wait_until, App, Workspace};
use fake_github::harness::*;
use fake_github::FakeGitHub;
use serde_json::Value;

/// The server's `--read-timeout` in these tests: short, so that cutting slow clients off
/// is seen quickly.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Slack on top of a timeout for "it was cut off, not stuck": CI machines are busy.
const MARGIN: Duration = Duration::from_secs(10);

fn serve_short(ws: &Workspace, fake: &FakeGitHub) -> Server {
    serve_with(
        ws,
        fake,
        &["--read-timeout".into(), "2s".into()],
        Some(TOKEN),
    )
}

fn message(body: &str) -> String {
    serde_json::from_str::<Value>(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
        ["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// `(status, message)` of a delivery with these headers (GitHub's usual ones replaced).
fn post(server: &Server, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
    let (status, body) = request(&server.api, "POST", "/webhooks/github", headers, body);
    (status, message(&body))
}

fn headers(event: &str, delivery: &str, signature: Option<String>) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("X-GitHub-Event", event.to_owned()),
        ("X-GitHub-Delivery", delivery.to_owned()),
        ("Content-Type", "application/json".to_owned()),
    ];
    if let Some(signature) = signature {
        headers.push(("X-Hub-Signature-256", signature));
    }
    headers
}

fn sign(body: &[u8]) -> Option<String> {
    Some(slipway::github::signature::sign(SECRET.as_bytes(), body))
}

/// Nothing was queued and GitHub heard nothing.
fn assert_nothing_happened(server: &Server, fake: &FakeGitHub) {
    assert_eq!(operations(server), Vec::<Value>::new());
    assert!(fake.requests().is_empty(), "{:#?}", fake.requests());
}

/// The peak resident memory of a process, in KiB (`VmHWM` of `/proc/<pid>/status`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Reads an answer's status line and body until the server closes the connection.
fn read_answer(stream: &mut TcpStream) -> (u16, String) {
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// What is sent, with which headers and body, and the status and words it must get.
type Case = (
    &'static str,
    Vec<(&'static str, String)>,
    Vec<u8>,
    u16,
    &'static str,
);

#[test]
fn bad_signatures_headers_and_bodies_are_refused_saying_what_to_fix() {
    let ws = Workspace::new();
    let sha = repository(&ws, &App::new("shop", "v1"));
    let fake = FakeGitHub::start();
    let server = serve_short(&ws, &fake);
    let push = push_payload(&sha);

    let cases: Vec<Case> = vec![
        (
            "no signature",
            headers("push", "d-1", None),
            push.clone(),
            401,
            "X-Hub-Signature-256 is missing",
        ),
        (
            "a wrong signature",
            headers(
                "push",
                "d-2",
                Some(slipway::github::signature::sign(b"not the secret", &push)),
            ),
            push.clone(),
            401,
            "does not match the body",
        ),
        (
            "SHA-1 only",
            {
                let mut h = headers("push", "d-3", None);
                h.push((
                    "X-Hub-Signature",
                    "sha1=4d4e44d2f3c2c5a1a8e4d4a2a6d4b0f0b1c3d5e7".into(),
                ));
                h
            },
            push.clone(),
            401,
            "only X-Hub-Signature (SHA-1) was sent",
        ),
        (
            "a malformed signature",
            headers("push", "d-4", Some("sha256=zz".into())),
            push.clone(),
            401,
            "64 hex digits",
        ),
        (
            "a signature of the whole body, half of it sent",
            headers("push", "d-5", sign(&push)),
            push[..push.len() / 2].to_vec(),
            401,
            "does not match the body",
        ),
        (
            "no event header",
            vec![
                ("X-GitHub-Delivery", "d-6".into()),
                ("X-Hub-Signature-256", sign(&push).unwrap()),
            ],
            push.clone(),
            400,
            "X-GitHub-Event is missing",
        ),
        (
            "a malformed delivery id",
            headers("push", "not an id", sign(&push)),
            push.clone(),
            400,
            "X-GitHub-Delivery is not a delivery id",
        ),
        (
            "a malformed event name",
            headers("Push Event", "d-7", sign(&push)),
            push.clone(),
            400,
            "X-GitHub-Event is not an event name",
        ),
        (
            "a body that is not JSON",
            headers("push", "d-8", sign(b"{not json")),
            b"{not json".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "a JSON array",
            headers("push", "d-9", sign(b"[1,2]")),
            b"[1,2]".to_vec(),
            400,
            "not a JSON object",
        ),
        (
            "a push without a repository",
            headers(
                "push",
                "d-10",
                sign(br#"{"ref":"refs/heads/main","after":"abc"}"#),
            ),
            br#"{"ref":"refs/heads/main","after":"abc"}"#.to_vec(),
            400,
            "repository/full_name",
        ),
    ];
    for (what, headers, body, status, says) in cases {
        let (got, message) = post(&server, &headers, &body);
        assert_eq!(got, status, "{what}: {message}");
        assert!(
            message.contains(says),
            "{what}: `{message}` should say `{says}`"
        );
    }
    // A header value that is not text at all never reaches the handler as text.
    let mut stream = TcpStream::connect(server.api.trim_start_matches("http://")).unwrap();
    stream
        .write_all(b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: sha256=\xff\xfe\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: d-11\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        .unwrap();
    let (status, body) = read_answer(&mut stream);
    assert_eq!(status, 401, "{body}");

    assert_nothing_happened(&server, &fake);
}

#[test]
fn a_30_mb_body_is_refused_with_413_before_it_is_read() {
    let ws = Workspace::new();
    repository(&ws, &App::new("shop", "v1"));
    let fake = FakeGitHub::start();
    let server = serve_short(&ws, &fake);
    let before = peak_rss_kib(server.pid());

    let size = 30 * 1024 * 1024;
    let mut stream = TcpStream::connect(server.api.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(READ_TIMEOUT + MARGIN))
        .unwrap();
    let head = format!(
        "POST /webhooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: big-1\r\nX-Hub-Signature-256: sha256={}\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n",
        "0".repeat(64)
    );
    stream.write_all(head.as_bytes()).unwrap();
    // The whole body is offered from another thread; the server answers without it.
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let chunk = vec![b' '; 64 * 1024];
        let mut sent = 0usize;
        while sent < size && writer.write_all(&chunk).is_ok() {
            sent += chunk.len();
        }
        sent
    });
    let started = Instant::now();
    let (status, body) = read_answer(&mut stream);
    assert_eq!(status, 413, "{body}");
    assert!(message(&body).contains("larger than 25 MB"), "{body}");
    assert!(started.elapsed() < MARGIN, "took {:?}", started.elapsed());
    let _ = stream.shutdown(Shutdown::Both);
    let sent = sender.join().unwrap();
    assert!(
        sent < size,
        "the server read the whole 30 MB body ({sent} bytes)"
    );
    let grown_mib = peak_rss_kib(server.pid()).saturating_sub(before) / 1024;
    assert!(
        grown_mib < 16,
        "the server's peak memory grew by {grown_mib} MiB"
    );

    // Without a Content-Length (chunked), it stops reading at 25 MB.
    let mut stream = TcpStream::connect(server.api.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(READ_TIMEOUT + MARGIN))
        .unwrap();
    let head = "POST /webhooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: big-2\r\nTransfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
        for _ in 0..(size / 0x10000) {
            if writer.write_all(chunk.as_bytes()).is_err() {
                return;
            }
        }
        let _ = writer.write_all(b"0\r\n\r\n");
    });
    let (status, body) = read_answer(&mut stream);
    assert_eq!(status, 413, "{body}");
    let _ = stream.shutdown(Shutdown::Both);
    sender.join().unwrap();

    // Read up to the 25 MB cap, no further (and never the whole 30 MB twice over).
    let grown_mib = peak_rss_kib(server.pid()).saturating_sub(before) / 1024;
    assert!(
        grown_mib < 60,
        "the server's peak memory grew by {grown_mib} MiB"
    );
    assert_nothing_happened(&server, &fake);
    // And it still answers.
    assert_eq!(
        common::http::get_url(&format!("{}/healthz", server.api))
            .unwrap()
            .0,
        200
    );
}

#[test]
fn a_truncated_body_is_answered_408_or_dropped_and_queues_nothing() {
    let ws = Workspace::new();
    let sha = repository(&ws, &App::new("shop", "v1"));
    let fake = FakeGitHub::start();
    let server = serve_short(&ws, &fake);
    let push = push_payload(&sha);
    let head = |delivery: &str| {
        format!(
            "POST /webhooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: {delivery}\r\nX-Hub-Signature-256: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            sign(&push).unwrap(),
            push.len()
        )
    };

    // Half the body, then the client waits: cut off after the read timeout.
    let mut stream = TcpStream::connect(server.api.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(READ_TIMEOUT + MARGIN))
        .unwrap();
    stream.write_all(head("short-1").as_bytes()).unwrap();
    stream.write_all(&push[..push.len() / 2]).unwrap();
    let started = Instant::now();
    let (status, body) = read_answer(&mut stream);
    assert_eq!(status, 408, "{body}");
    assert!(
        message(&body).contains("did not arrive within 2s"),
        "{body}"
    );
    assert!(
        started.elapsed() < READ_TIMEOUT + MARGIN,
        "took {:?}",
        started.elapsed()
    );

    // Half the body, then the client closes its side: the request is dropped.
    let mut stream = TcpStream::connect(server.api.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(READ_TIMEOUT + MARGIN))
        .unwrap();
    stream.write_all(head("short-2").as_bytes()).unwrap();
    stream.write_all(&push[..push.len() / 2]).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let (status, body) = read_answer(&mut stream);
    assert!(!(200..300).contains(&status), "{status} {body}");

    assert_nothing_happened(&server, &fake);
}

#[test]
fn slow_loris_clients_are_cut_off_and_hold_nobody_else_up() {
    let ws = Workspace::new();
    repository(&ws, &App::new("shop", "v1"));
    let fake = FakeGitHub::start();
    let server = serve_short(&ws, &fake);
    let address = server.api.trim_start_matches("http://").to_owned();

    // Twenty clients send their headers a byte every 200 ms (they would need 20 s).
    let head = b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: slow\r\nContent-Length: 2\r\n\r\n{}";
    let slow: Vec<_> = (0..20)
        .map(|_| {
            let address = address.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut stream = TcpStream::connect(&address).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                for byte in head {
                    if stream.write_all(&[*byte]).is_err() {
                        return (started.elapsed(), None);
                    }
                    let mut answer = [0u8; 512];
                    match stream.read(&mut answer) {
                        // Closed (or reset) by the server: cut off.
                        Ok(0) | Err(_) if !would_block(&stream) => {
                            return (started.elapsed(), None);
                        }
                        Ok(n) if n > 0 => {
                            let text = String::from_utf8_lossy(&answer[..n]).into_owned();
                            return (started.elapsed(), Some(text));
                        }
                        _ => {}
                    }
                }
                (started.elapsed(), Some("sent everything".to_owned()))
            })
        })
        .collect();

    // Meanwhile everyone else is answered.
    wait_until(MARGIN, "a client connects and is answered", || {
        common::http::get_url(&format!("{}/healthz", server.api)).is_ok_and(|(s, _)| s == 200)
    });
    for _ in 0..5 {
        let started = Instant::now();
        let (status, _) = common::http::get_url(&format!("{}/healthz", server.api)).unwrap();
        assert_eq!(status, 200);
        assert!(
            started.elapsed() < MARGIN,
            "healthz took {:?}",
            started.elapsed()
        );
    }

    for client in slow {
        let (elapsed, answered) = client.join().unwrap();
        // Cut off: closed without an answer (no status line), before sending it all.
        assert!(
            answered
                .as_deref()
                .is_none_or(|a| a.starts_with("HTTP/1.1 408")),
            "a slow client got {answered:?}"
        );
        assert!(
            elapsed < READ_TIMEOUT + MARGIN,
            "a slow client was held {elapsed:?}"
        );
    }
    assert_nothing_happened(&server, &fake);
}

/// Whether the last read on `stream` only timed out (the connection is still open).
fn would_block(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    stream.set_nonblocking(true).unwrap();
    let open =
        matches!(stream.peek(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).unwrap();
    open
}

#[test]
fn replays_are_answered_200_and_acted_on_once() {
    let ws = Workspace::new();
    let sha = repository(&ws, &App::new("shop", "v1"));
    let fake = FakeGitHub::start();
    let server = serve_short(&ws, &fake);
    let push = push_payload(&sha);

    let (status, said) = post(&server, &headers("push", "first", sign(&push)), &push);
    assert_eq!((status, said.as_str()), (202, "accepted"));
    // GitHub's "Redeliver": the same delivery id.
    let (status, said) = post(&server, &headers("push", "first", sign(&push)), &push);
    assert_eq!(status, 200, "{said}");
    assert!(
        said.contains("received before; it is not acted on again"),
        "{said}"
    );
    // A captured delivery sent again under a new id: the same body, not acted on.
    let (status, said) = post(&server, &headers("push", "replayed", sign(&push)), &push);
    assert_eq!(status, 200, "{said}");
    assert!(said.contains("as delivery first"), "{said}");

    wait_for_outcome(&ws, "first");
    wait_until(Duration::from_secs(120), "the push's deploy ends", || {
        operations(&server)
            .iter()
            .all(|op| !matches!(op["state"].as_str(), Some("queued" | "running")))
    });
    let ops = operations(&server);
    assert_eq!(ops.len(), 1, "{ops:#?}");
    assert!(delivery_outcome(&ws, "replayed").is_none());
}

#[test]
fn an_unknown_event_is_accepted_logged_and_ignored() {
    let ws = Workspace::new();
    repository(&ws, &App::new("shop", "v1"));
    let fake = FakeGitHub::start();
    let server = serve_short(&ws, &fake);
    let body = br#"{"action":"created","repository":{"full_name":"acme/shop"}}"#;
    let (status, said) = post(
        &server,
        &headers("sponsorship", "unknown-1", sign(body)),
        body,
    );
    assert_eq!(status, 202, "{said}");
    assert!(said.contains("not acted on"), "{said}");
    let outcome = wait_for_outcome(&ws, "unknown-1");
    assert!(
        outcome.contains("`sponsorship` events are not acted on"),
        "{outcome}"
    );
    assert_nothing_happened(&server, &fake);
}
