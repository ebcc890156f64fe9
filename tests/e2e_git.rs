//! End to end: `slipway deploy --git URL --ref REF` fetches a repository and deploys a
//! branch, a tag or a commit — including a commit that only a pull request's ref holds,
//! as GitHub keeps a fork's head (`refs/pull/<n>/head`).

mod common;

use common::{App, Workspace};

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn deploys_a_branch_and_a_commit_that_only_a_pull_request_ref_holds() {
    let ws = Workspace::new();
    let server = ws.serve();
    let work = ws.path("work");
    App::new("gitapp", "main-version").write(&work);
    let main = common::app::git_commit_all(&work, "main");
    let bare = ws.path("repo.git");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "--quiet", "--bare"]);
    git(
        &work,
        &[
            "push",
            "--quiet",
            bare.to_str().unwrap(),
            "HEAD:refs/heads/main",
        ],
    );
    // A fork's commit: on no branch or tag, only under refs/pull/7/head.
    App::new("gitapp", "fork-version").write(&work);
    let fork = common::app::git_commit_all(&work, "from a fork");
    git(
        &work,
        &[
            "push",
            "--quiet",
            bare.to_str().unwrap(),
            "HEAD:refs/pull/7/head",
        ],
    );
    let url = format!("file://{}", bare.display());

    ws.cli(
        &server,
        &[
            "deploy", "--git", &url, "--ref", "main", "--app", "gitapp", "--env", "prod",
        ],
    )
    .ok();
    let app = server
        .app_json("gitapp-prod.localhost")
        .expect("main answers");
    assert_eq!(app["version"], "main-version");
    assert_eq!(app["env"]["SLIPWAY_COMMIT"], main.as_str());

    ws.cli(
        &server,
        &[
            "deploy", "--git", &url, "--ref", &fork, "--app", "gitapp", "--env", "prod",
        ],
    )
    .ok();
    let app = server
        .app_json("gitapp-prod.localhost")
        .expect("the fork's commit answers");
    assert_eq!(app["version"], "fork-version");
    assert_eq!(app["env"]["SLIPWAY_COMMIT"], fork.as_str());
}
