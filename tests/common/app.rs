//! App folders for tests: a small python3 web app (its version, pid, release and the
//! variables it was given at `/`, a `/healthcheck`) and a `slipway.yml` built from a few
//! parameters, plus helpers that write hook values and hooks that trace themselves.

use std::path::Path;

/// The web app every test deploys. Marker files next to it change its behaviour:
/// `BROKEN` makes `/healthcheck` answer 500, `IGNORE_TERM` makes it ignore SIGTERM; and
/// a faulty app's gates, each naming a file that the test creates when it wants the
/// fault: `CRASH_WHEN` (the app exits with code 3 once the file exists) and `SICK_WHEN`
/// (`/healthcheck` answers 500 once it exists, while `/` still answers).
/// `/wait?<file>` is a request that stays in flight: it creates `<file>.waiting`, then
/// answers once `<file>` exists (at most a minute later).
pub const APP_PY: &str = r#"import json, os, signal, sys, threading, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = open(os.path.join(HERE, "VERSION")).read().strip()
BROKEN = os.path.exists(os.path.join(HERE, "BROKEN"))
IGNORE_TERM = os.path.exists(os.path.join(HERE, "IGNORE_TERM"))


def gate(name):
    marker = os.path.join(HERE, name)
    return open(marker).read().strip() if os.path.exists(marker) else None


