//! The action's image, built from the repository's Dockerfile on this machine's Docker
//! Engine with no registry (tests/action/build_image.sh: a debootstrap'ed base image and
//! the `prebuilt` stage with the binary under test), and run as the Actions runner runs
//! a container action: the workspace at /github/workspace, the file commands at
//! /github/file_commands, the event at /github/workflow/event.json, `--workdir` on the
//! command line, inputs as `-e INPUT_<NAME>`. The mounted folders belong to uid 1001, as
//! they belong to the `runner` user on GitHub-hosted runners.
//!
//! Docker is required: when the engine cannot be reached these tests fail, saying so.

mod action;
mod common;
mod fake_github;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use action::{fixture, Step};
use common::{App, Workspace};
use fake_github::harness;

const IMAGE: &str = "slipway-action:test";
const BUILD_LIMIT: Duration = Duration::from_secs(300);
/// The uid of the `runner` user of GitHub-hosted runners, and of the image's user.
const RUNNER_UID: u32 = 1001;

/// Builds the image once per test run; panics with the reason when it cannot.
fn image() -> &'static str {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let version = Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
            .map_err(|e| format!("cannot run `docker` ({e}): these tests need the docker CLI and a Docker Engine"))?;
        if !version.status.success() {
            return Err(format!(
                "the Docker Engine is unreachable: these tests need it (DOCKER_HOST or /var/run/docker.sock): {}",
                String::from_utf8_lossy(&version.stderr)
            ));
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/action/build_image.sh");
        let log = std::env::temp_dir().join(format!("slipway-image-build-{}.log", std::process::id()));
        let mut child = Command::new("bash")
            .arg(script)
            .arg(common::SLIPWAY)
            .arg(IMAGE)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("cannot run build_image.sh: {e}"))?;
        let deadline = Instant::now() + BUILD_LIMIT;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("building the image took more than {BUILD_LIMIT:?}; see {}", log.display()));
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        if !status.success() {
            return Err(format!("the image did not build:\n{output}"));
        }
        Ok(())
    });
    if let Err(why) = built {
        panic!("{why}");
    }
    IMAGE
}

/// Gives a folder to the runner's user, as the runner's own files are.
fn give_to_runner(path: &Path) {
    for entry in walk(path) {
        if std::os::unix::fs::chown(&entry, Some(RUNNER_UID), Some(RUNNER_UID)).is_err() {
            // Not root: let anyone write instead (the container's user is not ours).
            use std::os::unix::fs::PermissionsExt;
            let mode = if entry.is_dir() { 0o777 } else { 0o666 };
            std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode))
                .expect("permissions for the container's user");
        }
    }
}

fn walk(path: &Path) -> Vec<std::path::PathBuf> {
    let mut found = vec![path.to_path_buf()];
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).expect("read dir").flatten() {
            found.extend(walk(&entry.path()));
        }
    }
    found
}

#[test]
fn the_image_runs_as_a_non_root_user_with_git_and_a_ca_bundle() {
    let image = image();
    let out = Command::new("docker")
        .args(["run", "--rm", "--entrypoint", "sh", image, "-c"])
        .arg("id -u; git --version; test -s /etc/ssl/certs/ca-certificates.crt && echo ca-bundle; slipway --version")
        .output()
        .expect("docker run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], RUNNER_UID.to_string(), "{text}");
    assert!(lines[1].starts_with("git version"), "{text}");
    assert_eq!(lines[2], "ca-bundle");
    assert!(lines[3].starts_with("slipway "), "{text}");
}

#[test]
fn validate_in_the_container_annotates_a_broken_config() {
    let image = image();
    let ws = Workspace::new();
    let checkout = ws.path("checkout");
    std::fs::create_dir_all(&checkout).expect("checkout");
    std::fs::write(
        checkout.join("slipway.yml"),
        "app: shop\nservices:\n  web:\n    command: exec python3 app.py\n    instances: many\n",
    )
    .expect("slipway.yml");
    let payload = fixture("pull_request/opened.payload.json");
    let step = Step::new(&ws, &checkout, "pull_request", &payload)
        .var(
            "GITHUB_SHA",
            payload["pull_request"]["head"]["sha"]
                .as_str()
                .unwrap_or_default(),
        )
        .var("GITHUB_REPOSITORY", "Codertocat/Hello-World")
        .input("command", "validate")
        .input("github-token", "ghs_container_token_secret");
    give_to_runner(&checkout);
    give_to_runner(step.files.parent().expect("runner folder"));

    let ran = step.run_image(image, &[]);
    assert_eq!(ran.code, 1, "{ran}");
    action::assert_masked_first(&ran, "ghs_container_token_secret");
    assert!(
        ran.stdout
            .lines()
            .any(|l| l.starts_with("::error file=slipway.yml,line=5,col=16::")),
        "{ran}"
    );
    assert_eq!(step.outputs()["status"], "invalid");
    assert!(
        step.summary().contains("Slipway validate: invalid"),
        "{}",
        step.summary()
    );
}

#[test]
fn a_deploy_from_the_container_runs_on_the_server() {
    let image = image();
    let ws = Workspace::new();
    let server = ws.serve();
    let sha = harness::repository(&ws, &App::new("shop", "1"));
    let payload: serde_json::Value =
        serde_json::from_slice(&harness::push_payload(&sha)).expect("payload");
    let step = Step::new(&ws, &ws.path("work/shop"), "push", &payload)
        .var("GITHUB_SHA", &sha)
        .var("GITHUB_REF", "refs/heads/main")
        .var("GITHUB_REPOSITORY", harness::REPO)
        // The server (on this machine) fetches the commit from here.
        .var(
            "GITHUB_SERVER_URL",
            &format!("file://{}", ws.path("git").display()),
        )
        .input("command", "deploy")
        .input("server-url", &server.api)
        .input("api-token", &server.token);
    give_to_runner(&ws.path("work/shop"));
    give_to_runner(step.files.parent().expect("runner folder"));

    // The server listens on this machine's loopback.
    let ran = step.run_image(image, &["--network", "host"]);
    assert_eq!(ran.code, 0, "{ran}");
    action::assert_masked_first(&ran, &server.token);
    assert!(
        ran.stdout.contains("::group::start the new instances"),
        "{ran}"
    );
    let outputs = step.outputs();
    assert_eq!(outputs["status"], "succeeded", "{outputs:?}");
    assert_eq!(outputs["release"], "v1");
    assert_eq!(
        server
            .app_json("shop-staging.localhost")
            .expect("the app answers")["version"],
        "1"
    );
}
