//! Plain HTTP GETs for tests, through the router with a `Host` header, on one shared
//! runtime so that synchronous tests can use `reqwest`.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            // A fresh connection per request: each one is routed anew.
            .pool_max_idle_per_host(0)
            .build()
            .expect("an HTTP client")
    })
}

/// GET `url`: the status and body, or why there was no answer.
pub fn get_url(url: &str) -> Result<(u16, String), String> {
    runtime().block_on(async {
        let response = client().get(url).send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| e.to_string())?;
        Ok((status, body))
    })
}

/// GET `path` from the router at `router`, as the browser of `http://<host>/` would.
pub fn get_via(router: SocketAddr, host: &str, path: &str) -> Result<(u16, String), String> {
    runtime().block_on(async {
        let url = format!("http://{router}{path}");
        let response = client()
            .get(url)
            .header("host", host)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| e.to_string())?;
        Ok((status, body))
    })
}

/// GET `path` through the router with `X-Slipway-Debug: release`: the status, the
/// release that answered (`X-Slipway-Release`), and the body.
pub fn get_release_via(
    router: SocketAddr,
    host: &str,
    path: &str,
) -> Result<(u16, Option<String>, String), String> {
    runtime().block_on(async {
        let url = format!("http://{router}{path}");
        let response = client()
            .get(url)
            .header("host", host)
            .header("x-slipway-debug", "release")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let release = response
            .headers()
            .get("x-slipway-release")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await.map_err(|e| e.to_string())?;
        Ok((status, release, body))
    })
}