CRASH_WHEN, SICK_WHEN = gate("CRASH_WHEN"), gate("SICK_WHEN")
KEYS = ["SLIPWAY_APP", "SLIPWAY_ENVIRONMENT", "SLIPWAY_SERVICE", "SLIPWAY_RELEASE", "SLIPWAY_COMMIT",
        "SLIPWAY_OPERATION", "SLIPWAY_CONTAINER_SIZE", "PORT", "GREETING"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Head and body go in two sends: without this, keep-alive requests wait for a
    # delayed ACK (~40 ms each).
    disable_nagle_algorithm = True

    def do_GET(self):
        if self.path == "/healthcheck":
            sick = BROKEN or (SICK_WHEN is not None and os.path.exists(SICK_WHEN))
            status, body = (500, "broken\n") if sick else (200, "ok\n")
        elif self.path.startswith("/wait?"):
            waited_for = urllib.parse.unquote(self.path[len("/wait?"):])
            open(waited_for + ".waiting", "w").close()
            for _ in range(1200):
                if os.path.exists(waited_for):
                    break
                time.sleep(0.05)
            status, body = 200, "waited\n"
        else:
            status = 200
            body = json.dumps({"version": VERSION, "pid": os.getpid(),
                               "env": {k: os.environ.get(k) for k in KEYS}}) + "\n"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
server.daemon_threads = True
if IGNORE_TERM:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
if CRASH_WHEN is not None:
    def crash_when_told():
        while not os.path.exists(CRASH_WHEN):
            time.sleep(0.01)
        os._exit(3)
    threading.Thread(target=crash_when_told, daemon=True).start()
print("version", VERSION, "on", os.environ["PORT"], flush=True)
server.serve_forever()
"#;

/// The parameters of a test app.
#[derive(Clone, Debug)]
pub struct App {
    pub name: String,
    pub version: String,
    pub instances: u32,
    pub stop_timeout: String,
    pub zero_downtime: Option<bool>,
    /// How long a new instance may take to become healthy.
    pub deadline: String,
    pub broken: bool,
    pub ignore_sigterm: bool,
    /// The app exits (code 3) once this file exists.
    pub crash_when: Option<std::path::PathBuf>,
    /// `/healthcheck` answers 500 once this file exists.
    pub sick_when: Option<std::path::PathBuf>,
    /// The service's command (default `exec python3 app.py`).
    pub command: Option<String>,
    /// `http.watch`, e.g. `20s`.
    pub watch: Option<String>,
    /// The YAML value of `build.hook`.
    pub build_hook: Option<String>,
    /// `(hook name, YAML value)` under `hooks:`.
    pub hooks: Vec<(String, String)>,
    /// `(environment name, YAML value)` under `environments:`.
    pub environments: Vec<(String, String)>,
}

impl App {
    pub fn new(name: &str, version: &str) -> App {
        App {
            name: name.to_owned(),
            version: version.to_owned(),
            instances: 1,
            stop_timeout: "5s".to_owned(),
            zero_downtime: None,
            deadline: "20s".to_owned(),
            broken: false,
            ignore_sigterm: false,
            crash_when: None,
            sick_when: None,
            command: None,
            watch: None,
            build_hook: None,
            hooks: Vec::new(),
            environments: Vec::new(),
        }
    }

    pub fn version(mut self, version: &str) -> App {
        self.version = version.to_owned();
        self
    }

    pub fn hook(mut self, name: &str, value: String) -> App {
        self.hooks.retain(|(n, _)| n != name);
        self.hooks.push((name.to_owned(), value));
        self
    }

    pub fn slipway_yml(&self) -> String {
        let command = self
            .command
            .as_deref()
            .map_or_else(|| "exec python3 app.py".to_owned(), yaml_str);
        let mut yml = format!(
            "app: {}\nservices:\n  web:\n    command: {}\n    instances: {}\n    stop_timeout: {}\n",
            self.name,
            command,
            self.instances,
            self.stop_timeout
        );
        if let Some(zero_downtime) = self.zero_downtime {
            yml.push_str(&format!("    zero_downtime: {zero_downtime}\n"));
        }
        yml.push_str(&format!(
            "    http:\n      health:\n        path: /healthcheck\n        strict: true\n        interval: 100ms\n        timeout: 1s\n        deadline: {}\n",
            self.deadline
        ));
        if let Some(watch) = &self.watch {
            yml.push_str(&format!("      watch: {watch}\n"));
        }
        if let Some(build) = &self.build_hook {
            yml.push_str(&format!("build:\n  hook: {build}\n"));
        }
        if !self.hooks.is_empty() {
            yml.push_str("hooks:\n");
            for (name, value) in &self.hooks {
                yml.push_str(&format!("  {name}: {value}\n"));
            }
        }
        if !self.environments.is_empty() {
            yml.push_str("environments:\n");
            for (name, value) in &self.environments {
                yml.push_str(&format!("  {name}: {value}\n"));
            }
        }
        yml
    }

    /// Writes (or rewrites) the app into `dir`.
    pub fn write(&self, dir: &Path) {
        std::fs::create_dir_all(dir).expect("the app folder");
        std::fs::write(dir.join("app.py"), APP_PY).expect("app.py");
        std::fs::write(dir.join("VERSION"), format!("{}\n", self.version)).expect("VERSION");
        std::fs::write(dir.join("slipway.yml"), self.slipway_yml()).expect("slipway.yml");
        for (marker, on) in [
            ("BROKEN", self.broken),
            ("IGNORE_TERM", self.ignore_sigterm),
        ] {
            let path = dir.join(marker);
            if on {
                std::fs::write(&path, "").expect("a marker file");
            } else {
                let _ = std::fs::remove_file(&path);
            }
        }
        for (marker, gate) in [
            ("CRASH_WHEN", &self.crash_when),
            ("SICK_WHEN", &self.sick_when),
        ] {
            let path = dir.join(marker);
            match gate {
                Some(gate) => std::fs::write(&path, gate.display().to_string()).expect("a gate"),
                None => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }
}

/// A YAML string value (JSON strings are YAML double-quoted scalars).
pub fn yaml_str(script: &str) -> String {
    serde_json::to_string(script).expect("a string serializes")
}

/// A YAML list of commands.
pub fn yaml_list(commands: &[&str]) -> String {
    serde_json::to_string(commands).expect("a list serializes")
}

/// A hook with a timeout: `{ run: ..., timeout: ... }`.
pub fn yaml_timed(script: &str, timeout: &str) -> String {
    format!("{{ run: {}, timeout: {timeout} }}", yaml_str(script))
}

/// The variables a traced hook records.
pub const TRACED: [&str; 10] = [
    "SLIPWAY_APP",
    "SLIPWAY_ENVIRONMENT",
    "SLIPWAY_SERVICE",
    "SLIPWAY_RELEASE",
    "SLIPWAY_COMMIT",
    "SLIPWAY_OPERATION",
    "SLIPWAY_CONTAINER_SIZE",
    "PORT",
    "SLIPWAY_APP_DIR",
    "SLIPWAY_CACHE_DIR",
];

/// A shell command that appends `label KEY=value ...` (every traced variable) to `trace`.
pub fn trace_command(label: &str, trace: &Path) -> String {
    let pairs: Vec<String> = TRACED
        .iter()
        .map(|key| format!("{key}=${{{key}:-}}"))
        .collect();
    format!(
        "echo \"{label} {}\" >> '{}'",
        pairs.join(" "),
        trace.display()
    )
}

/// One line of a trace: its label and variables.
pub struct TraceLine {
    pub label: String,
    pub vars: std::collections::BTreeMap<String, String>,
}

impl TraceLine {
    pub fn var(&self, key: &str) -> &str {
        self.vars.get(key).map_or("", String::as_str)
    }
}

pub fn parse_trace(lines: &[String]) -> Vec<TraceLine> {
    lines
        .iter()
        .map(|line| {
            let mut words = line.split_whitespace();
            let label = words.next().unwrap_or_default().to_owned();
            let vars = words
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            TraceLine { label, vars }
        })
        .collect()
}

/// A YAML block scalar holding a multi-line script, for a key indented two spaces.
pub fn yaml_script(lines: &[&str]) -> String {
    let mut value = "|\n".to_owned();
    for line in lines {
        value.push_str("    ");
        value.push_str(line);
        value.push('\n');
    }
    value.trim_end().to_owned()
}

/// Makes `dir` a git repository (when it is not one yet) and commits everything in it;
/// returns the new HEAD.
pub fn git_commit_all(dir: &Path, message: &str) -> String {
    let git = |args: &[&str]| {
        let output = std::process::Command::new("git")
            .args([
                "-c",
                "user.name=Slipway Test",
                "-c",
                "user.email=test@example.com",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git runs");
        assert!(
            output.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    if !dir.join(".git").exists() {
        git(&["init", "--quiet", "--initial-branch=main"]);
    }
    git(&["add", "--all"]);
    git(&["commit", "--quiet", "--allow-empty", "-m", message]);
    git(&["rev-parse", "HEAD"])
}
