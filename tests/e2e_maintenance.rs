//! End to end: `slipway maintenance on|off` holds an environment's requests at the router
//! and releases them, and a server restart does not lift it.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{App, Server, Workspace};

const HOST: &str = "calm-prod.localhost";

/// Sends a request in a thread; asserts it is still unanswered after `window` (held),
/// and returns the thread so the caller can see how it ends.
fn held_request(
    server: &Arc<Server>,
    window: Duration,
) -> std::thread::JoinHandle<Result<(u16, String), String>> {
    let request = {
        let server = server.clone();
        std::thread::spawn(move || server.get(HOST, "/"))
    };
    let started = Instant::now();
    while started.elapsed() < window {
        assert!(
            !request.is_finished(),
            "answered during maintenance: {:?}",
            request.join()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    request
}

#[test]
fn maintenance_holds_requests_survives_a_restart_and_releases_them() {
    let ws = Workspace::new();
    let server = ws.serve();
    let dir = ws.path("calm");
    App::new("calm", "one").write(&dir);
    ws.cli(&server, &["deploy", dir.to_str().unwrap(), "--env", "prod"])
        .ok();
    assert_eq!(server.get(HOST, "/").unwrap().0, 200);

    let args = ["--app", "calm", "--env", "prod"];
    ws.cli(&server, &[&["maintenance", "on"][..], &args].concat())
        .ok();
    let server = Arc::new(server);
    let first = held_request(&server, Duration::from_millis(500));

    // SIGKILL and start again: still in maintenance.
    let pid = nix::unistd::Pid::from_raw(server.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill the server");
    let _ = first.join();
    drop(server);
    let server = Arc::new(ws.serve());
    let held = held_request(&server, Duration::from_millis(500));

    ws.cli(&server, &[&["maintenance", "off"][..], &args].concat())
        .ok();
    let answer = held.join().expect("the request thread").expect("an answer");
    assert_eq!(
        answer.0, 200,
        "the held request is served once maintenance is off: {answer:?}"
    );
    assert_eq!(server.get(HOST, "/").unwrap().0, 200);
}
