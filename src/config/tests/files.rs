//! Loading from disk: the annotated example, Procfile-only apps, `.aptible.yml` hooks,
//! and the limits that protect the server from hostile files.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use super::super::model::*;
use super::*;
use crate::ids::ServiceName;

fn write(dir: &Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).unwrap();
}

fn load_err(dir: &Path) -> String {
    load_dir(dir, "shop").unwrap_err().to_string()
}

#[test]
fn the_annotated_example_loads_with_every_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/annotated/slipway.yml");
    let config = load_file(&path, "ignored").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.app.as_str(), "shop");
    let names: Vec<&str> = config.services.keys().map(|s| s.as_str()).collect();
    assert_eq!(names, vec!["cache", "web", "worker"]);

    let web = &config.services[&ServiceName::new("web")];
    assert_eq!(web.command, "exec python3 app.py");
    assert_eq!(
        (web.instances, web.size_mb, web.zero_downtime),
        (2, 512, true)
    );
    let http = web.http.as_ref().unwrap();
    assert_eq!(http.health.path, "/healthcheck");
    assert!(http.health.strict);
    assert_eq!(http.watch, Duration::from_secs(30));

    let worker = &config.services[&ServiceName::new("worker")];
    assert_eq!(worker.stop_timeout, Duration::from_secs(120));
    assert!(!worker.zero_downtime);
    assert_eq!(
        worker.health,
        Some(HealthCheck::Command {
            command: "python3 worker.py --check".into(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(3),
            deadline: Duration::from_secs(120),
        })
    );
    assert!(matches!(
        config.services[&ServiceName::new("cache")].health,
        Some(HealthCheck::Tcp { port: 9000, .. })
    ));

    let build = config.build.hook.as_ref().unwrap();
    assert_eq!(
        build.body,
        HookBody::Script("set -e\npip install -r requirements.txt --target vendor\n".into())
    );
    assert_eq!(build.timeout, Duration::from_secs(30 * 60));
    assert_eq!(config.build.dockerfile.as_deref(), Some("Dockerfile"));
    assert_eq!(
        config.image.as_deref(),
        Some("registry.example.com/acme/shop")
    );

    let hooks = &config.hooks;
    assert_eq!(
        hooks.before_release.as_ref().unwrap().body,
        HookBody::Commands(vec!["python3 manage.py migrate".into()])
    );
    assert_eq!(
        hooks.deploy.as_ref().unwrap().timeout,
        Duration::from_secs(20)
    );
    assert_eq!(
        hooks.post_deploy.as_ref().unwrap().timeout,
        Duration::from_secs(600)
    );
    assert_eq!(hooks.deploy_hold, Duration::from_secs(25));
    assert_eq!(hooks.after_success.len(), 4);
    assert_eq!(hooks.after_failure.len(), 4);
    assert_eq!(
        hooks.after_success[&HookedOperation::Scale].timeout,
        Duration::from_secs(60)
    );

    assert_eq!(config.environments["staging"].branches, vec!["main"]);
    assert_eq!(
        config.environments["staging"].domain.as_deref(),
        Some("staging.shop.example.com")
    );
    assert_eq!(config.environments["production"].tags, vec!["v*"]);
    assert_eq!(config.environments["production"].port, Some(8443));
    assert!(config.environments["preview"].pull_requests);
    assert!(!config.environments["preview"].trust_forks);
    assert_eq!(config.retain, 5);
}

#[test]
fn a_procfile_alone_is_a_valid_config() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "Procfile",
        "web: exec ./serve --port $PORT\nworker: exec ./work\nrelease: ./migrate\n",
    );
    let config = load_dir(dir.path(), "Shop").unwrap();
    assert_eq!(config.app.as_str(), "shop");
    let web = &config.services[&ServiceName::new("web")];
    assert_eq!(web.command, "exec ./serve --port $PORT");
    assert_eq!(web.http.as_ref().unwrap().health, HttpHealth::default());
    assert!(web.zero_downtime);
    assert_eq!(config.services[&ServiceName::new("worker")].http, None);
    assert_eq!(
        config.services.len(),
        2,
        "Heroku's `release` is not a service"
    );
    assert_eq!(
        config.hooks.before_release.unwrap().body,
        HookBody::Script("./migrate".into())
    );
}

