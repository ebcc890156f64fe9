//! The config reader on any text: `slipway.yml`, a `Procfile` and an `.aptible.yml`,
//! alone or together. It must never panic, and must finish in bounded time and memory
//! (libFuzzer's -timeout and -rss_limit_mb, and `slipway_fuzz::Guard`'s allocation
//! cap); every error must print as `FILE:LINE:COL: message`, short, about one of the
//! files it was given.
//!
//! The first byte chooses the files; the rest is split on NUL bytes into their texts.

#![no_main]

use slipway_fuzz as _;

use slipway::config::{parse_sources, ConfigSources, SourceText};

const NAMES: [&str; 3] = ["slipway.yml", "Procfile", ".aptible.yml"];

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut parts = text.split('\0');
    let mut next = |bit: u8, name: &str| {
        (choice & bit != 0 || choice & 7 == 0 && bit == 1)
            .then(|| SourceText::new(name, parts.next().unwrap_or_default()))
    };
    let sources = ConfigSources {
        slipway_yml: next(1, NAMES[0]),
        procfile: next(2, NAMES[1]),
        aptible_yml: next(4, NAMES[2]),
        missing_file_name: NAMES[0].to_owned(),
    };
    if let Err(errors) = parse_sources(&sources, "shop") {
        assert!(!errors.0.is_empty(), "an error without a message");
        for error in &errors.0 {
            assert!(NAMES.contains(&error.file.as_str()), "{error}");
            assert!(error.line >= 1 && error.column >= 1, "{error}");
            assert!(!error.message.is_empty(), "{error}");
            // Values are quoted shortened: no message echoes a huge input back.
            assert!(
                error.message.len() < 1_000,
                "a {}-byte message",
                error.message.len()
            );
        }
    }
});
