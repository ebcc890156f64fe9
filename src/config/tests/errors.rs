//! Wrong configs: each refused with the exact `FILE:LINE:COL: message` a user reads.

use super::{errors_of, parse_ok};

const WEB: &str = "services:\n  web:\n    command: ./serve\n";

#[test]
fn an_unknown_key_in_a_service_names_the_allowed_keys() {
    assert_eq!(
        errors_of("services:\n  web:\n    comand: ./serve\n"),
        "slipway.yml:3:5: services.web: unknown key `comand`; allowed keys: command, instances, size, stop_timeout, zero_downtime, http, health"
    );
}

#[test]
fn an_unknown_top_level_key_names_the_allowed_keys() {
    assert_eq!(
        errors_of(&format!("{WEB}deploy: true\n")),
        "slipway.yml:4:1: unknown key `deploy`; allowed keys: app, services, build, image, hooks, environments, retain"
    );
}

#[test]
fn an_unknown_hook_lists_the_allowed_hooks_and_points_build_users_to_build_hook() {
    let text = format!("{WEB}hooks:\n  after_deploy: [./x]\n  build: ./b\n");
    let error = errors_of(&text);
    assert_eq!(
        error,
        "slipway.yml:5:3: hooks: unknown key `after_deploy`; allowed keys: before_release, pre_start, deploy, post_deploy, deploy_hold, after_deploy_success, after_deploy_failure, after_restart_success, after_restart_failure, after_configure_success, after_configure_failure, after_scale_success, after_scale_failure"
    );
    let error = errors_of(&format!("{WEB}hooks:\n  build: ./b\n"));
    assert!(
        error.starts_with("slipway.yml:5:3: hooks: unknown key `build`;"),
        "{error}"
    );
    assert!(
        error.ends_with("; the build hook goes under `build:` as `hook:`"),
        "{error}"
    );
}

#[test]
fn stop_timeout_over_15m_is_refused_at_the_value() {
    assert_eq!(
        errors_of(&format!("{WEB}    stop_timeout: 20m\n")),
        "slipway.yml:4:19: services.web.stop_timeout: 20m is longer than the 15m maximum; use a value up to 15m"
    );
}

#[test]
fn a_bad_duration_is_refused_at_the_value() {
    assert_eq!(
        errors_of(&format!("{WEB}    http:\n      watch: 10\n")),
        "slipway.yml:5:14: services.web.http.watch: `10` has no unit; add one, e.g. `10s` (units: ms, s, m, h)"
    );
    assert_eq!(
        errors_of(&format!("{WEB}    http:\n      health: {{ interval: 2 minutes }}\n")),
        "slipway.yml:5:27: services.web.http.health.interval: `2 minutes` has an unknown unit ` minutes`; use ms, s, m or h (write it like `500ms`, `10s`, `15m`, `1h` or `1h30m`)"
    );
    assert_eq!(
        errors_of(&format!("{WEB}hooks:\n  deploy_hold: 1.5s\n")),
        "slipway.yml:5:16: hooks.deploy_hold: `1.5s` has a fraction; use whole numbers of a smaller unit, e.g. `1h30m` or `1500ms`"
    );
}

#[test]
fn a_wrong_type_says_what_was_found_and_what_is_expected() {
    assert_eq!(
        errors_of(&format!("{WEB}    zero_downtime: sometimes\n")),
        "slipway.yml:4:20: services.web.zero_downtime: wrong type: found string \"sometimes\", expected a boolean"
    );
    assert_eq!(
        errors_of(&format!("{WEB}    instances: two\n")),
        "slipway.yml:4:16: services.web.instances: `two` is not a whole number of instances from 1 to 100"
    );
    assert_eq!(
        errors_of("services:\n  - web\n"),
        "slipway.yml:2:3: services: wrong type: found sequence, expected a map from a service name to its settings"
    );
}