#[test]
fn services_in_slipway_yml_win_over_the_procfile() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "Procfile",
        "web: ./from-procfile\nclock: ./clock\n",
    );
    write(
        dir.path(),
        "slipway.yml",
        "services:\n  web:\n    command: ./from-slipway\n",
    );
    let config = load_dir(dir.path(), "shop").unwrap();
    assert_eq!(config.services.len(), 1);
    assert_eq!(
        config.services[&ServiceName::new("web")].command,
        "./from-slipway"
    );
}

#[test]
fn a_slipway_yml_without_services_takes_them_from_the_procfile() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Procfile", "web: ./serve\n");
    write(dir.path(), ".slipway.yml", "app: store\nretain: 3\n");
    let config = load_dir(dir.path(), "shop").unwrap();
    assert_eq!(config.app.as_str(), "store");
    assert_eq!(config.retain, 3);
    assert_eq!(config.services[&ServiceName::new("web")].command, "./serve");
}

#[test]
fn aptible_yml_hooks_fill_what_slipway_yml_leaves_unset() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Procfile", "web: ./serve\n");
    write(
        dir.path(),
        ".aptible.yml",
        "before_release:\n  - ./migrate\n  - ./seed\nafter_deploy_success:\n  - ./notify ok\nafter_scale_failure:\n  - ./page\n",
    );
    write(
        dir.path(),
        "slipway.yml",
        "hooks:\n  after_deploy_success: ./slipway-notify\n",
    );
    let config = load_dir(dir.path(), "shop").unwrap();
    let before_release = config.hooks.before_release.unwrap();
    assert_eq!(
        before_release.body,
        HookBody::Commands(vec!["./migrate".into(), "./seed".into()])
    );
    assert_eq!(before_release.timeout, DEFAULT_HOOK_TIMEOUT);
    assert_eq!(
        config.hooks.after_success[&HookedOperation::Deploy].body,
        HookBody::Script("./slipway-notify".into()),
        "slipway.yml wins over .aptible.yml"
    );
    assert_eq!(
        config.hooks.after_failure[&HookedOperation::Scale].body,
        HookBody::Commands(vec!["./page".into()])
    );
}

#[test]
fn aptible_yml_refuses_keys_aptible_does_not_have() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Procfile", "web: ./serve\n");
    write(
        dir.path(),
        ".aptible.yml",
        "before_release: [./migrate]\npre_start: [./warm]\n",
    );
    let error = load_err(dir.path());
    let file = dir.path().join(".aptible.yml").display().to_string();
    assert_eq!(
        error,
        format!("{file}:2:1: unknown key `pre_start`; allowed keys: before_release, after_deploy_success, after_deploy_failure, after_restart_success, after_restart_failure, after_configure_success, after_configure_failure, after_scale_success, after_scale_failure")
    );
}

#[test]
fn errors_of_every_file_are_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Procfile", "web ./serve\n");
    write(dir.path(), ".aptible.yml", "before_deploy: [x]\n");
    write(dir.path(), "slipway.yml", "retain: 0\n");
    let error = load_err(dir.path());
    let lines: Vec<&str> = error.lines().collect();
    assert_eq!(lines.len(), 3, "{error}");
    assert!(
        lines[0].contains("slipway.yml:1:9: retain: 0 is too few"),
        "{error}"
    );
    assert!(
        lines[1].contains("Procfile:1:1: `web ./serve` is not a process line"),
        "{error}"
    );
    assert!(
        lines[2].contains(".aptible.yml:1:1: unknown key `before_deploy`"),
        "{error}"
    );
}

#[test]
fn both_slipway_yml_and_dot_slipway_yml_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "slipway.yml",
        "services: { web: { command: x } }\n",
    );
    write(
        dir.path(),
        ".slipway.yml",
        "services: { web: { command: y } }\n",
    );
    let file = dir.path().join(".slipway.yml").display().to_string();
    assert_eq!(
        load_err(dir.path()),
        format!("{file}:1:1: both slipway.yml and .slipway.yml exist; keep one of them (Slipway never merges the two)")
    );
}

#[test]
fn an_empty_dir_says_where_to_add_services() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("slipway.yml").display().to_string();
    assert_eq!(
        load_err(dir.path()),
        format!("{file}:1:1: no services: add `services:` to slipway.yml (e.g. `services: {{ web: {{ command: ... }} }}`), or a Procfile with `web: <command>`")
    );
}

