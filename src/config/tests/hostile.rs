//! Hostile input: YAML bombs, deep nesting, huge scalars, links out of the app dir. Each
//! is refused with `FILE:LINE:COL: message`, quickly and without the memory its
//! expansion would take. Inputs the fuzzer found (`fuzz/fuzz_targets/config.rs`) are
//! kept here too.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

/// Generous: refusing takes milliseconds; expanding would take minutes.
const NOT_STUCK: Duration = Duration::from_secs(10);

fn refused_quickly(text: &str) -> String {
    let started = Instant::now();
    let error = errors_of(text);
    assert!(
        started.elapsed() < NOT_STUCK,
        "took {:?}",
        started.elapsed()
    );
    error
}

/// `FILE:LINE:COL: message` with numbers, for every line of `errors`.
fn assert_positioned(errors: &str) {
    for line in errors.lines() {
        let mut parts = line.splitn(4, ':');
        let (file, row, column) = (parts.next(), parts.next(), parts.next());
        assert!(file.is_some_and(|f| !f.is_empty()), "{line}");
        assert!(row.is_some_and(|r| r.parse::<usize>().is_ok()), "{line}");
        assert!(column.is_some_and(|c| c.parse::<usize>().is_ok()), "{line}");
    }
}

#[test]
fn a_long_scalar_repeated_through_aliases_is_refused_before_it_is_copied() {
    // 300 KB anchored, used 1000 times: 300 MB of commands once expanded.
    let text = format!(
        "services: {{ web: {{ command: x }} }}\nhooks:\n  deploy: &big \"{}\"\n  before_release: [{}]\n",
        "x".repeat(300_000),
        vec!["*big"; 1000].join(", ")
    );
    let error = refused_quickly(&text);
    assert_positioned(&error);
    assert!(
        error.contains("expands through its aliases (`*name`) to more than 4 MiB"),
        "{error}"
    );
    assert!(
        error.len() < 500,
        "the error quotes the value: {} bytes",
        error.len()
    );
}

#[test]
fn aliases_used_sensibly_still_work() {
    let config = parse_ok(
        "services:\n  web: { command: ./serve }\nhooks:\n  deploy: &notify [\"./notify\"]\n  post_deploy: *notify\n",
    );
    assert!(config.hooks.deploy.is_some() && config.hooks.post_deploy.is_some());
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    // libyaml scans deep brackets in time quadratic in their depth (found here, not by
    // the fuzzer): the first two took a minute each before the bracket count refused them.
    for text in [
        format!("services: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
        format!(
            "services: {}{}\n",
            "{a: ".repeat(50_000),
            "}".repeat(50_000)
        ),
        format!("services: {}\n", "[".repeat(900_000)),
        (1..400)
            .map(|i| format!("{}k{i}:\n", "  ".repeat(i - 1)))
            .collect(),
    ] {
        // A thread with a small stack, as a tokio worker has: no overflow either.
        let error = std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(move || refused_quickly(&text))
            .unwrap()
            .join()
            .expect("no stack overflow");
        assert_positioned(&error);
        assert!(error.starts_with("slipway.yml:"), "{error}");
    }
}

#[test]
fn a_huge_scalar_is_quoted_short_in_the_error() {
    let error = refused_quickly(&format!("app: {}\n", "A".repeat(500_000)));
    assert_positioned(&error);
    assert!(
        error.starts_with("slipway.yml:1:6: app: `AAAA"),
        "{}",
        &error[..80]
    );
    assert!(
        error.contains("…` is not a valid app name"),
        "{}",
        &error[..200]
    );
    assert!(error.len() < 400, "{} bytes", error.len());

    let error = refused_quickly(&format!("services: \"{}\"\n", "s".repeat(500_000)));
    assert!(
        error.contains("wrong type: found string"),
        "{}",
        &error[..200]
    );
    assert!(error.len() < 400, "{} bytes", error.len());

    // (A key this long is no key to YAML, which caps them at 1024 characters.)
    let error = refused_quickly(&format!("{}: 1\n", "k".repeat(500_000)));
    assert!(error.starts_with("slipway.yml:1:1: "), "{error}");
    assert!(error.len() < 400, "{} bytes", error.len());
    let error = refused_quickly(&format!("{}: 1\n", "k".repeat(1000)));
    assert!(error.contains("unknown key `kkkk"), "{error}");
    assert!(error.len() < 400, "{} bytes", error.len());
}

#[test]
fn control_characters_in_a_value_are_escaped_in_the_error() {
    let error = errors_of("app: \"shop\\e[31m\\u0000\"\n");
    assert!(error.contains("shop\\u{1b}[31m\\u{0}"), "{error}");
    assert!(!error.contains('\u{1b}'), "{error:?}");
}

#[test]
fn a_procfile_line_is_quoted_short() {
    let text = format!("{}\n", "w".repeat(100_000));
    let errors = super::super::procfile::parse_procfile(&text, "Procfile")
        .unwrap_err()
        .to_string();
    assert!(
        errors.starts_with("Procfile:1:1: `wwww"),
        "{}",
        &errors[..80]
    );
    assert!(errors.len() < 300, "{} bytes", errors.len());
}

fn app_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("Procfile"), "web: ./serve\n").unwrap();
    dir
}

