//! A webhook delivery read from its headers and raw body: pure, so that every way a
//! request can be wrong is decided in one place, unit-tested and fuzzed
//! (`fuzz/fuzz_targets/webhook.rs`). The server's handler only reads the body within its
//! limits, calls `read`, and stores what it returns.
//!
//! The order is the contract's: the signature over the raw body first, before any other
//! header or byte of the payload is looked at; then the headers GitHub always sends;
//! then the payload, which must be a JSON object that its event can be read from.

use axum::http::HeaderMap;
use serde_json::Value;

use crate::github::signature;
use crate::github::trigger::{self, Trigger};

/// A delivery that passed every check.
#[derive(Debug)]
pub struct Received {
    /// `X-GitHub-Delivery`.
    pub id: String,
    /// `X-GitHub-Event`.
    pub event: String,
    pub payload: Value,
    /// The payload's JSON text, as stored.
    pub json: String,
    /// What it asks for (`Trigger::Ignored` for events Slipway does not act on).
    pub trigger: Trigger,
}

/// Why a delivery is refused: the status to answer and a sentence for the sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

impl Refusal {
    fn new(status: u16, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
        }
    }
}

/// The longest `X-GitHub-Delivery` kept (GitHub's are 36-character GUIDs).
pub const MAX_DELIVERY_ID: usize = 100;
/// The longest `X-GitHub-Event` (GitHub's longest is under 40 characters).
pub const MAX_EVENT_NAME: usize = 64;

/// Reads a delivery: `Ok` when it is GitHub's and well formed, `Err` with what to answer.
pub fn read(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<Received, Refusal> {
    verify_signature(secret, headers, body)?;
    let event = single_header(headers, "x-github-event")?;
    let id = single_header(headers, "x-github-delivery")?;
    if event.len() > MAX_EVENT_NAME
        || !event
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(Refusal::new(
            400,
            "X-GitHub-Event is not an event name (lowercase letters, digits and `_`)",
        ));
    }
    if id.len() > MAX_DELIVERY_ID || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Refusal::new(
            400,
            "X-GitHub-Delivery is not a delivery id (at most 100 visible ASCII characters)",
        ));
    }
    let json = payload_text(headers, body)?;
    let payload = match serde_json::from_str::<Value>(&json) {
        Ok(payload @ Value::Object(_)) => payload,
        Ok(_) => return Err(Refusal::new(400, "the payload is not a JSON object")),
        Err(error) if error.to_string().contains("recursion limit") => {
            return Err(Refusal::new(
                400,
                "the payload nests deeper than 128 levels; GitHub's never do",
            ))
        }
        Err(_) => return Err(Refusal::new(400, "the payload is not valid JSON")),
    };
    let trigger = trigger::read(event, &payload)
        .map_err(|why| Refusal::new(400, format!("a `{event}` payload must say more: {why}")))?;
    Ok(Received {
        id: id.to_owned(),
        event: event.to_owned(),
        payload,
        json,
        trigger,
    })
}

/// `X-Hub-Signature-256` over the raw body; every refusal says what to fix.
fn verify_signature(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<(), Refusal> {
    let mut values = headers.get_all("x-hub-signature-256").iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        if headers.get("x-hub-signature-256").is_some() {
            return Err(Refusal::new(
                401,
                "X-Hub-Signature-256 is sent more than once; send it once",
            ));
        }
        if headers.contains_key("x-hub-signature") {
            return Err(Refusal::new(
                401,
                "only X-Hub-Signature (SHA-1) was sent; Slipway checks X-Hub-Signature-256 (HMAC-SHA256), which GitHub sends when the webhook has a secret",
            ));
        }
        return Err(Refusal::new(
            401,
            "X-Hub-Signature-256 is missing: give the webhook a secret, the one Slipway has in --github-webhook-secret",
        ));
    };
    let well_formed = value
        .to_str()
        .ok()
        .map(str::trim)
        .and_then(|v| v.strip_prefix("sha256="))
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    if !well_formed {
        return Err(Refusal::new(
            401,
            "X-Hub-Signature-256 is not `sha256=` and 64 hex digits",
        ));
    }
    if !signature::verify(secret, body, value.to_str().ok()) {
        return Err(Refusal::new(
            401,
            "X-Hub-Signature-256 does not match the body: the webhook's secret is not the one in --github-webhook-secret, or the body was changed",
        ));
    }
    Ok(())
}

/// A header that must be there once, as text.
fn single_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, Refusal> {
    let shown = match name {
        "x-github-event" => "X-GitHub-Event",
        "x-github-delivery" => "X-GitHub-Delivery",
        other => other,
    };
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Err(Refusal::new(
            400,
            format!("{shown} is missing; GitHub sends it with every delivery"),
        )),
        (Some(_), Some(_)) => Err(Refusal::new(
            400,
            format!("{shown} is sent more than once; send it once"),
        )),
        (Some(value), None) => match value.to_str() {
            Ok(text) if !text.trim().is_empty() => Ok(text.trim()),
            _ => Err(Refusal::new(400, format!("{shown} is empty or not text"))),
        },
    }
}

/// The JSON text: the body, or the `payload` field of a form-encoded delivery (the
/// webhook's other content type).
fn payload_text(headers: &HeaderMap, body: &[u8]) -> Result<String, Refusal> {
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if form {
        return match form_urlencoded::parse(body).find(|(key, _)| key == "payload") {
            Some((_, payload)) => Ok(payload.into_owned()),
            None => Err(Refusal::new(
                400,
                "a form-encoded delivery needs a `payload` field",
            )),
        };
    }
    match std::str::from_utf8(body) {
        Ok(text) => Ok(text.to_owned()),
        Err(_) => Err(Refusal::new(400, "the body is not UTF-8 JSON")),
    }
}

#[cfg(test)]
#[path = "delivery_tests.rs"]
mod tests;
