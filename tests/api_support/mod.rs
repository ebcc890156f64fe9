//! What the API tests share: JSON requests with a chosen token against a real
//! `slipway serve`, on one runtime so that synchronous tests can use `reqwest`.

#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

pub fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client")
    })
}

/// An answer: its status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

/// `method base+path` with `token` (none when empty) and an optional JSON body.
pub fn call(method: &str, base: &str, path: &str, token: &str, body: Option<Value>) -> Answer {
    runtime().block_on(async {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = http().request(method, format!("{base}{path}"));
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let body = response.text().await.expect("a body");
        Answer { status, body }
    })
}

pub fn get(base: &str, path: &str, token: &str) -> Answer {
    call("GET", base, path, token, None)
}
