//! `trigger::read` over the real payloads of `shared/fixtures/github-webhooks`.

use super::*;

fn fixture(path: &str) -> Value {
    let file = format!(
        "{}/../shared/fixtures/github-webhooks/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn read_fixture(event: &str, path: &str) -> Trigger {
    read(event, &fixture(path)).expect("the fixture is understood")
}

fn repo(full_name: &str, installation: Option<i64>) -> Repository {
    Repository {
        full_name: full_name.into(),
        installation,
    }
}

#[test]
fn a_branch_push_deploys_its_after_sha() {
    assert_eq!(
        read_fixture("push", "push/octokit-webhooks.js/push-payload.json"),
        Trigger::BranchPush {
            repo: repo("baxterthehacker/public-repo", None),
            branch: "changes".into(),
            sha: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c".into()
        }
    );
    match read_fixture("push", "push/with-new-branch.payload.json") {
        Trigger::BranchPush { branch, sha, .. } => {
            assert_eq!(branch, "master");
            assert!(sha.starts_with("6113728f"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_tag_push_and_a_tag_creation_deploy_the_tag() {
    assert_eq!(
        read_fixture("push", "push/ghes-35/payload.json"),
        Trigger::Tag {
            repo: repo("Codertocat/Hello-World", Some(5)),
            tag: "simple-tag".into(),
            sha: Some("6113728f27ae82c7b1a177c8d03f9e96e0adf246".into())
        }
    );
    assert_eq!(
        read_fixture("create", "create/payload.json"),
        Trigger::Tag {
            repo: repo("Codertocat/Hello-World", None),
            tag: "simple-tag".into(),
            sha: None
        }
    );
}

#[test]
fn deleted_refs_deploy_nothing() {
    for file in [
        "push/payload.json",
        "push/1.payload.json",
        "push/with-installation.payload.json",
        "push/with-organization.payload.json",
    ] {
        assert!(
            matches!(read_fixture("push", file), Trigger::Deleted { .. }),
            "{file}"
        );
    }
    assert!(matches!(
        read_fixture("delete", "delete/payload.json"),
        Trigger::Ignored(_)
    ));
}

#[test]
fn pull_requests_validate_their_head_commit() {
    for (file, _) in [
        ("pull_request/opened.payload.json", 0),
        ("pull_request/synchronize.payload.json", 0),
        ("pull_request/reopened.payload.json", 0),
        ("pull_request/opened.with-null-body.json", 0),
    ] {
        assert_eq!(
            read_fixture("pull_request", file),
            Trigger::PullRequest {
                repo: repo("Codertocat/Hello-World", Some(1)),
                number: 2,
                head_sha: "ec26c3e57ca3a959ca5aad62de7213c562f8c821".into(),
                from_fork: false
            },
            "{file}"
        );
    }
    assert!(matches!(
        read_fixture("pull_request", "pull_request/closed.payload.json"),
        Trigger::PullRequestClosed { number: 2, .. }
    ));
}

#[test]
fn a_pull_request_from_another_repository_is_a_fork() {
    let mut payload = fixture("pull_request/opened.payload.json");
    payload["pull_request"]["head"]["repo"]["full_name"] = "mallory/Hello-World".into();
    assert!(matches!(
        read("pull_request", &payload),
        Ok(Trigger::PullRequest {
            from_fork: true,
            ..
        })
    ));
    payload["pull_request"]["head"]["repo"] = Value::Null;
    assert!(matches!(
        read("pull_request", &payload),
        Ok(Trigger::PullRequest {
            from_fork: true,
            ..
        })
    ));
}

#[test]
fn check_runs_of_other_apps_are_ignored_and_slipways_rerun_or_roll_back() {
    assert!(matches!(
        read_fixture("check_run", "check_run/rerequested.payload.json"),
        Trigger::Ignored(_)
    ));
    assert!(matches!(
        read_fixture("check_run", "check_run/requested_action.payload.json"),
        Trigger::Ignored(_)
    ));

    let mut rerun = fixture("check_run/rerequested.payload.json");
    rerun["check_run"]["name"] = "slipway/staging".into();
    assert_eq!(
        read("check_run", &rerun),
        Ok(Trigger::Rerun {
            repo: repo("github/hello-world", Some(1)),
            check_run_id: 4,
            name: "slipway/staging".into(),
            head_sha: "d6fde92930d4715a2b49857d24b940956b26d2d3".into()
        })
    );
    let mut action = fixture("check_run/requested_action.payload.json");
    action["check_run"]["name"] = "slipway/production".into();
    assert!(
        matches!(read("check_run", &action), Ok(Trigger::Ignored(_))),
        "`lgtm|26764` is not ours"
    );
    action["requested_action"]["identifier"] = ROLLBACK_ACTION.into();
    assert!(matches!(
        read("check_run", &action),
        Ok(Trigger::Rollback {
            check_run_id: 1494503112,
            ..
        })
    ));
}

#[test]
fn deployments_deploy_their_sha_unless_slipway_created_them() {
    assert_eq!(
        read_fixture("deployment", "deployment/payload.json"),
        Trigger::Deployment {
            repo: repo("Codertocat/Hello-World", None),
            environment: "production".into(),
            sha: "f95f852bd8fca8fcc58a9a2d6c842781e32a215e".into()
        }
    );
    let mut ours = fixture("deployment/payload.json");
    ours["deployment"]["payload"] = serde_json::json!({ DEPLOYMENT_MARKER: 7 });
    assert!(matches!(read("deployment", &ours), Ok(Trigger::Ignored(_))));
}

#[test]
fn other_events_are_ignored_and_ping_is_ping() {
    assert_eq!(read_fixture("ping", "ping/payload.json"), Trigger::Ping);
    for (event, file) in [
        ("check_suite", "check_suite/requested.payload.json"),
        ("installation", "installation/created.payload.json"),
        ("deployment_status", "deployment_status/payload.json"),
        ("workflow_run", "workflow_run/completed.payload.json"),
        ("status", "status/payload.json"),
    ] {
        assert!(
            matches!(read_fixture(event, file), Trigger::Ignored(_)),
            "{event}"
        );
    }
}

#[test]
fn a_payload_missing_what_its_event_needs_is_an_error() {
    assert!(read("push", &serde_json::json!({ "ref": "refs/heads/main" })).is_err());
}

#[test]
fn summaries_name_the_repository_and_head_sha() {
    let (action, repository, sha, installation) =
        summary(&fixture("pull_request/synchronize.payload.json"));
    assert_eq!(action.as_deref(), Some("synchronize"));
    assert_eq!(repository.as_deref(), Some("Codertocat/Hello-World"));
    assert_eq!(
        sha.as_deref(),
        Some("ec26c3e57ca3a959ca5aad62de7213c562f8c821")
    );
    assert_eq!(installation, Some(1));
}
