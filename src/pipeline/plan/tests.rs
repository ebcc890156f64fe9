use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::config::model::*;
use crate::ids::AppName;

pub(crate) fn sample_config() -> AppConfig {
    let web = ServiceConfig {
        command: "exec python3 app.py".into(),
        instances: 2,
        size_mb: 256,
        stop_timeout: Duration::from_secs(10),
        zero_downtime: true,
        http: Some(HttpConfig {
            health: HttpHealth::default(),
            watch: Duration::ZERO,
        }),
        health: None,
    };
    let worker = ServiceConfig {
        command: "exec python3 worker.py".into(),
        instances: 1,
        size_mb: 512,
        stop_timeout: Duration::from_secs(10),
        zero_downtime: false,
        http: None,
        health: Some(HealthCheck::Uptime(Duration::from_secs(1))),
    };
    AppConfig {
        app: AppName::from("shop"),
        services: [
            (ServiceName::from("web"), web),
            (ServiceName::from("worker"), worker),
        ]
        .into(),
        build: BuildConfig::default(),
        image: None,
        hooks: Hooks {
            pre_start: Some(Hook {
                body: HookBody::Script("echo warm".into()),
                timeout: DEFAULT_HOOK_TIMEOUT,
            }),
            ..Hooks::default()
        },
        environments: BTreeMap::new(),
        retain: DEFAULT_RETAIN,
    }
}

fn context<'a>(
    config: &'a AppConfig,
    env: &'a EnvKey,
    scale: &'a Scale,
    vars: &'a BTreeMap<String, String>,
) -> ReleaseContext<'a> {
    ReleaseContext {
        env,
        release: ReleaseNumber(3),
        commit: Some("abc123"),
        operation: OperationId(7),
        kind: OperationKind::Deploy,
        config,
        scale,
        variables: vars,
    }
}

#[test]
fn every_process_gets_the_documented_variables_and_slipway_ones_win() {
    let config = sample_config();
    let env = EnvKey::new("shop", "staging");
    let scale = scale_for_deploy(&config, None);
    let vars = BTreeMap::from([
        ("SLIPWAY_APP".to_owned(), "spoofed".to_owned()),
        ("DB".to_owned(), "x".to_owned()),
    ]);
    let ctx = context(&config, &env, &scale, &vars);
    let web = ctx.env_for(Some(&ServiceName::from("worker")));
    assert_eq!(web["SLIPWAY_APP"], "shop");
    assert_eq!(web["SLIPWAY_ENVIRONMENT"], "staging");
    assert_eq!(web["SLIPWAY_SERVICE"], "worker");
    assert_eq!(web["SLIPWAY_RELEASE"], "v3");
    assert_eq!(web["SLIPWAY_COMMIT"], "abc123");
    assert_eq!(web["SLIPWAY_OPERATION"], "deploy");
    assert_eq!(web["SLIPWAY_CONTAINER_SIZE"], "512");
    assert_eq!(web["DB"], "x");
}

#[test]
fn instances_follow_the_scale_and_carry_pre_start() {
    let config = sample_config();
    let env = EnvKey::new("shop", "staging");
    let scale = scale_for_deploy(&config, None);
    let vars = BTreeMap::new();
    let ctx = context(&config, &env, &scale, &vars);
    let artifact = Artifact::Directory { path: "/a".into() };
    let specs = ctx.instances(&artifact);
    let names: Vec<String> = specs
        .iter()
        .map(|s| format!("{}.{}", s.service, s.index))
        .collect();
    assert_eq!(names, ["web.1", "web.2", "worker.1"]);
    assert!(specs[0].http && !specs[2].http);
    assert_eq!(
        specs[0].pre_start.as_ref().map(|p| p[0].argv.clone()),
        Some(vec!["sh".into(), "-c".into(), "echo warm".into()])
    );
    assert_eq!(specs[0].instance_id(), "shop-staging-web-v3-1-op7");
}

#[test]
fn a_pinned_scale_survives_a_deploy_and_an_unpinned_one_follows_the_config() {
    let config = sample_config();
    let mut previous = scale_for_deploy(&config, None);
    previous
        .services
        .get_mut(&ServiceName::from("web"))
        .unwrap()
        .instances = 5;
    assert_eq!(
        scale_for_deploy(&config, Some(&previous)).services[&ServiceName::from("web")].instances,
        2
    );
    previous
        .services
        .get_mut(&ServiceName::from("web"))
        .unwrap()
        .pinned = true;
    assert_eq!(
        scale_for_deploy(&config, Some(&previous)).services[&ServiceName::from("web")].instances,
        5
    );
}

#[test]
fn artifact_key_changes_with_build_variables_only() {
    let runtime = Variable {
        key: "A".into(),
        value: "1".into(),
        build: false,
    };
    let build = Variable {
        key: "B".into(),
        value: "1".into(),
        build: true,
    };
    let base = artifact_key("shop", "content", &[]);
    assert_eq!(
        base,
        artifact_key("shop", "content", std::slice::from_ref(&runtime))
    );
    assert_ne!(
        base,
        artifact_key("shop", "content", std::slice::from_ref(&build))
    );
    assert_ne!(base, artifact_key("shop", "other", &[]));
}

#[test]
fn routes_to_web_or_else_the_first_http_service() {
    let mut config = sample_config();
    assert_eq!(routed_service(&config), Some(&ServiceName::from("web")));
    let web = config.services.remove(&ServiceName::from("web")).unwrap();
    config.services.insert(ServiceName::from("api"), web);
    assert_eq!(routed_service(&config), Some(&ServiceName::from("api")));
}
