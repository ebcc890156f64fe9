//! End to end: lifecycle hooks — their order and variables, the build cache, build reuse
//! on a redeploy, and what a failing hook does to a deploy. The hooks append lines to a
//! trace file outside the app, which the tests read. Hooks that hang, flood their output
//! or fork daemons are in `faulty_apps.rs`.

mod common;

use std::path::Path;

use common::app::{git_commit_all, parse_trace, trace_command, yaml_list, yaml_script, yaml_str};
use common::{operations, state_of, App, Server, Workspace};

const HOST: &str = "hooks-stage.localhost";

fn deploy(ws: &Workspace, server: &Server, dir: &Path) -> common::CliOutput {
    ws.cli(server, &["deploy", dir.to_str().unwrap(), "--env", "stage"])
}

fn serving_version(server: &Server) -> Option<String> {
    server
        .app_json(HOST)
        .and_then(|v| v["version"].as_str().map(str::to_owned))
}

/// An app whose every hook traces itself, and whose build counts builds in the cache.
fn traced_app(trace: &Path) -> App {
    let mut app = App::new("hooks", "one");
    app.instances = 2;
    let build = trace_command("build", trace);
    app.build_hook = Some(yaml_script(&[
        "set -e",
        "n=$(cat \"$SLIPWAY_CACHE_DIR/builds\" 2>/dev/null || echo 0)",
        "echo $((n + 1)) > \"$SLIPWAY_CACHE_DIR/builds\"",
        &build,
    ]));
    for hook in ["before_release", "pre_start", "deploy", "post_deploy"] {
        app = app.hook(hook, yaml_str(&trace_command(hook, trace)));
    }
    app.hook(
        "after_deploy_success",
        yaml_list(&[&trace_command("after_deploy_success", trace)]),
    )
}

#[test]
fn hooks_run_in_order_with_their_variables_and_builds_are_reused() {
    let ws = Workspace::new();
    let server = ws.serve();
    let trace = ws.path("trace");
    let dir = ws.path("hooks");
    let app = traced_app(&trace);
    app.write(&dir);
    let commit = git_commit_all(&dir, "v1");
    deploy(&ws, &server, &dir).ok();

    let lines = parse_trace(&ws.lines("trace"));
    let labels: Vec<&str> = lines.iter().map(|l| l.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "build",
            "before_release",
            "pre_start",
            "pre_start",
            "deploy",
            "post_deploy",
            "after_deploy_success"
        ]
    );
    for line in &lines {
        assert_eq!(line.var("SLIPWAY_APP"), "hooks", "{}", line.label);
        assert_eq!(line.var("SLIPWAY_ENVIRONMENT"), "stage", "{}", line.label);
        assert_eq!(line.var("SLIPWAY_COMMIT"), commit, "{}", line.label);
        assert_eq!(line.var("SLIPWAY_OPERATION"), "deploy", "{}", line.label);
    }
    let build = &lines[0];
    let data = ws.data_dir();
    assert!(
        Path::new(build.var("SLIPWAY_APP_DIR")).starts_with(&data),
        "{}",
        build.var("SLIPWAY_APP_DIR")
    );
    let cache = Path::new(build.var("SLIPWAY_CACHE_DIR")).to_owned();
    assert!(cache.starts_with(&data), "{}", cache.display());
    for line in &lines[1..] {
        assert_eq!(line.var("SLIPWAY_RELEASE"), "v1", "{}", line.label);
        assert_eq!(line.var("SLIPWAY_SERVICE"), "web", "{}", line.label);
        assert_eq!(line.var("SLIPWAY_CONTAINER_SIZE"), "512", "{}", line.label);
        assert_eq!(
            line.var("SLIPWAY_APP_DIR"),
            "",
            "only the build gets SLIPWAY_APP_DIR ({})",
            line.label
        );
    }
    let ports: Vec<&str> = lines[2..4].iter().map(|l| l.var("PORT")).collect();
    assert!(
        ports.iter().all(|p| p.parse::<u16>().is_ok()) && ports[0] != ports[1],
        "pre_start PORTs: {ports:?}"
    );
    // The web process itself gets the same variables.
    let served = server.app_json(HOST).expect("the app answers");
    assert_eq!(served["env"]["SLIPWAY_SERVICE"], "web");
    assert_eq!(served["env"]["SLIPWAY_RELEASE"], "v1");
    assert_eq!(served["env"]["SLIPWAY_COMMIT"], commit.as_str());
    assert!(served["env"]["PORT"]
        .as_str()
        .is_some_and(|p| p.parse::<u16>().is_ok()));
    let builds = || {
        std::fs::read_to_string(cache.join("builds"))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    assert_eq!(builds(), "1");

    // A changed commit builds again, and the cache of the first build is still there.
    app.clone().version("two").write(&dir);
    let commit = git_commit_all(&dir, "v2");
    deploy(&ws, &server, &dir).ok();
    assert_eq!(
        builds(),
        "2",
        "the build cache did not survive into the next build"
    );
    assert_eq!(serving_version(&server).as_deref(), Some("two"));

    // The same commit again: no build, no new release, only post_deploy (and the success hook).
    let before = ws.lines("trace").len();
    let again = deploy(&ws, &server, &dir).ok();
    assert!(again.stdout.contains("reusing the build"), "{again}");
    let new = parse_trace(&ws.lines("trace")[before..]);
    let labels: Vec<&str> = new.iter().map(|l| l.label.as_str()).collect();
    assert_eq!(labels, ["post_deploy", "after_deploy_success"]);
    assert_eq!(new[0].var("SLIPWAY_RELEASE"), "v2");
    assert_eq!(new[0].var("SLIPWAY_COMMIT"), commit);
    assert_eq!(builds(), "2");

    // `slipway redeploy` too.
    let before = ws.lines("trace").len();
    ws.cli(&server, &["redeploy", "--app", "hooks", "--env", "stage"])
        .ok();
    let new = parse_trace(&ws.lines("trace")[before..]);
    let labels: Vec<&str> = new.iter().map(|l| l.label.as_str()).collect();
    assert_eq!(labels, ["post_deploy", "after_deploy_success"]);
    assert_eq!(new[0].var("SLIPWAY_OPERATION"), "redeploy");
    assert_eq!(builds(), "2");
    assert_eq!(serving_version(&server).as_deref(), Some("two"));
}

