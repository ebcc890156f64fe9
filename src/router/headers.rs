//! Header rules of a faithful proxy: hop-by-hop headers (RFC 9110 §7.6.1) end at the
//! router, except the pair that carries a protocol upgrade through; `X-Forwarded-*` tell
//! the app who really asked; `X-Slipway-Debug: release` asks which release answered.

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::h1::HeadWriter;

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

/// A request's head as the instance gets it, up to its framing: `method target`, then
/// each header the client sent (hop-by-hop ones were removed) but the `X-Forwarded-*`,
/// which the router sets — `-For` with every earlier hop in order, even from several
/// lines, then the client; `-Proto`; `-Host`, the host the client asked for — and a `Host`
/// (`default_host`) when the request had none: an HTTP/2 request names its host in its
/// URI, an HTTP/1.0 one may name none. Written straight from the client's headers,
/// without changing them.
pub(crate) fn request_head(
    method: &hyper::Method,
    target: &str,
    headers: &HeaderMap,
    client_ip: &HeaderValue,
    host: Option<&[u8]>,
    default_host: &[u8],
) -> HeadWriter {
    let lines: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let mut head = HeadWriter::new(method, target, lines + client_ip.len() + 128);
    let (mut has_host, mut earlier_hops) = (false, false);
    for (name, value) in headers {
        if name == X_FORWARDED_FOR {
            earlier_hops |= !value.is_empty();
        } else if name != X_FORWARDED_PROTO && name != X_FORWARDED_HOST {
            has_host |= name == header::HOST;
            head.header(name.as_str().as_bytes(), value.as_bytes());
        }
    }
    if !has_host {
        head.header(b"host", host.unwrap_or(default_host));
    }
    head.header_with(X_FORWARDED_FOR.as_str().as_bytes(), |out| {
        if earlier_hops {
            for hops in headers.get_all(X_FORWARDED_FOR) {
                if !hops.is_empty() {
                    out.extend_from_slice(hops.as_bytes());
                    out.extend_from_slice(b", ");
                }
            }
        }
        out.extend_from_slice(client_ip.as_bytes());
    });
    head.header(X_FORWARDED_PROTO.as_str().as_bytes(), b"http");
    if let Some(host) = host {
        head.header(X_FORWARDED_HOST.as_str().as_bytes(), host);
    }
    head
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

    /// The header lines `request_head` writes for `headers`.
    fn written(headers: &HeaderMap, host: Option<&str>) -> Vec<String> {
        let client = HeaderValue::from_static("127.0.0.1");
        let head = request_head(
            &hyper::Method::GET,
            "/",
            headers,
            &client,
            host.map(str::as_bytes),
            b"127.0.0.1:5000",
        );
        let head = String::from_utf8(head.finish(false).to_vec()).unwrap();
        head.lines()
            .skip(1)
            .take_while(|line| !line.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn forwarded_headers_name_the_client_and_what_it_asked_for() {
        let headers = map(&[
            ("host", "a.localhost"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "spoofed.example"),
            ("accept", "*/*"),
        ]);
        assert_eq!(
            written(&headers, Some("a.localhost")),
            [
                "host: a.localhost",
                "accept: */*",
                "x-forwarded-for: 10.0.0.1, 127.0.0.1",
                "x-forwarded-proto: http",
                "x-forwarded-host: a.localhost",
            ]
        );
    }

    #[test]
    fn forwarded_for_keeps_every_earlier_line_in_order() {
        let headers = map(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-for", ""),
            ("x-forwarded-for", "10.0.0.2, 10.0.0.3"),
        ]);
        let lines = written(&headers, None);
        assert!(
            lines.contains(&"x-forwarded-for: 10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1".to_owned()),
            "{lines:?}"
        );
    }

    #[test]
    fn a_request_without_a_host_gets_the_one_it_named_or_the_instance_s() {
        // HTTP/2: the host is in the URI.
        let lines = written(&HeaderMap::new(), Some("b.localhost"));
        assert_eq!(lines[0], "host: b.localhost");
        assert!(lines.contains(&"x-forwarded-host: b.localhost".to_owned()));
        // HTTP/1.0 without one: the instance's address.
        let lines = written(&HeaderMap::new(), None);
        assert_eq!(
            lines,
            [
                "host: 127.0.0.1:5000",
                "x-forwarded-for: 127.0.0.1",
                "x-forwarded-proto: http"
            ]
        );
    }

    #[test]
    fn the_debug_header_is_read_in_any_case() {
        assert!(wants_release(&map(&[("x-slipway-debug", "RELEASE")])));
        assert!(!wants_release(&map(&[("x-slipway-debug", "other")])));
    }
}