#[test]
fn a_hook_of_the_wrong_shape_lists_the_shapes_allowed() {
    assert_eq!(
        errors_of(&format!("{WEB}hooks:\n  deploy: 5\n")),
        "slipway.yml:5:11: hooks.deploy: wrong type: found integer `5`, expected a hook: a script (a string), a list of commands, or a map like `{ run: ..., timeout: 10m }`"
    );
    assert_eq!(
        errors_of(&format!("{WEB}hooks:\n  deploy: {{ run: {{ a: 1 }} }}\n")),
        "slipway.yml:5:18: hooks.deploy.run: wrong type: found map, expected a script (a string) or a list of commands"
    );
    assert_eq!(
        errors_of(&format!("{WEB}hooks:\n  deploy: {{ timeout: 1m }}\n")),
        "slipway.yml:5:11: hooks.deploy: missing key `run`; add it"
    );
    assert_eq!(
        errors_of(&format!(
            "{WEB}hooks:\n  deploy: {{ run: x, retries: 3 }}\n"
        )),
        "slipway.yml:5:21: hooks.deploy: unknown key `retries`; allowed keys: run, timeout"
    );
    assert_eq!(
        errors_of(&format!("{WEB}hooks:\n  post_deploy: []\n")),
        "slipway.yml:5:16: hooks.post_deploy: the hook has an empty list of commands; add a command, or remove the hook"
    );
    assert_eq!(
        errors_of(&format!("{WEB}hooks:\n  pre_start: [\"./ok\", \"\"]\n")),
        "slipway.yml:5:23: hooks.pre_start[1]: the command is empty; write the command to run, e.g. `exec python3 app.py`"
    );
}

#[test]
fn out_of_range_numbers_say_the_range() {
    assert_eq!(
        errors_of(&format!("{WEB}    instances: 0\n")),
        "slipway.yml:4:16: services.web.instances: 0 instances is not allowed; use a number from 1 to 100 (remove the service to stop it)"
    );
    assert_eq!(
        errors_of(&format!("{WEB}    instances: 101\n")),
        "slipway.yml:4:16: services.web.instances: 101 is more than the 100 instances allowed; use a number from 1 to 100"
    );
    assert_eq!(
        errors_of(&format!("{WEB}    size: 0\n")),
        "slipway.yml:4:11: services.web.size: a size of 0 MB is not allowed; use a size in MB from 1 to 1048576, e.g. 512"
    );
    assert_eq!(
        errors_of("services:\n  db:\n    command: ./db\n    health: { tcp: 0 }\n"),
        "slipway.yml:4:20: services.db.health.tcp: port 0 is not allowed; use a port from 1 to 65535"
    );
    assert_eq!(
        errors_of(&format!("{WEB}retain: 1\n")),
        "slipway.yml:4:9: retain: 1 is too few; the serving release and its predecessor are always kept, so use 2 or more"
    );
    assert_eq!(
        errors_of(&format!("{WEB}    instances: -2\n")),
        "slipway.yml:4:16: services.web.instances: -2 is negative; expected a whole number of instances from 1 to 100"
    );
}

#[test]
fn health_checks_take_exactly_one_kind() {
    assert_eq!(
        errors_of("services:\n  db:\n    command: ./db\n    health:\n      tcp: 5432\n      uptime: 10s\n"),
        "slipway.yml:5:7: services.db.health: a health check has exactly one of `command`, `tcp` or `uptime`; keep one"
    );
    assert_eq!(
        errors_of("services:\n  db:\n    command: ./db\n    health:\n      interval: 1s\n"),
        "slipway.yml:5:7: services.db.health: a health check needs one of `command: \"...\"`, `tcp: PORT` or `uptime: 30s`"
    );
    assert_eq!(
        errors_of("services:\n  db:\n    command: ./db\n    health: { uptime: 30s, deadline: 1m }\n"),
        "slipway.yml:4:13: services.db.health: an `uptime` check takes no interval, timeout or deadline; remove them, or use a `command` or `tcp` check"
    );
    assert_eq!(
        errors_of("services:\n  web:\n    command: ./w\n    http: {}\n    health: { tcp: 80 }\n"),
        "slipway.yml:3:5: services.web: a service with `http` is health-checked by `http.health`; move the check there, or remove `http` for a non-http service"
    );
}