#[test]
fn a_string_hook_fails_on_its_last_command_unless_set_e_and_a_list_stops_at_its_first_failure() {
    let ws = Workspace::new();
    let server = ws.serve();
    let trace = ws.path("trace").display().to_string();
    let dir = ws.path("hooks");

    let lenient = yaml_script(&["false", &format!("echo string-went-on >> {trace}")]);
    App::new("hooks", "one")
        .hook("before_release", lenient)
        .write(&dir);
    deploy(&ws, &server, &dir).ok();
    assert_eq!(ws.lines("trace"), ["string-went-on"]);

    let strict = yaml_script(&["set -e", "false", &format!("echo after-set-e >> {trace}")]);
    App::new("hooks", "two")
        .hook("before_release", strict)
        .write(&dir);
    let failed = deploy(&ws, &server, &dir);
    assert_ne!(failed.code, 0, "{failed}");
    assert!(failed.stdout.contains("before_release failed"), "{failed}");

    let list = yaml_list(&[
        &format!("echo first >> {trace}"),
        "false",
        &format!("echo third >> {trace}"),
    ]);
    App::new("hooks", "three")
        .hook("before_release", list)
        .write(&dir);
    let failed = deploy(&ws, &server, &dir);
    assert_ne!(failed.code, 0, "{failed}");
    assert!(
        failed.stdout.contains("command 2 of 3 exited with code 1"),
        "{failed}"
    );

    assert_eq!(ws.lines("trace"), ["string-went-on", "first"]);
    let states: Vec<String> = operations(&ws, &server, "hooks", "stage")
        .iter()
        .map(|o| state_of(o).to_owned())
        .collect();
    assert_eq!(states, ["succeeded", "failed", "failed"]);
    assert_eq!(
        serving_version(&server).as_deref(),
        Some("one"),
        "a failed before_release changed what serves"
    );
}

#[test]
fn configuration_variables_reach_hooks_and_the_app_but_never_the_log() {
    let ws = Workspace::new();
    let server = ws.serve();
    let secret = "s3cr3t-value-9f2c";
    ws.cli(
        &server,
        &[
            "config",
            "set",
            &format!("API_KEY={secret}"),
            "--app",
            "hooks",
            "--env",
            "stage",
        ],
    )
    .ok();
    let listed = ws
        .cli(
            &server,
            &["config", "list", "--app", "hooks", "--env", "stage"],
        )
        .ok();
    assert!(
        listed.stdout.contains("API_KEY") && !listed.stdout.contains(secret),
        "{listed}"
    );

    let trace = ws.path("trace").display().to_string();
    let dir = ws.path("hooks");
    let hook = format!("echo \"key is $API_KEY\"; echo \"$API_KEY\" >> {trace}");
    App::new("hooks", "one")
        .hook("before_release", yaml_str(&hook))
        .write(&dir);
    let out = deploy(&ws, &server, &dir).ok();
    assert_eq!(
        ws.lines("trace"),
        [secret],
        "the hook did not get the variable"
    );
    assert!(
        !out.stdout.contains(secret) && !out.stderr.contains(secret),
        "the secret is in the deploy's output:\n{out}"
    );
    let id = operations(&ws, &server, "hooks", "stage")[0]["id"]
        .as_i64()
        .unwrap();
    let log = common::log_of(&ws, &server, id);
    assert!(log.contains("key is ") && !log.contains(secret), "{log}");
}
