//! The Actions runner's contract, reproduced for tests: a step's environment (`INPUT_*`
//! as the runner names them, `GITHUB_*`), its files (`GITHUB_EVENT_PATH` holding a real
//! webhook payload, `GITHUB_OUTPUT`, `GITHUB_STEP_SUMMARY`) and its mounts when it runs
//! as a container, and readers for what the step left in them.
//!
//! A step runs the real `slipway action`, either as the binary (`Step::run`) or as the
//! action's image on the Docker Engine (`Step::run_image`) with the mounts and working
//! directory the runner uses.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Workspace, SLIPWAY};

/// How long a step may take before the test gives up on it.
const STEP_LIMIT: Duration = Duration::from_secs(180);

/// A real webhook payload from the shared fixtures.
pub fn fixture(relative: &str) -> Value {
    let path = format!(
        "{}/../shared/fixtures/github-webhooks/{relative}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("the fixture exists"))
        .expect("the fixture is JSON")
}

/// One step of a job, as the runner prepares it.
pub struct Step {
    /// The repository's checkout (`/github/workspace` in a container).
    pub workspace: PathBuf,
    /// The runner's file commands folder (`/github/file_commands`).
    pub files: PathBuf,
    /// The folder of the event payload (`/github/workflow`).
    pub workflow: PathBuf,
    /// The step's environment with host paths.
    vars: Vec<(String, String)>,
    inputs: Vec<(String, String)>,
}

/// What a finished step printed and returned.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Step {
    /// A step of a job started by `event` with `payload`, on the checkout `workspace`.
    pub fn new(ws: &Workspace, workspace: &Path, event: &str, payload: &Value) -> Step {
        let name: u32 = rand::random();
        let files = ws.path(&format!("runner-{name:x}/file_commands"));
        let workflow = ws.path(&format!("runner-{name:x}/workflow"));
        std::fs::create_dir_all(&files).expect("file commands folder");
        std::fs::create_dir_all(&workflow).expect("workflow folder");
        std::fs::write(workflow.join("event.json"), payload.to_string()).expect("event.json");
        // The runner creates both files, empty, before the step starts.
        std::fs::write(files.join("set_output"), "").expect("GITHUB_OUTPUT");
        std::fs::write(files.join("step_summary"), "").expect("GITHUB_STEP_SUMMARY");
        let vars = vec![
            ("CI", "true".to_owned()),
            ("GITHUB_ACTIONS", "true".to_owned()),
            ("GITHUB_EVENT_NAME", event.to_owned()),
            ("GITHUB_RUN_ID", "1658821493".to_owned()),
            ("GITHUB_ACTOR", "octocat".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Step {
            workspace: workspace.to_path_buf(),
            files,
            workflow,
            vars,
            inputs: Vec::new(),
        }
    }

    /// A `GITHUB_*` (or other) variable of the job.
    pub fn var(mut self, name: &str, value: &str) -> Step {
        self.vars.retain(|(k, _)| k != name);
        self.vars.push((name.to_owned(), value.to_owned()));
        self
    }

    /// An input, set as the runner sets it: `INPUT_` + upper-cased name, hyphens kept.
    pub fn input(mut self, name: &str, value: &str) -> Step {
        self.inputs
            .push((format!("INPUT_{}", name.to_uppercase()), value.to_owned()));
        self
    }

    /// Runs `slipway action` on this machine, with only the step's environment.
    pub fn run(&self) -> Ran {
        let mut command = Command::new(SLIPWAY);
        command
            .arg("action")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "HOME",
                std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()),
            )
            .env("GITHUB_WORKSPACE", &self.workspace)
            .env("GITHUB_EVENT_PATH", self.workflow.join("event.json"))
            .env("GITHUB_OUTPUT", self.files.join("set_output"))
            .env("GITHUB_STEP_SUMMARY", self.files.join("step_summary"))
            .envs(self.vars.iter().cloned())
            .envs(self.inputs.iter().cloned())
            .current_dir(&self.workspace);
        run_bounded(command, &self.files)
    }

    /// Runs the action's image as the runner does: the workspace, the file commands and
    /// the workflow folder mounted, the working directory set on the command line.
    pub fn run_image(&self, image: &str, extra: &[&str]) -> Ran {
        let mount = |host: &Path, inside: &str| format!("{}:{inside}", host.display());
        let mut command = Command::new("docker");
        command.args(["run", "--rm", "--workdir", "/github/workspace"]);
        command.args(extra);
        command.args([
            "-v",
            &mount(&self.workspace, "/github/workspace"),
            "-v",
            &mount(&self.files, "/github/file_commands"),
            "-v",
            &mount(&self.workflow, "/github/workflow"),
            "-e",
            "GITHUB_WORKSPACE=/github/workspace",
            "-e",
            "GITHUB_EVENT_PATH=/github/workflow/event.json",
            "-e",
            "GITHUB_OUTPUT=/github/file_commands/set_output",
            "-e",
            "GITHUB_STEP_SUMMARY=/github/file_commands/step_summary",
        ]);
        for (name, value) in self.vars.iter().chain(&self.inputs) {
            command.args(["-e", &format!("{name}={value}")]);
        }
        command.arg(image);
        run_bounded(command, &self.files)
    }

    /// The outputs the step wrote, read as the runner reads `name<<DELIMITER` blocks.
    pub fn outputs(&self) -> HashMap<String, String> {
        let text = std::fs::read_to_string(self.files.join("set_output")).expect("GITHUB_OUTPUT");
        parse_outputs(&text)
    }

    pub fn summary(&self) -> String {
        std::fs::read_to_string(self.files.join("step_summary")).expect("GITHUB_STEP_SUMMARY")
    }
}

