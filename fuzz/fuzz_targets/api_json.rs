//! The API's JSON request bodies, decoded as the handlers decode them
//! (`slipway::server::error::decode_json`) and checked as they check them: operations,
//! variables, tokens, maintenance, and the environment names of a URL. It must never
//! panic; a refusal is a 4xx whose message never quotes a variable's value.
//!
//! The first byte chooses the request; the rest is the body.

#![no_main]

use slipway_fuzz as _;

use axum::response::IntoResponse;
use slipway::server::api::{EnvPath, OperationRequest, VariablesRequest};
use slipway::server::error::{decode_json, ApiError};
use slipway::server::maintenance::MaintenanceRequest;
use slipway::server::tokens::TokenRequest;

fn refused(error: ApiError, body: &[u8]) {
    let message = error.to_string();
    let status = error.into_response().status();
    assert!(status.is_client_error(), "{status}: {message}");
    assert!(message.len() < 1_000, "a {}-byte message", message.len());
    // A variable's value must never come back in an error. Values the corpus marks
    // (`"value":"SECRET..."`) are looked for in the message.
    if let Ok(text) = std::str::from_utf8(body) {
        for (at, _) in text.match_indices("\"value\":\"SECRET") {
            let secret: String = text[at + 9..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            // A key may hold the same text (the fuzzer copies bytes about); keys are
            // named in errors, so the value is only looked for when no key has it.
            let elsewhere = text.replace(&format!("\"value\":\"{secret}"), "");
            if secret.len() > 8 && !elsewhere.contains(&secret) {
                assert!(!message.contains(&secret), "{message}");
            }
        }
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    let result = match choice % 5 {
        0 => decode_json::<OperationRequest>(body).and_then(|r| r.check()),
        1 => decode_json::<VariablesRequest>(body).and_then(|r| r.check()),
        2 => decode_json::<TokenRequest>(body).and_then(|r| r.check()),
        3 => decode_json::<MaintenanceRequest>(body).map(|_| ()),
        _ => decode_json::<EnvPath>(body).and_then(|path| path.key().map(|_| ())),
    };
    if let Err(error) = result {
        refused(error, body);
    }
});
