//! End to end: an environment's own `port` and `domain` (`environments.<env>` in
//! `slipway.yml`). The router serves the environment on its port whatever the `Host`, and
//! under its domain on the shared router address; a release whose port is taken is rolled
//! back with the old one still answering on its port; a release without them closes both.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::http::get_via;
use common::{operations, state_of, wait_until, App, Workspace};

const APP: &str = "exposed";
const DOMAIN: &str = "exposed.example.com";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

fn app(version: &str, port: Option<u16>) -> App {
    let mut app = App::new(APP, version);
    if let Some(port) = port {
        app.environments.push((
            "live".to_owned(),
            format!("{{ port: {port}, domain: {DOMAIN} }}"),
        ));
    }
    app
}

/// The version that answers `/` at `address` with `host`.
fn version_at(address: SocketAddr, host: &str) -> Option<String> {
    let (status, body) = get_via(address, host, "/").ok()?;
    if status != 200 {
        return None;
    }
    let page: serde_json::Value = serde_json::from_str(&body).ok()?;
    page["version"].as_str().map(str::to_owned)
}

#[test]
fn an_environment_answers_on_its_own_port_and_domain_and_a_taken_port_is_rolled_back() {
    let ws = Workspace::new();
    let server = ws.serve();
    let dir = ws.path(APP);
    let deploy = |app: &App| {
        app.write(&dir);
        ws.cli(&server, &["deploy", dir.to_str().unwrap(), "--env", "live"])
    };

    let port = free_port();
    let own = SocketAddr::from(([127, 0, 0, 1], port));
    deploy(&app("one", Some(port))).ok();
    assert_eq!(version_at(own, "anything.example").as_deref(), Some("one"));
    assert_eq!(version_at(server.router, DOMAIN).as_deref(), Some("one"));
    assert_eq!(
        version_at(server.router, "exposed-live.localhost").as_deref(),
        Some("one")
    );
    let releases = ws
        .cli(
            &server,
            &["releases", "--app", APP, "--env", "live", "--json"],
        )
        .ok()
        .json();
    let url = format!("http://{DOMAIN}:{}", server.router.port());
    assert_eq!(releases["url"], url.as_str());

    // A port something else holds: the deploy fails before any switch, naming the port.
    let held = TcpListener::bind("127.0.0.1:0").expect("a port to hold");
    let taken = held.local_addr().unwrap().port();
    let refused = deploy(&app("two", Some(taken)));
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    let says =
        format!("cannot listen on 127.0.0.1:{taken} for {APP}/live (environments.live.port): ");
    assert!(
        refused.stdout.contains(&says),
        "no `{says}` in:\n{}",
        refused.stdout
    );
    let ops = operations(&ws, &server, APP, "live");
    assert_eq!(state_of(&ops[1]), "rolled_back");
    assert_eq!(version_at(own, "anything.example").as_deref(), Some("one"));
    drop(held);

    // A release that names no port or domain closes them.
    deploy(&app("three", None)).ok();
    assert_eq!(
        version_at(server.router, "exposed-live.localhost").as_deref(),
        Some("three")
    );
    wait_until(
        Duration::from_secs(10),
        "the environment's port closes",
        || TcpStream::connect(own).is_err(),
    );
    let (status, _) = get_via(server.router, DOMAIN, "/").expect("the router answers");
    assert_eq!(status, 404);
}