/// Parses `$GITHUB_OUTPUT` like the runner: `name=value` lines, or `name<<DELIMITER`,
/// the value's lines, and the delimiter alone on a line.
pub fn parse_outputs(text: &str) -> HashMap<String, String> {
    let mut outputs = HashMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delimiter)) = line.split_once("<<") {
            let mut value = Vec::new();
            loop {
                let next = lines
                    .next()
                    .unwrap_or_else(|| panic!("no closing delimiter `{delimiter}` in:\n{text}"));
                if next == delimiter {
                    break;
                }
                value.push(next);
            }
            outputs.insert(name.to_owned(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            outputs.insert(name.to_owned(), value.to_owned());
        } else {
            panic!("`{line}` is not an output line in:\n{text}");
        }
    }
    outputs
}

/// Checks the runner learns of `secret` (`::add-mask::`) before any other line is
/// printed, and that no other line of the step carries it.
pub fn assert_masked_first(ran: &Ran, secret: &str) {
    let lines: Vec<&str> = ran.stdout.lines().collect();
    let masks = lines
        .iter()
        .take_while(|l| l.starts_with("::add-mask::"))
        .count();
    assert!(
        lines[..masks].contains(&format!("::add-mask::{secret}").as_str()),
        "the secret is not masked before the first line:\n{ran}"
    );
    assert!(
        lines[masks..].iter().all(|l| !l.contains(secret)) && !ran.stderr.contains(secret),
        "a secret was printed:\n{ran}"
    );
}

/// The `::group::` titles, in order.
pub fn groups(ran: &Ran) -> Vec<String> {
    ran.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("::group::"))
        .map(str::to_owned)
        .collect()
}

fn run_bounded(mut command: Command, scratch: &Path) -> Ran {
    let name: u64 = rand::random();
    let out_path = scratch.with_file_name(format!(".step-{name:x}.out"));
    let err_path = scratch.with_file_name(format!(".step-{name:x}.err"));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("the step starts");
    let deadline = Instant::now() + STEP_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the step") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the step did not finish within {STEP_LIMIT:?}: {}",
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}
