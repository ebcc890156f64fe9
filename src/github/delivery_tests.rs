//! `delivery::read` over the real payloads of `shared/fixtures/github-webhooks`, and
//! every way a request can be wrong.

use axum::http::{HeaderName, HeaderValue};

use super::*;

const SECRET: &[u8] = b"webhook secret";

fn fixture(path: &str) -> Vec<u8> {
    let file = format!(
        "{}/../shared/fixtures/github-webhooks/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&file).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

/// The headers GitHub sends for `body`.
fn signed(event: &str, body: &[u8]) -> HeaderMap {
    let signature = signature::sign(SECRET, body);
    headers(&[
        ("x-github-event", event),
        ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ("x-hub-signature-256", &signature),
        ("content-type", "application/json"),
    ])
}

fn refusal(headers: &HeaderMap, body: &[u8]) -> Refusal {
    read(SECRET, headers, body).expect_err("refused")
}

#[test]
fn a_real_push_is_read_with_its_trigger() {
    let body = fixture("push/octokit-webhooks.js/push-payload.json");
    let received = read(SECRET, &signed("push", &body), &body).unwrap();
    assert_eq!(received.event, "push");
    assert_eq!(received.id, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    assert!(matches!(received.trigger, Trigger::BranchPush { .. }));
    assert_eq!(received.json.as_bytes(), &body[..]);
}

#[test]
fn every_fixture_of_a_known_event_is_read() {
    for event in [
        "push",
        "pull_request",
        "check_run",
        "create",
        "deployment",
        "ping",
    ] {
        let dir = format!(
            "{}/../shared/fixtures/github-webhooks/{event}",
            env!("CARGO_MANIFEST_DIR")
        );
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let body = std::fs::read(&path).unwrap();
                if let Err(refusal) = read(SECRET, &signed(event, &body), &body) {
                    panic!("{}: {refusal:?}", path.display());
                }
            }
        }
    }
}

#[test]
fn signatures_missing_wrong_or_of_another_algorithm_are_401_saying_what_to_fix() {
    let body = br#"{"zen":"hi"}"#;
    let mut no_signature = signed("ping", body);
    no_signature.remove("x-hub-signature-256");
    let missing = refusal(&no_signature, body);
    assert_eq!(missing.status, 401);
    assert!(missing.message.contains("missing"), "{missing:?}");

    let mut sha1_only = no_signature.clone();
    sha1_only.insert("x-hub-signature", HeaderValue::from_static("sha1=0123"));
    let sha1 = refusal(&sha1_only, body);
    assert_eq!(sha1.status, 401);
    assert!(sha1.message.contains("SHA-1"), "{sha1:?}");

    for bad in [
        "sha256=xyz",
        "sha1=0123456789",
        "",
        "sha256=",
        &"a".repeat(70),
    ] {
        let mut malformed = signed("ping", body);
        malformed.insert("x-hub-signature-256", HeaderValue::from_str(bad).unwrap());
        let refused = refusal(&malformed, body);
        assert_eq!(refused.status, 401, "{bad}");
        assert!(
            refused.message.contains("64 hex digits"),
            "{bad}: {refused:?}"
        );
    }

    let forged = signature::sign(b"another secret", body);
    let mut wrong = signed("ping", body);
    wrong.insert(
        "x-hub-signature-256",
        HeaderValue::from_str(&forged).unwrap(),
    );
    let refused = refusal(&wrong, body);
    assert_eq!(refused.status, 401);
    assert!(refused.message.contains("does not match"), "{refused:?}");

    let mut twice = signed("ping", body);
    twice.append(
        "x-hub-signature-256",
        HeaderValue::from_str(&forged).unwrap(),
    );
    assert_eq!(refusal(&twice, body).status, 401);
}

#[test]
fn the_signature_is_checked_before_anything_else() {
    // A body that is not even JSON, without event headers: still a 401, not a 400.
    let only_signature = headers(&[("x-hub-signature-256", "sha256=00")]);
    assert_eq!(refusal(&only_signature, b"\xff\xfe").status, 401);
}

#[test]
fn a_truncated_body_no_longer_matches_its_signature() {
    let body = fixture("push/octokit-webhooks.js/push-payload.json");
    let headers = signed("push", &body);
    let refused = refusal(&headers, &body[..body.len() / 2]);
    assert_eq!(refused.status, 401);
}

#[test]
fn missing_repeated_or_malformed_event_headers_are_400() {
    let body = br#"{"zen":"hi"}"#;
    for (name, value) in [
        ("x-github-event", None),
        ("x-github-delivery", None),
        ("x-github-event", Some("Push Event")),
        ("x-github-event", Some("")),
        ("x-github-delivery", Some("has spaces in it")),
    ] {
        let mut map = signed("ping", body);
        map.remove(name);
        if let Some(value) = value {
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let refused = refusal(&map, body);
        assert_eq!(refused.status, 400, "{name}: {value:?}");
    }
    let long_id = "d".repeat(MAX_DELIVERY_ID + 1);
    let mut map = signed("ping", body);
    map.insert(
        "x-github-delivery",
        HeaderValue::from_str(&long_id).unwrap(),
    );
    assert_eq!(refusal(&map, body).status, 400);
    let mut map = signed("ping", body);
    map.append("x-github-event", HeaderValue::from_static("push"));
    assert!(refusal(&map, body).message.contains("more than once"));
}

#[test]
fn bodies_that_are_not_a_json_object_are_400() {
    for body in [&b"[1, 2]"[..], b"{not json", b"\xff\xfe", b"", b"null"] {
        let refused = refusal(&signed("push", body), body);
        assert_eq!(refused.status, 400, "{:?}", String::from_utf8_lossy(body));
    }
    let deep = format!("{}{}", "{\"a\":".repeat(200), "}".repeat(200));
    let refused = refusal(&signed("push", deep.as_bytes()), deep.as_bytes());
    assert!(refused.message.contains("deeper"), "{refused:?}");
}

#[test]
fn a_known_event_without_what_it_needs_is_400_naming_the_field() {
    let body = br#"{"ref": "refs/heads/main"}"#;
    let refused = refusal(&signed("push", body), body);
    assert_eq!(refused.status, 400);
    assert!(
        refused.message.contains("repository/full_name"),
        "{refused:?}"
    );
}

#[test]
fn unknown_events_are_read_as_ignored() {
    let body = br#"{"action": "created"}"#;
    let received = read(SECRET, &signed("sponsorship", body), body).unwrap();
    assert!(matches!(received.trigger, Trigger::Ignored(_)));
}

#[test]
fn a_form_encoded_delivery_carries_its_json_in_payload() {
    let json = br#"{"zen":"hi"}"#;
    let body = format!(
        "payload={}",
        form_urlencoded::byte_serialize(json).collect::<String>()
    );
    let mut map = signed("ping", body.as_bytes());
    map.insert(
        "content-type",
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    let received = read(SECRET, &map, body.as_bytes()).unwrap();
    assert_eq!(received.trigger, Trigger::Ping);
    let refused = refusal(&map, b"other=1");
    assert_eq!(refused.status, 401, "the signature covers the raw body");
}
