//! What the Actions runner gives a step: the action's inputs (`INPUT_<NAME>`) and the
//! job's context (`GITHUB_*`), read once into plain values so the rest of the action
//! never touches the process environment and tests can build them by hand.

use std::collections::HashMap;
use std::path::PathBuf;

/// What the step is asked to do (`command` input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionCommand {
    Deploy,
    Redeploy,
    Rollback,
    Restart,
    Scale,
    Validate,
}

impl ActionCommand {
    pub const NAMES: &'static str = "deploy, redeploy, rollback, restart, scale, validate";

    pub fn parse(text: &str) -> Option<ActionCommand> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "deploy" => ActionCommand::Deploy,
            "redeploy" => ActionCommand::Redeploy,
            "rollback" => ActionCommand::Rollback,
            "restart" => ActionCommand::Restart,
            "scale" => ActionCommand::Scale,
            "validate" => ActionCommand::Validate,
            _ => return None,
        })
    }

    /// The operation kind the server's API knows it by.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionCommand::Deploy => "deploy",
            ActionCommand::Redeploy => "redeploy",
            ActionCommand::Rollback => "rollback",
            ActionCommand::Restart => "restart",
            ActionCommand::Scale => "scale",
            ActionCommand::Validate => "validate",
        }
    }
}

/// The names of the inputs action.yml declares, each read by `Inputs::read`.
pub const INPUT_NAMES: [&str; 12] = [
    "command",
    "environment",
    "app",
    "server-url",
    "api-token",
    "image",
    "config",
    "github-token",
    "wait",
    "scale",
    "size",
    "to",
];

/// The names of the outputs the step writes (see `report::Outcome::outputs`).
pub const OUTPUT_NAMES: [&str; 4] = ["operation-id", "release", "status", "url"];

/// The inputs of action.yml, trimmed; an empty input is `None` (the runner sets every
/// declared input, empty when the workflow gives none and there is no default).
#[derive(Clone, Default)]
pub struct Inputs {
    pub command: Option<String>,
    pub environment: Option<String>,
    pub app: Option<String>,
    pub server_url: Option<String>,
    pub api_token: Option<String>,
    pub image: Option<String>,
    pub config: Option<String>,
    pub github_token: Option<String>,
    /// `false` returns once the operation is queued.
    pub wait: bool,
    /// `web=3 worker=1` for `scale`.
    pub scale: Option<String>,
    /// Memory size in MB for `scale`.
    pub size: Option<String>,
    /// `vN` for `rollback`.
    pub to: Option<String>,
}

/// Written by hand: the two tokens never reach a log.
impl std::fmt::Debug for Inputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |v: &Option<String>| if v.is_some() { "****" } else { "none" };
        f.debug_struct("Inputs")
            .field("command", &self.command)
            .field("environment", &self.environment)
            .field("app", &self.app)
            .field("server_url", &self.server_url)
            .field("api_token", &set(&self.api_token))
            .field("image", &self.image)
            .field("config", &self.config)
            .field("github_token", &set(&self.github_token))
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

/// The job's context, from the runner's `GITHUB_*` variables.
#[derive(Clone, Debug, Default)]
pub struct Context {
    pub workspace: PathBuf,
    pub event_name: Option<String>,
    pub event_path: Option<PathBuf>,
    pub sha: Option<String>,
    pub reference: Option<String>,
    /// `owner/name`.
    pub repository: Option<String>,
    pub server_url: String,
    pub api_url: String,
    pub output_file: Option<PathBuf>,
    pub summary_file: Option<PathBuf>,
    /// The docker runtime is used in local mode when a Docker Engine is named.
    pub docker_host: bool,
}

/// The environment of the step, as name → value.
pub type Environment = HashMap<String, String>;

/// The runner's variable for an input: `INPUT_` + the name upper-cased, spaces as `_`;
/// a hyphen stays a hyphen (`github-token` → `INPUT_GITHUB-TOKEN`).
pub fn input_variable(name: &str) -> String {
    format!("INPUT_{}", name.replace(' ', "_").to_uppercase())
}