#[test]
fn an_http_health_path_must_start_with_a_slash() {
    assert_eq!(
        errors_of(&format!("{WEB}    http:\n      health:\n        path: healthz\n")),
        "slipway.yml:6:15: services.web.http.health.path: `healthz` does not start with '/'; write a path like `/healthz`"
    );
}

#[test]
fn an_empty_service_command_is_refused() {
    assert_eq!(
        errors_of("services:\n  web:\n    command: \"  \"\n"),
        "slipway.yml:3:14: services.web.command: the command is empty; write the command to run, e.g. `exec python3 app.py`"
    );
    assert_eq!(
        errors_of("services:\n  web:\n    instances: 2\n"),
        "slipway.yml:3:5: services.web: missing key `command`; add it"
    );
}

#[test]
fn names_that_become_host_names_must_be_dns_labels() {
    assert_eq!(
        errors_of(&format!("app: My_Shop\n{WEB}")),
        "slipway.yml:1:6: app: `My_Shop` is not a valid app name; use 1 to 63 lowercase letters, digits and '-', not starting or ending with '-' (it becomes part of a host name)"
    );
    assert_eq!(
        errors_of(&format!("{WEB}environments:\n  Prod_1: {{ branches: [main] }}\n")),
        "slipway.yml:5:3: environments: `Prod_1` is not a valid environment name; use 1 to 63 lowercase letters, digits and '-', not starting or ending with '-' (it becomes part of a host name)"
    );
    assert_eq!(
        errors_of(&format!("{WEB}environments:\n  pr-7: {{ branches: [main] }}\n")),
        "slipway.yml:5:3: environments: `pr-7` is reserved for pull-request previews; name the environment differently and set `pull_requests: true` on it"
    );
    assert_eq!(
        errors_of("services:\n  \"web server\": { command: x }\n"),
        "slipway.yml:2:3: services: `web server` is not a valid service name; use 1 to 63 letters, digits, '-' and '_', starting with a letter or digit"
    );
}

#[test]
fn a_dockerfile_outside_the_app_dir_is_refused() {
    assert_eq!(
        errors_of(&format!("{WEB}build:\n  dockerfile: ../other/Dockerfile\n")),
        "slipway.yml:5:15: build.dockerfile: `../other/Dockerfile` leaves the app directory; use a path inside it, without `..`"
    );
    assert_eq!(
        errors_of(&format!("{WEB}build:\n  dockerfile: /etc/passwd\n")),
        "slipway.yml:5:15: build.dockerfile: `/etc/passwd` is an absolute path; use a path relative to the app directory, e.g. `Dockerfile`"
    );
    assert_eq!(
        errors_of(&format!("{WEB}build:\n  dockerfile: docker/../../x\n")),
        "slipway.yml:5:15: build.dockerfile: `docker/../../x` leaves the app directory; use a path inside it, without `..`"
    );
}

#[test]
fn the_build_timeout_is_set_once_and_only_with_a_hook() {
    assert_eq!(
        errors_of(&format!("{WEB}build:\n  hook: {{ run: make, timeout: 5m }}\n  timeout: 10m\n")),
        "slipway.yml:5:3: build: the build timeout is set twice, in `timeout` and in `hook.timeout`; keep one"
    );
    assert_eq!(
        errors_of(&format!("{WEB}build:\n  timeout: 10m\n")),
        "slipway.yml:5:3: build: `timeout` applies to the build hook, and there is none; add `hook`, or remove `timeout`"
    );
}