#[test]
fn a_missing_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    assert_eq!(
        load_err(&missing),
        format!(
            "{}:1:1: this is not a directory; give the app's directory",
            missing.display()
        )
    );
}

#[test]
fn load_file_chooses_the_format_by_name_and_reads_the_siblings() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Procfile", "web: ./serve\n");
    write(dir.path(), "staging.yml", "app: staged\n");
    let config = load_file(&dir.path().join("staging.yml"), "shop").unwrap();
    assert_eq!(config.app.as_str(), "staged");
    assert_eq!(config.services[&ServiceName::new("web")].command, "./serve");

    let config = load_file(&dir.path().join("Procfile"), "shop").unwrap();
    assert_eq!(config.app.as_str(), "shop");

    write(dir.path(), "Procfile", "web:\n");
    let file = dir.path().join("Procfile").display().to_string();
    assert_eq!(
        load_file(&dir.path().join("Procfile"), "shop")
            .unwrap_err()
            .to_string(),
        format!("{file}:1:5: process `web` has no command; write `web: <command>`")
    );
    let missing = dir.path().join("nope.yml");
    assert_eq!(
        load_file(&missing, "shop").unwrap_err().to_string(),
        format!("{}:1:1: the file does not exist", missing.display())
    );
}

#[test]
fn a_file_over_1_mib_is_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let big = format!(
        "services: {{ web: {{ command: x }} }}\n{}",
        "# padding\n".repeat(120_000)
    );
    write(dir.path(), "slipway.yml", &big);
    let file = dir.path().join("slipway.yml").display().to_string();
    assert_eq!(
        load_err(dir.path()),
        format!("{file}:1:1: the file is larger than the 1 MiB a config may be; a config this large is refused")
    );
    let error = parse_slipway_yml(&big, "slipway.yml", "shop")
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("slipway.yml:1:1: the file is 1200"),
        "{error}"
    );
}

#[test]
fn a_file_that_is_not_utf8_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("Procfile"), b"web: \xff\xfe\n").unwrap();
    let file = dir.path().join("Procfile").display().to_string();
    assert_eq!(
        load_err(dir.path()),
        format!("{file}:1:1: the file is not UTF-8 text; save it as UTF-8")
    );
}

/// The classic "billion laughs": nine levels of nine aliases, 9^9 strings once expanded.
fn billion_laughs(indent: &str) -> String {
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    let mut text = format!(
        "{indent}before_release: {{ run: &a [{}] }}\n",
        ["\"lol\""; 9].join(",")
    );
    for pair in names.windows(2) {
        let refs = vec![format!("*{}", pair[0]); 9].join(",");
        text.push_str(&format!(
            "{indent}after_{}_success: {{ run: &{} [{refs}] }}\n",
            pair[1], pair[1]
        ));
    }
    text
}

#[test]
fn a_billion_laughs_document_is_refused_without_expanding_it() {
    let started = Instant::now();
    // As the whole document: refused at its first key.
    let error = parse_slipway_yml(&billion_laughs(""), "slipway.yml", "shop")
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("slipway.yml:1:1: unknown key `before_release`"),
        "{error}"
    );
    // Inside `hooks:`, where the first level is a valid hook: the first alias of a list
    // where a command is expected is refused, so nothing is ever expanded.
    let text = format!(
        "services: {{ web: {{ command: x }} }}\nhooks:\n{}",
        billion_laughs("  ")
    );
    let error = parse_slipway_yml(&text, "slipway.yml", "shop")
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("slipway.yml:"), "{error}");
    // 9^9 strings would take minutes and gigabytes; refusing takes milliseconds.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn every_example_app_in_the_repository_is_valid() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for entry in fs::read_dir(&examples).unwrap() {
        let dir = entry.unwrap().path();
        let has_config = ["slipway.yml", ".slipway.yml", "Procfile", ".aptible.yml"]
            .iter()
            .any(|file| dir.join(file).exists());
        if has_config {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            if let Err(errors) = load_dir(&dir, &name) {
                panic!("examples/{name} is not a valid app:\n{errors}");
            }
        }
    }
}
