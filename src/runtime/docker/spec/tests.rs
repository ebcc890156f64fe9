//! What an instance's container will be, checked as a value.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::ids::{EnvKey, OperationId, ReleaseNumber, ServiceName};
use crate::pipeline::model::Artifact;

fn instance(http: bool, pre_start: Option<Vec<CommandSpec>>) -> InstanceSpec {
    InstanceSpec {
        env: EnvKey::new("shop", "production"),
        operation: OperationId(7),
        service: ServiceName::from("web"),
        release: ReleaseNumber(3),
        index: 2,
        artifact: Artifact::Image {
            reference: "slipway/shop:k".into(),
            digest: "sha256:x".into(),
        },
        command: "exec httpd -f -p $PORT".into(),
        pre_start,
        env_vars: BTreeMap::from([
            ("SLIPWAY_APP".to_owned(), "shop".to_owned()),
            ("SECRET".to_owned(), "s3cret".to_owned()),
        ]),
        http,
        size_mb: 256,
        stop_timeout: Duration::from_secs(10),
    }
}

#[test]
fn names_and_labels_find_an_instance_after_a_restart() {
    let spec = instance(true, None);
    assert_eq!(
        container_name(&spec),
        "slipway-shop-production-web-v3-2-op7"
    );
    let labels = instance_labels(&spec);
    for (key, value) in [
        ("slipway.app", "shop"),
        ("slipway.env", "production"),
        ("slipway.service", "web"),
        ("slipway.release", "v3"),
        ("slipway.instance", "2"),
        ("slipway.operation", "7"),
    ] {
        assert_eq!(labels.get(key).map(String::as_str), Some(value), "{key}");
    }
}

#[test]
fn an_http_instance_gets_a_port_a_memory_limit_and_a_loopback_binding() {
    let body = instance_container(&instance(true, None), "slipway/shop:k");
    let env = body.env.expect("variables");
    assert!(env.contains(&"PORT=5000".to_owned()), "{env:?}");
    assert!(env.contains(&"SECRET=s3cret".to_owned()), "{env:?}");
    assert_eq!(
        body.cmd,
        Some(vec![
            "sh".to_owned(),
            "-c".to_owned(),
            "exec httpd -f -p $PORT".to_owned()
        ])
    );
    assert_eq!(body.entrypoint, Some(vec![]));
    let host = body.host_config.expect("host config");
    assert_eq!(host.memory, Some(256 * 1024 * 1024));
    assert_eq!(host.init, Some(true));
    let binding = &host.port_bindings.expect("bindings")["5000/tcp"];
    let binding = &binding.as_ref().expect("a binding")[0];
    assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
}

#[test]
fn a_worker_publishes_nothing() {
    let body = instance_container(&instance(false, None), "img");
    assert!(!body
        .env
        .expect("variables")
        .iter()
        .any(|v| v.starts_with("PORT=")));
    assert_eq!(body.host_config.expect("host config").port_bindings, None);
}

#[test]
fn pre_start_scripts_are_arguments_not_spliced_text() {
    let pre = CommandSpec {
        label: "pre_start".into(),
        argv: vec!["sh".into(), "-c".into(), "echo 'warm' > /tmp/x".into()],
        env: BTreeMap::new(),
        cwd: None,
        timeout: Duration::from_secs(60),
    };
    let argv = instance_command(&instance(true, Some(vec![pre])));
    assert_eq!(argv[..2], ["sh".to_owned(), "-c".to_owned()]);
    assert_eq!(
        argv[3..],
        [
            "slipway-instance".to_owned(),
            "exec httpd -f -p $PORT".to_owned(),
            "echo 'warm' > /tmp/x".to_owned()
        ]
    );
}

#[test]
fn app_names_become_valid_repositories() {
    assert_eq!(
        image_repository(&AppName::from("Shop_App")),
        "slipway/shop_app"
    );
    assert_eq!(
        artifact_tag(&AppName::from("shop"), "shop-0a1b"),
        "slipway/shop:shop-0a1b"
    );
}
