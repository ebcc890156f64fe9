//! End to end: a wrong configuration is refused before anything runs, naming its file,
//! line and column — by `slipway validate`, and by `slipway deploy` before it sends a
//! byte to the server.

mod common;

use common::{operations, Workspace};

const UNKNOWN_KEY: &str =
    "app: bad\nservices:\n  web:\n    command: exec python3 app.py\n    instancez: 2\n";
const TOO_LONG_STOP: &str =
    "app: bad\nservices:\n  web:\n    command: exec python3 app.py\n    stop_timeout: 16m\n";

fn write_config(ws: &Workspace, folder: &str, text: &str) -> std::path::PathBuf {
    let dir = ws.path(folder);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("slipway.yml"), text).unwrap();
    dir.join("slipway.yml")
}

#[test]
fn validate_names_the_file_line_and_column_of_an_unknown_key() {
    let ws = Workspace::new();
    let file = write_config(&ws, "unknown", UNKNOWN_KEY);
    let out = ws.cli_offline(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out}");
    let expected = format!("{}:5:5: ", file.display());
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with(&expected))
        .unwrap_or_else(|| panic!("no `{expected}` line:\n{out}"));
    assert!(line.contains("unknown key `instancez`"), "{line}");
    assert!(
        line.contains("instances"),
        "the message should say what is allowed: {line}"
    );
}

#[test]
fn validate_refuses_a_stop_timeout_over_fifteen_minutes() {
    let ws = Workspace::new();
    let file = write_config(&ws, "slow", TOO_LONG_STOP);
    let out = ws.cli_offline(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out}");
    let expected = format!("{}:5:19: ", file.display());
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with(&expected))
        .unwrap_or_else(|| panic!("no `{expected}` line:\n{out}"));
    assert!(line.contains("15m"), "{line}");
}

#[test]
fn validate_accepts_the_examples() {
    let ws = Workspace::new();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for file in [
        "hello/slipway.yml",
        "annotated/slipway.yml",
        "worker/slipway.yml",
        "procfile/Procfile",
    ] {
        let path = examples.join(file);
        let out = ws.cli_offline(&["validate", path.to_str().unwrap()]);
        assert_eq!(out.code, 0, "{file}: {out}");
    }
}

#[test]
fn deploy_of_a_wrong_config_is_refused_before_anything_is_sent() {
    let ws = Workspace::new();
    let server = ws.serve();
    for (folder, text) in [("unknown", UNKNOWN_KEY), ("slow", TOO_LONG_STOP)] {
        let file = write_config(&ws, folder, text);
        std::fs::write(file.with_file_name("app.py"), common::app::APP_PY).unwrap();
        let dir = file.parent().unwrap();
        let out = ws.cli(&server, &["deploy", dir.to_str().unwrap(), "--env", "live"]);
        assert_ne!(out.code, 0, "{out}");
        assert!(
            out.stderr.contains("slipway.yml:5:"),
            "the refusal should name the file and line:\n{out}"
        );
    }
    let all = ws.cli(&server, &["ops", "--json"]).ok().json();
    assert_eq!(
        all.as_array().map(Vec::len),
        Some(0),
        "the server got an operation: {all}"
    );
    assert!(operations(&ws, &server, "bad", "live").is_empty());
}