#[test]
fn environment_values_are_checked() {
    assert_eq!(
        errors_of(&format!("{WEB}environments:\n  staging: {{ domain: \"https://shop.example.com\" }}\n")),
        "slipway.yml:5:22: environments.staging.domain: `https://shop.example.com` is not a host name; write one like `shop.example.com` (no scheme, port or path)"
    );
    assert_eq!(
        errors_of(&format!("{WEB}environments:\n  staging: {{ port: 70000 }}\n")),
        "slipway.yml:5:20: environments.staging.port: port 70000 is not allowed; use a port from 1 to 65535"
    );
    assert_eq!(
        errors_of(&format!("{WEB}environments:\n  staging: {{ branch: main }}\n")),
        "slipway.yml:5:14: environments.staging: unknown key `branch`; allowed keys: branches, tags, pull_requests, trust_forks, domain, port"
    );
    assert_eq!(
        errors_of(&format!("{WEB}environments:\n  preview:\n    pull_requests: true\n    port: 9000\n")),
        "slipway.yml:6:5: environments.preview: `port: 9000` cannot be shared by the preview of every pull request; remove it (each preview answers at pr-<number>.localhost)"
    );
}

#[test]
fn a_name_given_twice_is_refused() {
    let error = errors_of("services:\n  web: { command: a }\n  web: { command: b }\n");
    assert!(error.starts_with("slipway.yml:"), "{error}");
    assert!(
        error.contains("`web` is defined twice; keep one"),
        "{error}"
    );
}

#[test]
fn two_environments_cannot_claim_one_port_or_domain() {
    assert_eq!(
        errors_of(&format!(
            "{WEB}environments:\n  production: {{ port: 8081 }}\n  staging: {{ port: 8081 }}\n"
        )),
        "slipway.yml:5:3: environments: `staging` has `port: 8081`, as `production` does; give each its own"
    );
    assert_eq!(
        errors_of(&format!(
            "{WEB}environments:\n  production: {{ domain: shop.example.com }}\n  staging: {{ domain: Shop.Example.com, port: 8082 }}\n"
        )),
        "slipway.yml:5:3: environments: `staging` has `domain: shop.example.com`, as `production` does; give each its own"
    );
    // Different ports and domains are what environments are for.
    let fine = format!(
        "{WEB}environments:\n  production: {{ port: 8081, domain: shop.example.com }}\n  staging: {{ port: 8082, domain: staging.shop.example.com }}\n"
    );
    let config = parse_ok(&fine);
    assert_eq!(config.environments.len(), 2);
}

#[test]
fn a_yaml_syntax_error_has_its_position() {
    let error = errors_of("services:\n  web:\n    command: ./serve\n   bad indent: x\n");
    assert!(error.starts_with("slipway.yml:4:"), "{error}");
    assert!(error.contains("YAML syntax error"), "{error}");
}

#[test]
fn no_services_anywhere_says_where_to_add_them() {
    assert_eq!(
        errors_of("app: shop\n"),
        "slipway.yml:1:1: no services: add `services:` to slipway.yml (e.g. `services: { web: { command: ... } }`), or a Procfile with `web: <command>`"
    );
}

#[test]
fn type_errors_never_name_internal_types() {
    let cases = [
        ("- web\n", "slipway.yml:1:1: wrong type: found sequence, expected a map of settings: app, services, build, image, hooks, environments, retain"),
        ("services: { web: { command: x, http: 5 } }\n", "slipway.yml:1:38: services.web.http: wrong type: found integer `5`, expected a map with `health` and/or `watch`, or nothing for the defaults"),
        ("services: { web: 5 }\n", "slipway.yml:1:18: services.web: wrong type: found integer `5`, expected a service: a map with at least `command`"),
        ("services: { web: { command: x } }\nhooks: [a]\n", "slipway.yml:2:8: hooks: wrong type: found sequence, expected a map from hook names to hooks"),
        ("services: { web: { command: x } }\nenvironments: { staging: [main] }\n", "slipway.yml:2:26: environments.staging: wrong type: found sequence, expected an environment: a map with branches, tags, pull_requests, trust_forks, domain and/or port"),
        ("services: { web: { command: x } }\nbuild: make\n", "slipway.yml:2:8: build: wrong type: found string \"make\", expected a build: a map with `hook`, `timeout` and/or `dockerfile`"),
    ];
    for (text, expected) in cases {
        assert_eq!(errors_of(text), expected, "for {text:?}");
    }
}
