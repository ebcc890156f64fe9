//! Header rules of a faithful proxy: hop-by-hop headers (RFC 9110 §7.6.1) end at the
//! router, except the pair that carries a protocol upgrade through; `X-Forwarded-*` tell
//! the app who really asked; `X-Slipway-Debug: release` asks which release answered.

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(crate) const X_SLIPWAY_DEBUG: HeaderName = HeaderName::from_static("x-slipway-debug");
pub(crate) const X_SLIPWAY_RELEASE: HeaderName = HeaderName::from_static("x-slipway-release");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that only ever describe one connection.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Whether `Connection` lists `token` (comma-separated, any case).
pub(crate) fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|listed| listed.trim().eq_ignore_ascii_case(token))
}

/// A request (or a 101 response) that switches protocols: `Connection: upgrade` + `Upgrade`.
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_has(headers, "upgrade")
}

/// Removes hop-by-hop headers and those `Connection` names. With `keep_upgrade`, the
/// `Upgrade` header and `Connection: upgrade` are passed on, since the upgrade is exactly
/// what the two ends are negotiating through us.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Usually there is none (an HTTP/1.1 answer, a keep-alive request without
    // `Connection`): one pass over the names, which compares without hashing, saves
    // hashing each of the seven to remove it.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        // Collected first because the names borrow `headers`; the common tokens are in
        // `HOP_BY_HOP` already, so the vector usually stays empty (and unallocated).
        let mut named: Vec<HeaderName> = Vec::new();
        for value in headers.get_all(header::CONNECTION) {
            let Ok(value) = value.to_str() else { continue };
            for token in value.split(',').map(str::trim) {
                let common = ["keep-alive", "close", "upgrade", ""]
                    .iter()
                    .any(|t| token.eq_ignore_ascii_case(t));
                if !common {
                    if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                        named.push(name);
                    }
                }
            }
        }
        for name in named {
            headers.remove(name);
        }
    }
    let upgrade = if keep_upgrade {
        headers.remove(header::UPGRADE)
    } else {
        None
    };
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if let Some(protocol) = upgrade {
        headers.insert(header::UPGRADE, protocol);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Sets `X-Forwarded-For` (appending the client), `-Proto` and `-Host`.
pub(crate) fn set_forwarded(
    headers: &mut HeaderMap,
    client_ip: &HeaderValue,
    host: Option<HeaderValue>,
) {
    // Every earlier hop, in order, even when they came as several header lines.
    let mut earlier = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .map(HeaderValue::as_bytes)
        .filter(|hops| !hops.is_empty())
        .peekable();
    let forwarded_for = if earlier.peek().is_none() {
        client_ip.clone()
    } else {
        let mut joined = Vec::with_capacity(64);
        for hops in earlier {
            joined.extend_from_slice(hops);
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(client_ip.as_bytes());
        HeaderValue::from_bytes(&joined).unwrap_or_else(|_| client_ip.clone())
    };
    headers.insert(X_FORWARDED_FOR, forwarded_for);
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    if let Some(host) = host {
        headers.insert(X_FORWARDED_HOST, host);
    }
}

/// Whether the client asked which release answered.
pub(crate) fn wants_release(headers: &HeaderMap) -> bool {
    headers
        .get(X_SLIPWAY_DEBUG)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"release"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        headers
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_removed() {
        let mut headers = map(&[
            ("connection", "keep-alive, X-Secret-Hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("accept", "text/html"),
        ]);
        strip_hop_by_hop(&mut headers, false);
        let left: Vec<_> = headers.keys().map(|name| name.as_str()).collect();
        assert_eq!(left, vec!["accept"]);
    }

    #[test]
    fn headers_without_hop_by_hop_ones_are_left_as_they_are() {
        let mut headers = map(&[
            ("content-type", "text/plain"),
            ("x-keep", "1"),
            ("set-cookie", "a=1"),
        ]);
        headers.append(header::SET_COOKIE, HeaderValue::from_static("b=2"));
        let before = headers.clone();
        strip_hop_by_hop(&mut headers, false);
        assert_eq!(headers, before);
    }

    #[test]
    fn an_upgrade_keeps_its_two_headers() {
        let mut headers = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("keep-alive", "1"),
        ]);
        assert!(is_upgrade(&headers));
        strip_hop_by_hop(&mut headers, true);
        assert_eq!(
            headers.get(header::UPGRADE).map(HeaderValue::as_bytes),
            Some(&b"websocket"[..])
        );
        assert_eq!(
            headers.get(header::CONNECTION).map(HeaderValue::as_bytes),
            Some(&b"upgrade"[..])
        );
        assert!(!headers.contains_key("keep-alive"));
    }

    #[test]
    fn forwarded_for_appends_the_client() {
        let mut headers = map(&[("x-forwarded-for", "10.0.0.1")]);
        set_forwarded(
            &mut headers,
            &HeaderValue::from_static("127.0.0.1"),
            Some(HeaderValue::from_static("a.localhost")),
        );
        assert_eq!(headers[X_FORWARDED_FOR], "10.0.0.1, 127.0.0.1");
        assert_eq!(headers[X_FORWARDED_PROTO], "http");
        assert_eq!(headers[X_FORWARDED_HOST], "a.localhost");
    }

    #[test]
    fn forwarded_for_keeps_every_earlier_line_in_order() {
        let mut headers = map(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2, 10.0.0.3"),
        ]);
        set_forwarded(&mut headers, &HeaderValue::from_static("127.0.0.1"), None);
        let all: Vec<_> = headers.get_all(X_FORWARDED_FOR).iter().collect();
        assert_eq!(all, ["10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1"]);
    }

    #[test]
    fn the_debug_header_is_read_in_any_case() {
        assert!(wants_release(&map(&[("x-slipway-debug", "RELEASE")])));
        assert!(!wants_release(&map(&[("x-slipway-debug", "other")])));
    }
}
