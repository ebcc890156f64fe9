//! A webhook delivery as the server reads it (`slipway::github::delivery::read`): any
//! headers, any body, signed with the right secret or not. It must never panic; it
//! accepts only what is signed with the secret; every refusal is a 4xx with a sentence.
//!
//! The input is decoded as: one flag byte (bit 0: sign the body with the right secret),
//! then `name: value` header lines up to an empty line, then the body.

#![no_main]

use slipway_fuzz as _;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use slipway::github::delivery;
use slipway::github::signature;

const SECRET: &[u8] = b"fuzz webhook secret";

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (head, body) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&rest[..at], &rest[at + 2..]),
        None => (rest, &b""[..]),
    };
    let mut headers = HeaderMap::new();
    for line in head.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    let signed = flags & 1 != 0;
    if signed {
        let value = signature::sign(SECRET, body);
        headers.insert(
            "x-hub-signature-256",
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    match delivery::read(SECRET, &headers, body) {
        Ok(received) => {
            assert!(
                signed,
                "accepted a delivery that was not signed with the secret"
            );
            assert!(!received.id.is_empty() && received.id.len() <= delivery::MAX_DELIVERY_ID);
            assert!(received.payload.is_object());
        }
        Err(refusal) => {
            assert!((400..500).contains(&refusal.status), "{refusal:?}");
            assert!(!refusal.message.is_empty());
            assert!(signed || refusal.status == 401, "unsigned but {refusal:?}");
        }
    }
});