fn non_empty(env: &Environment, key: &str) -> Option<String> {
    env.get(key)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

impl Inputs {
    pub fn read(env: &Environment) -> Inputs {
        let input = |name: &str| non_empty(env, &input_variable(name));
        Inputs {
            command: input("command"),
            environment: input("environment"),
            app: input("app"),
            server_url: input("server-url"),
            api_token: input("api-token"),
            image: input("image"),
            config: input("config"),
            // The runner fills the default `${{ github.token }}`; outside it, the job's
            // GITHUB_TOKEN (when a workflow passes it as env) is the same token.
            github_token: input("github-token").or_else(|| non_empty(env, "GITHUB_TOKEN")),
            wait: !matches!(
                input("wait").map(|w| w.to_ascii_lowercase()).as_deref(),
                Some("false" | "no" | "0" | "off")
            ),
            scale: input("scale"),
            size: input("size"),
            to: input("to"),
        }
    }

    /// Remote mode needs both the server and a token for it.
    pub fn remote(&self) -> bool {
        self.server_url.is_some() || self.api_token.is_some()
    }

    /// Every secret the step holds, to be masked before anything is printed.
    pub fn secrets(&self) -> Vec<&str> {
        [&self.api_token, &self.github_token]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect()
    }
}

impl Context {
    pub fn read(env: &Environment) -> Context {
        let path = |key: &str| non_empty(env, key).map(PathBuf::from);
        Context {
            workspace: path("GITHUB_WORKSPACE")
                .or_else(|| std::env::current_dir().ok())
                .unwrap_or_else(|| PathBuf::from(".")),
            event_name: non_empty(env, "GITHUB_EVENT_NAME"),
            event_path: path("GITHUB_EVENT_PATH"),
            sha: non_empty(env, "GITHUB_SHA"),
            reference: non_empty(env, "GITHUB_REF"),
            repository: non_empty(env, "GITHUB_REPOSITORY"),
            server_url: non_empty(env, "GITHUB_SERVER_URL")
                .unwrap_or_else(|| "https://github.com".into()),
            api_url: non_empty(env, "GITHUB_API_URL")
                .unwrap_or_else(|| "https://api.github.com".into()),
            output_file: path("GITHUB_OUTPUT"),
            summary_file: path("GITHUB_STEP_SUMMARY"),
            docker_host: non_empty(env, "DOCKER_HOST").is_some(),
        }
    }

    /// The event's payload, when the runner wrote one.
    pub fn event(&self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.event_path.as_ref()?).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The repository's name (`shop` of `acme/shop`), the default app name.
    pub fn repository_name(&self) -> Option<&str> {
        self.repository.as_deref()?.rsplit('/').next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn inputs_are_read_as_the_runner_names_them() {
        assert_eq!(input_variable("github-token"), "INPUT_GITHUB-TOKEN");
        assert_eq!(input_variable("server-url"), "INPUT_SERVER-URL");
        let inputs = Inputs::read(&env(&[
            ("INPUT_COMMAND", " deploy "),
            ("INPUT_SERVER-URL", "http://127.0.0.1:7070"),
            ("INPUT_API-TOKEN", "sl_secret_value"),
            ("INPUT_GITHUB-TOKEN", "ghs"),
            ("INPUT_ENVIRONMENT", ""),
            ("INPUT_WAIT", "false"),
        ]));
        assert_eq!(inputs.command.as_deref(), Some("deploy"));
        assert_eq!(inputs.server_url.as_deref(), Some("http://127.0.0.1:7070"));
        assert_eq!(inputs.environment, None);
        assert!(!inputs.wait);
        assert!(inputs.remote());
        assert_eq!(inputs.secrets(), vec!["sl_secret_value", "ghs"]);
        assert!(!format!("{inputs:?}").contains("sl_secret_value"));
    }

    #[test]
    fn wait_defaults_to_true_and_the_token_falls_back_to_github_token() {
        let inputs = Inputs::read(&env(&[("GITHUB_TOKEN", "ghs_env")]));
        assert!(inputs.wait);
        assert!(!inputs.remote());
        assert_eq!(inputs.github_token.as_deref(), Some("ghs_env"));
    }
}
