//! The limits GitHub enforces, on what `render` produces.

use super::*;
use crate::pipeline::model::Step;

fn line(seq: i64, text: &str) -> LogLine {
    LogLine {
        seq,
        at: 0,
        text: text.to_owned(),
    }
}

#[test]
fn descriptions_never_exceed_140_characters() {
    let long = "é".repeat(500);
    let status = commit_status("failure", &long, "http://x/log", "slipway/staging");
    assert_eq!(
        status["description"].as_str().map(|d| d.chars().count()),
        Some(140)
    );
    let deployment = deployment_status("failure", &long, "http://x/log", "http://app");
    assert_eq!(
        deployment["description"]
            .as_str()
            .map(|d| d.chars().count()),
        Some(140)
    );
    assert_eq!(
        commit_status("success", "ok", "u", "c")["description"],
        "ok"
    );
}

#[test]
fn the_log_tail_fits_githubs_limit_and_keeps_the_end() {
    let lines: Vec<LogLine> = (0..20_000)
        .map(|i| line(i, &format!("line {i} of a long build")))
        .collect();
    let tail = log_tail(&lines);
    assert!(tail.chars().count() <= MAX_OUTPUT_CHARS);
    assert!(tail.contains("line 19999 of a long build"));
    assert!(!tail.contains("line 0 of"));
    assert!(log_tail(&[line(1, "short")]).contains("short"));
}

#[test]
fn steps_become_a_table_with_durations() {
    let steps = vec![
        StepRecord {
            step: Step::Build,
            status: StepStatus::Succeeded,
            started_at: 0,
            finished_at: Some(2_000),
            message: None,
        },
        StepRecord {
            step: Step::BeforeRelease,
            status: StepStatus::Failed,
            started_at: 2_000,
            finished_at: Some(2_500),
            message: Some("exit 1".into()),
        },
    ];
    let table = steps_table(&steps);
    assert!(table.contains("| build | ✅ succeeded | 2s |"), "{table}");
    assert!(
        table.contains("| before release | ❌ failed — exit 1 | 500ms |"),
        "{table}"
    );
}

#[test]
fn every_config_error_in_a_log_becomes_an_annotation() {
    let lines: Vec<LogLine> = (0..80)
        .map(|i| line(i, &format!("/data/sources/git-abc/slipway.yml:{}:3: unknown key `foo`; allowed: app, services", i + 1)))
        .collect();
    let annotations = annotations_from_log(&lines);
    assert_eq!(annotations.len(), 80);
    assert_eq!(annotations[0]["path"], "slipway.yml");
    assert_eq!(annotations[0]["start_line"], 1);
    assert_eq!(annotations[0]["start_column"], 3);
    assert_eq!(annotations[0]["annotation_level"], "failure");
    assert_eq!(annotations[79]["start_line"], 80);
    assert!(annotations_from_log(&[line(1, "==> deploy started")]).is_empty());
}

fn numbered_annotations(count: usize) -> Vec<Value> {
    (1..=count)
        .map(|l| annotation("slipway.yml", l, 1, "wrong"))
        .collect()
}

#[test]
fn annotations_go_50_per_request_and_the_rest_in_updates_of_the_same_run() {
    let output = json!({ "title": "t", "summary": "s", "text": "log" });
    let (first, updates) = with_annotation_batches(output, numbered_annotations(120));
    assert_eq!(
        first["text"], "log",
        "the first body keeps the whole output"
    );
    let sizes: Vec<usize> = std::iter::once(&first)
        .chain(updates.iter().map(|u| &u["output"]))
        .map(|o| o["annotations"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(sizes, [50, 50, 20]);
    for update in &updates {
        // GitHub requires a summary in every output it is sent.
        assert_eq!(update["output"]["title"], "t");
        assert_eq!(update["output"]["summary"], "s");
        assert!(update.get("status").is_none() && update.get("conclusion").is_none());
    }
    let lines: Vec<i64> = std::iter::once(&first)
        .chain(updates.iter().map(|u| &u["output"]))
        .flat_map(|o| o["annotations"].as_array().cloned().unwrap_or_default())
        .map(|a| a["start_line"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(
        lines,
        (1..=120).collect::<Vec<i64>>(),
        "all, once, in order"
    );

    let (first, updates) =
        with_annotation_batches(json!({ "summary": "s" }), numbered_annotations(50));
    assert_eq!(first["annotations"].as_array().map(Vec::len), Some(50));
    assert!(updates.is_empty());
    let (first, updates) = with_annotation_batches(json!({ "summary": "s" }), Vec::new());
    assert!(first.get("annotations").is_none() && updates.is_empty());
}

#[test]
fn the_rollback_action_fits_githubs_limits() {
    let action = rollback_action();
    assert!(action["label"].as_str().is_some_and(|l| l.len() <= 20));
    assert!(action["description"]
        .as_str()
        .is_some_and(|d| d.len() <= 40));
    assert!(action["identifier"].as_str().is_some_and(|i| i.len() <= 20));
}

#[test]
fn timestamps_are_iso_8601() {
    assert_eq!(timestamp(1_700_000_000_000), "2023-11-14T22:13:20Z");
}
