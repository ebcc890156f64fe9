//! `command: validate` in a pull request workflow (GitHub's example `pull_request`
//! payload): a broken slipway.yml gives `::error file=…,line=…,col=…::` annotations that
//! GitHub shows on the lines of the diff, fails the step, and says so in the outputs and
//! the summary; a valid one passes. No server is involved.

mod action;
mod common;

use action::{fixture, Step};
use common::Workspace;

fn pull_request_step(ws: &Workspace, checkout: &std::path::Path) -> Step {
    let payload = fixture("pull_request/opened.payload.json");
    let head = payload["pull_request"]["head"]["sha"]
        .as_str()
        .expect("head sha")
        .to_owned();
    Step::new(ws, checkout, "pull_request", &payload)
        .var("GITHUB_SHA", &head)
        .var("GITHUB_REF", "refs/pull/2/merge")
        .var("GITHUB_REPOSITORY", "Codertocat/Hello-World")
        .input("command", "validate")
        .input("github-token", "ghs_validate_token_secret")
}

#[test]
fn a_broken_config_is_annotated_on_its_lines() {
    let ws = Workspace::new();
    let checkout = ws.path("checkout");
    std::fs::create_dir_all(&checkout).expect("checkout");
    std::fs::write(
        checkout.join("slipway.yml"),
        "app: shop\nservices:\n  web:\n    command: exec python3 app.py\n    instances: many\n    stop_timout: 10s\n",
    )
    .expect("slipway.yml");

    let step = pull_request_step(&ws, &checkout);
    let ran = step.run();
    assert_eq!(ran.code, 1, "{ran}");
    action::assert_masked_first(&ran, "ghs_validate_token_secret");
    let errors: Vec<&str> = ran
        .stdout
        .lines()
        .filter(|l| l.starts_with("::error file=slipway.yml,line="))
        .collect();
    assert!(!errors.is_empty(), "{ran}");
    assert!(
        errors[0]
            .starts_with("::error file=slipway.yml,line=5,col=16::services.web.instances: `many`"),
        "{errors:?}"
    );
    // The message is escaped as the runner wants: one line per annotation.
    assert!(errors.iter().all(|l| !l.contains('\r')));

    let outputs = step.outputs();
    assert_eq!(outputs["status"], "invalid", "{outputs:?}");
    assert_eq!(outputs["operation-id"], "");
    let summary = step.summary();
    assert!(summary.contains("Slipway validate: invalid"), "{summary}");
    assert!(summary.contains("- `slipway.yml:"), "{summary}");
}

#[test]
fn a_config_in_a_folder_is_annotated_with_its_repository_path() {
    let ws = Workspace::new();
    let checkout = ws.path("checkout");
    std::fs::create_dir_all(checkout.join("deploy")).expect("checkout");
    std::fs::write(
        checkout.join("deploy/slipway.yml"),
        "app: shop\nservces:\n  web:\n    command: exec python3 app.py\n",
    )
    .expect("slipway.yml");
    let step = pull_request_step(&ws, &checkout).input("config", "deploy/slipway.yml");
    let ran = step.run();
    assert_eq!(ran.code, 1, "{ran}");
    assert!(
        ran.stdout
            .lines()
            .any(|l| l.starts_with("::error file=deploy/slipway.yml,line=2,col=1::")),
        "{ran}"
    );
}

#[test]
fn a_valid_config_passes() {
    let ws = Workspace::new();
    let checkout = ws.path("checkout");
    common::App::new("shop", "1").write(&checkout);
    let step = pull_request_step(&ws, &checkout);
    let ran = step.run();
    assert_eq!(ran.code, 0, "{ran}");
    assert!(!ran.stdout.contains("::error"), "{ran}");
    assert_eq!(step.outputs()["status"], "valid");
    assert!(
        step.summary().contains("✅ Slipway validate: valid"),
        "{}",
        step.summary()
    );
}

#[test]
fn an_unknown_command_fails_the_step() {
    let ws = Workspace::new();
    let checkout = ws.path("checkout");
    common::App::new("shop", "1").write(&checkout);
    let step = pull_request_step(&ws, &checkout).input("command", "destroy");
    let ran = step.run();
    assert_eq!(ran.code, 1, "{ran}");
    assert!(
        ran.stdout
            .contains("::error::`command: destroy` is not one the action knows"),
        "{ran}"
    );
    assert_eq!(step.outputs()["status"], "error");
}
