//! Single health checks of an instance reachable on an address: one HTTP GET, or one TCP
//! connect. They know nothing of instances or runtimes, so the local and the docker
//! runtime share them; the pipeline repeats them at the configured interval until the
//! deadline. Each failure says why in words a user can act on.

use std::error::Error as _;
use std::io;
use std::sync::OnceLock;
use std::time::Duration;

use crate::config::model::HttpHealth;
use crate::runtime::human;

/// One client for every check: building a client (its connector and resolver) per check
/// would cost more than the check itself.
fn client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                // An instance on loopback must never be reached through a proxy taken
                // from HTTP_PROXY: the proxy would answer for it.
                .no_proxy()
                // A redirect is an answer of the instance itself; following it could
                // leave the instance (and in strict mode a 301 is not healthy).
                .redirect(reqwest::redirect::Policy::none())
                // No idle connections: a check must prove the instance accepts new
                // connections, and sockets pooled to stopped instances would pile up.
                .pool_max_idle_per_host(0)
                .build()
                .map_err(|error| format!("could not build an HTTP client: {error}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// One `GET http://{address}{path}` within `health.timeout`. Strict: only a 200 is
/// healthy; otherwise any HTTP response is (the app answers, even if with an error).
pub async fn http_check(address: &str, health: &HttpHealth) -> Result<(), String> {
    let client = client()?;
    let path = if health.path.starts_with('/') {
        health.path.clone()
    } else {
        format!("/{}", health.path)
    };
    let url = format!("http://{address}{path}");
    let response = client
        .get(&url)
        .timeout(health.timeout)
        .send()
        .await
        .map_err(|error| describe_http_error(&error, health.timeout))?;
    let status = response.status();
    if health.strict && status != reqwest::StatusCode::OK {
        return Err(format!(
            "answered {} (strict: only 200 is healthy)",
            status.as_u16()
        ));
    }
    Ok(())
}

/// One TCP connect to `address` within `timeout`.
pub async fn tcp_check(address: &str, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await {
        Ok(Ok(_stream)) => Ok(()),
        Ok(Err(error)) => Err(describe_io_error(&error)),
        Err(_) => Err(format!("no answer within {}", human::duration(timeout))),
    }
}

fn describe_http_error(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("no answer within {}", human::duration(timeout));
    }
    // The io::Error at the bottom of the chain says it best ("connection refused").
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io_error) = cause.downcast_ref::<io::Error>() {
            return describe_io_error(io_error);
        }
        source = cause.source();
    }
    if error.is_connect() {
        return "could not connect".to_owned();
    }
    format!("the request failed: {error}")
}

fn describe_io_error(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
        io::ErrorKind::UnexpectedEof => "the connection closed before an answer".to_owned(),
        _ => format!("could not connect: {error}"),
    }
}

/// An uptime check: healthy once the instance, started at `started_at` (unix ms), has been
/// up for `wanted`. The caller has checked that it is running.
pub fn uptime_check(started_at: i64, wanted: Duration) -> Result<(), String> {
    use crate::pipeline::traits::{Clock, SystemClock};
    let up = SystemClock.now_millis().saturating_sub(started_at).max(0);
    let up = Duration::from_millis(u64::try_from(up).unwrap_or(0));
    if up >= wanted {
        Ok(())
    } else {
        Err(format!(
            "up for {} of {}",
            human::duration(Duration::from_secs(up.as_secs())),
            human::duration(wanted)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server that answers every connection with `status`, or never answers at all.
    async fn server(status: Option<u16>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0u8; 1024];
                    let _ = socket.read(&mut buffer).await;
                    match status {
                        Some(code) => {
                            let answer = format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                            let _ = socket.write_all(answer.as_bytes()).await;
                        }
                        // Hold the socket open without answering.
                        None => std::future::pending::<()>().await,
                    }
                });
            }
        });
        address
    }

    fn health(strict: bool) -> HttpHealth {
        HttpHealth {
            path: "/healthcheck".into(),
            strict,
            timeout: Duration::from_millis(300),
            ..HttpHealth::default()
        }
    }

    /// A loopback address where nothing listens.
    fn closed_address() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").to_string()
    }

    #[tokio::test]
    async fn strict_accepts_only_200() {
        assert_eq!(
            http_check(&server(Some(200)).await, &health(true)).await,
            Ok(())
        );
        assert_eq!(
            http_check(&server(Some(500)).await, &health(true)).await,
            Err("answered 500 (strict: only 200 is healthy)".to_owned())
        );
    }

    #[tokio::test]
    async fn lenient_accepts_any_answer() {
        assert_eq!(
            http_check(&server(Some(500)).await, &health(false)).await,
            Ok(())
        );
        assert_eq!(
            http_check(&server(Some(301)).await, &health(false)).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn says_why_a_check_failed() {
        assert_eq!(
            http_check(&closed_address(), &health(false)).await,
            Err("connection refused".to_owned())
        );
        assert_eq!(
            http_check(&server(None).await, &health(false)).await,
            Err("no answer within 300ms".to_owned())
        );
    }

    #[tokio::test]
    async fn tcp_check_connects_or_says_refused() {
        let listening = server(Some(200)).await;
        assert_eq!(tcp_check(&listening, Duration::from_secs(2)).await, Ok(()));
        assert_eq!(
            tcp_check(&closed_address(), Duration::from_secs(2)).await,
            Err("connection refused".to_owned())
        );
    }
}
