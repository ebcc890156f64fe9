//! Valid configs: what each key becomes in the model, and what an absent key defaults to.

use std::time::Duration;

use super::super::model::*;
use super::parse_ok;
use crate::ids::ServiceName;

fn service<'a>(config: &'a AppConfig, name: &str) -> &'a ServiceConfig {
    &config.services[&ServiceName::new(name)]
}

#[test]
fn a_minimal_config_gets_every_default() {
    let config =
        parse_ok("services:\n  web:\n    command: ./serve\n  worker:\n    command: ./work\n");
    assert_eq!(config.app.as_str(), "shop");
    let web = service(&config, "web");
    assert_eq!(web.instances, 1);
    assert_eq!(web.size_mb, 512);
    assert_eq!(web.stop_timeout, Duration::from_secs(10));
    // `web` without `http` is an http service with the default health check.
    assert_eq!(
        web.http,
        Some(HttpConfig {
            health: HttpHealth::default(),
            watch: Duration::ZERO
        })
    );
    assert!(web.zero_downtime);
    assert_eq!(web.health, None);
    let worker = service(&config, "worker");
    assert_eq!(worker.http, None);
    assert!(
        !worker.zero_downtime,
        "non-http services stop old instances first by default"
    );
    assert_eq!(config.build, BuildConfig::default());
    assert_eq!(config.image, None);
    assert_eq!(
        config.hooks,
        Hooks {
            deploy_hold: Duration::from_secs(30),
            ..Hooks::default()
        }
    );
    assert!(config.environments.is_empty());
    assert_eq!(config.retain, 5);
}

#[test]
fn http_with_no_value_means_http_with_defaults() {
    let config = parse_ok("services:\n  api:\n    command: ./api\n    http:\n");
    let api = service(&config, "api");
    assert_eq!(
        api.http,
        Some(HttpConfig {
            health: HttpHealth::default(),
            watch: Duration::ZERO
        })
    );
    assert!(api.zero_downtime);
}

#[test]
fn a_web_service_with_a_health_check_is_not_http() {
    let config = parse_ok("services:\n  web:\n    command: ./serve\n    health: { tcp: 9000 }\n");
    let web = service(&config, "web");
    assert_eq!(web.http, None);
    assert_eq!(
        web.health,
        Some(HealthCheck::Tcp {
            port: 9000,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(60)
        })
    );
}

#[test]
fn http_health_keys_override_the_defaults_one_by_one() {
    let config = parse_ok(
        "services:\n  web:\n    command: ./serve\n    zero_downtime: false\n    http:\n      health: { path: /up, deadline: 2m }\n      watch: 45s\n",
    );
    let web = service(&config, "web");
    let http = web.http.as_ref().unwrap();
    assert_eq!(http.health.path, "/up");
    assert_eq!(http.health.deadline, Duration::from_secs(120));
    assert_eq!(http.health.interval, Duration::from_secs(1));
    assert!(!http.health.strict);
    assert_eq!(http.watch, Duration::from_secs(45));
    assert!(!web.zero_downtime);
}

#[test]
fn hooks_take_three_shapes_and_default_timeouts() {
    let config = parse_ok(
        "services: { web: { command: x } }\n\
         build:\n  hook: make\n\
         hooks:\n  pre_start: ./warm\n  deploy: [a, b]\n  post_deploy: { run: [c], timeout: 90s }\n",
    );
    let build = config.build.hook.unwrap();
    assert_eq!(build.body, HookBody::Script("make".into()));
    assert_eq!(
        build.timeout,
        Duration::from_secs(3600),
        "the build hook gets an hour by default"
    );
    let pre_start = config.hooks.pre_start.unwrap();
    assert_eq!(pre_start.body, HookBody::Script("./warm".into()));
    assert_eq!(pre_start.timeout, Duration::from_secs(600));
    assert_eq!(
        config.hooks.deploy.unwrap().body,
        HookBody::Commands(vec!["a".into(), "b".into()])
    );
    let post_deploy = config.hooks.post_deploy.unwrap();
    assert_eq!(post_deploy.body, HookBody::Commands(vec!["c".into()]));
    assert_eq!(post_deploy.timeout, Duration::from_secs(90));
}

#[test]
fn build_timeout_applies_to_the_build_hook() {
    let config =
        parse_ok("services: { web: { command: x } }\nbuild:\n  hook: make\n  timeout: 20m\n");
    assert_eq!(
        config.build.hook.unwrap().timeout,
        Duration::from_secs(1200)
    );
}

#[test]
fn after_hooks_are_keyed_by_operation() {
    let config = parse_ok(
        "services: { web: { command: x } }\nhooks:\n  after_scale_success: [s]\n  after_restart_failure: f\n",
    );
    assert_eq!(
        config.hooks.after_success.keys().collect::<Vec<_>>(),
        vec![&HookedOperation::Scale]
    );
    assert_eq!(
        config.hooks.after_failure.keys().collect::<Vec<_>>(),
        vec![&HookedOperation::Restart]
    );
}

#[test]
fn environments_accept_a_single_glob_or_a_list() {
    let config = parse_ok(
        "services: { web: { command: x } }\nenvironments:\n  staging: { branches: main }\n  qa:\n  production: { tags: [\"v*\", \"release-*\"], domain: Shop.Example.com }\n",
    );
    assert_eq!(config.environments["staging"].branches, vec!["main"]);
    assert_eq!(config.environments["qa"], EnvironmentRule::default());
    assert_eq!(
        config.environments["production"].tags,
        vec!["v*", "release-*"]
    );
    assert_eq!(
        config.environments["production"].domain.as_deref(),
        Some("shop.example.com")
    );
}

#[test]
fn the_app_name_defaults_to_the_sanitised_folder_name() {
    let config = super::parse_slipway_yml(
        "services: { web: { command: x } }",
        "slipway.yml",
        "My_Shop.v2",
    )
    .unwrap();
    assert_eq!(config.app.as_str(), "my-shop-v2");
    assert_eq!(super::sanitize_app_name("--__--"), "app");
    assert_eq!(super::sanitize_app_name(&"a".repeat(100)).len(), 63);
}

#[test]
fn a_comment_only_file_is_an_empty_config() {
    let error = super::errors_of("# nothing yet\n");
    assert!(error.starts_with("slipway.yml:1:1: no services"), "{error}");
}