#[test]
fn a_config_file_linking_outside_the_app_dir_is_refused_without_reading_it() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("admin.token");
    fs::write(&secret, "slw_the_server_admin_token").unwrap();
    for name in ["slipway.yml", "Procfile", ".aptible.yml"] {
        let dir = app_dir();
        let _ = fs::remove_file(dir.path().join(name));
        symlink(&secret, dir.path().join(name)).unwrap();
        let error = load_dir(dir.path(), "shop").unwrap_err().to_string();
        let file = dir.path().join(name).display().to_string();
        assert!(
            error.starts_with(&format!(
                "{file}:1:1: this is a symbolic link to a file outside the app directory"
            )),
            "{error}"
        );
        assert!(!error.contains("slw_the_server"), "{error}");
        // `slipway validate FILE` says the same.
        let error = load_file(&dir.path().join(name), "shop")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("slw_the_server"), "{error}");
    }
}

#[test]
fn a_relative_link_out_of_the_app_dir_is_refused_too() {
    let root = tempfile::tempdir().unwrap();
    let app = root.path().join("sources/git-abc");
    fs::create_dir_all(&app).unwrap();
    fs::write(root.path().join("admin.token"), "slw_secret").unwrap();
    symlink("../../admin.token", app.join("slipway.yml")).unwrap();
    let error = load_dir(&app, "shop").unwrap_err().to_string();
    assert!(error.contains("outside the app directory"), "{error}");
}

#[test]
fn a_link_inside_the_app_dir_is_followed() {
    let dir = app_dir();
    fs::create_dir(dir.path().join("deploy")).unwrap();
    fs::write(
        dir.path().join("deploy/slipway.yml"),
        "services: { web: { command: ./serve } }\n",
    )
    .unwrap();
    symlink("deploy/slipway.yml", dir.path().join("slipway.yml")).unwrap();
    assert!(load_dir(dir.path(), "shop").is_ok());
}

#[test]
fn a_dangling_link_and_a_pipe_are_refused() {
    let dir = app_dir();
    symlink("nowhere.yml", dir.path().join("slipway.yml")).unwrap();
    let error = load_dir(dir.path(), "shop").unwrap_err().to_string();
    assert!(error.contains("a file that does not exist"), "{error}");

    let dir = app_dir();
    let fifo = dir.path().join("slipway.yml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let started = Instant::now();
    let error = load_dir(dir.path(), "shop").unwrap_err().to_string();
    assert!(error.contains("not a regular file"), "{error}");
    assert!(started.elapsed() < NOT_STUCK);
}

#[test]
fn a_dockerfile_path_that_escapes_is_refused_at_its_line_and_column() {
    let dir = app_dir();
    let yml = "services:\n  web: { command: ./serve }\nbuild:\n  dockerfile: ../../etc/passwd\n";
    fs::write(dir.path().join("slipway.yml"), yml).unwrap();
    let file = dir.path().join("slipway.yml").display().to_string();
    assert_eq!(
        load_dir(dir.path(), "shop").unwrap_err().to_string(),
        format!("{file}:4:15: build.dockerfile: `../../etc/passwd` leaves the app directory; use a path inside it, without `..`")
    );
    fs::write(
        dir.path().join("slipway.yml"),
        yml.replace("../../etc/passwd", "/etc/passwd"),
    )
    .unwrap();
    assert!(load_err_of(dir.path()).contains("is an absolute path"));
}

fn load_err_of(dir: &Path) -> String {
    load_dir(dir, "shop").unwrap_err().to_string()
}

#[test]
fn a_dockerfile_reached_through_a_link_outside_is_refused_at_its_value() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let dir = app_dir();
    symlink(outside.path(), dir.path().join("docker")).unwrap();
    let yml = "services:\n  web: { command: ./serve }\nbuild: { dockerfile: docker/Dockerfile }\n";
    fs::write(dir.path().join("slipway.yml"), yml).unwrap();
    let file = dir.path().join("slipway.yml").display().to_string();
    let error = load_err_of(dir.path());
    assert!(
        error.starts_with(&format!("{file}:3:22: build.dockerfile: `docker/Dockerfile` leads outside the app directory through a symbolic link")),
        "{error}"
    );
    // The same file as a link inside the app is fine, and so is a Dockerfile not yet there.
    fs::remove_file(dir.path().join("docker")).unwrap();
    fs::create_dir(dir.path().join("docker")).unwrap();
    fs::write(dir.path().join("docker/Dockerfile.real"), "FROM scratch\n").unwrap();
    symlink("Dockerfile.real", dir.path().join("docker/Dockerfile")).unwrap();
    assert!(load_dir(dir.path(), "shop").is_ok());
    fs::write(
        dir.path().join("slipway.yml"),
        yml.replace("docker/Dockerfile", "missing/Dockerfile"),
    )
    .unwrap();
    assert!(load_dir(dir.path(), "shop").is_ok());
}
