//! What a step tells the workflow when it ends: its outputs (`operation-id`, `release`,
//! `status`, `url`) and a Markdown summary table of the operation's steps.

use serde_json::Value;

use crate::action::files::table_cell;

/// The end of one step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    pub command: String,
    /// `app/env`, when the command was about an environment.
    pub target: Option<String>,
    pub operation_id: Option<i64>,
    /// `v3`: the release serving after the operation.
    pub release: Option<String>,
    /// The operation's final state (`succeeded`, `failed`, `rolled_back`…), `queued`
    /// when the step did not wait, `valid`/`invalid` for `validate`, `skipped` when the
    /// event deploys nowhere.
    pub status: String,
    pub url: Option<String>,
    pub message: Option<String>,
    pub steps: Vec<StepRow>,
    /// Configuration problems (`file:line:col: message`), for `validate`.
    pub problems: Vec<String>,
    /// Whether the step succeeds.
    pub success: bool,
}

/// One row of the summary table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepRow {
    pub step: String,
    pub status: String,
    pub millis: Option<i64>,
    pub message: Option<String>,
}

impl Outcome {
    /// Fills in what the server's answer for `GET /api/v1/operations/{id}` says.
    pub fn from_operation(command: &str, detail: &Value) -> Outcome {
        let text = |key: &str| detail.get(key).and_then(Value::as_str).map(str::to_owned);
        let status = text("state").unwrap_or_else(|| "unknown".into());
        let target = detail.get("env").and_then(|env| {
            Some(format!(
                "{}/{}",
                env.get("app")?.as_str()?,
                env.get("env")?.as_str()?
            ))
        });
        let steps = detail
            .get("steps")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|step| StepRow {
                step: step
                    .get("step")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned(),
                status: step
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned(),
                millis: match (
                    step.get("started_at").and_then(Value::as_i64),
                    step.get("finished_at").and_then(Value::as_i64),
                ) {
                    (Some(start), Some(end)) => Some(end - start),
                    _ => None,
                },
                message: step
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
            .collect();
        Outcome {
            command: command.to_owned(),
            target,
            operation_id: detail.get("id").and_then(Value::as_i64),
            release: detail
                .get("release_after")
                .and_then(Value::as_i64)
                .map(|n| format!("v{n}")),
            success: status == "succeeded",
            status,
            url: None,
            message: text("message"),
            steps,
            problems: Vec::new(),
        }
    }

    /// The step's outputs, in action.yml's order; an unknown one is empty.
    pub fn outputs(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "operation-id",
                self.operation_id
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
            ),
            ("release", self.release.clone().unwrap_or_default()),
            ("status", self.status.clone()),
            ("url", self.url.clone().unwrap_or_default()),
        ]
    }

    /// The Markdown of the step summary.
    pub fn summary(&self) -> String {
        let icon = if self.success { "✅" } else { "❌" };
        let mut text = format!("### {icon} Slipway {}", self.command);
        if let Some(target) = &self.target {
            text.push_str(&format!(" of `{target}`"));
        }
        text.push_str(&format!(": {}\n\n", table_cell(&self.status)));
        text.push_str("| | |\n|---|---|\n");
        let mut row = |name: &str, value: &str| {
            if !value.is_empty() {
                text.push_str(&format!("| {name} | {} |\n", table_cell(value)));
            }
        };
        row(
            "Operation",
            &self
                .operation_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
        );
        row("Release", self.release.as_deref().unwrap_or_default());
        row("Status", &self.status);
        row("URL", self.url.as_deref().unwrap_or_default());
        row("Message", self.message.as_deref().unwrap_or_default());
        if !self.steps.is_empty() {
            text.push_str("\n| Step | Status | Duration | Message |\n|---|---|---:|---|\n");
            for step in &self.steps {
                text.push_str(&format!(
                    "| {} | {} | {} | {} |\n",
                    table_cell(&step.step),
                    table_cell(&step.status),
                    step.millis.map(duration).unwrap_or_default(),
                    table_cell(step.message.as_deref().unwrap_or_default()),
                ));
            }
        }
        if !self.problems.is_empty() {
            text.push('\n');
            for problem in &self.problems {
                text.push_str(&format!("- `{}`\n", problem.replace('`', "'")));
            }
        }
        text.push('\n');
        text
    }
}

/// `850 ms`, `12.3 s`, `4 min 05 s`.
pub fn duration(millis: i64) -> String {
    match millis {
        m if m < 1000 => format!("{m} ms"),
        m if m < 60_000 => format!("{:.1} s", m as f64 / 1000.0),
        m => format!("{} min {:02} s", m / 60_000, m / 1000 % 60),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_operation_becomes_outputs_and_a_table() {
        let detail = json!({
            "id": 7, "env": {"app": "shop", "env": "staging"}, "kind": "deploy",
            "state": "succeeded", "release_after": 3, "message": "deployed v3",
            "steps": [
                {"step": "build", "status": "succeeded", "started_at": 1000, "finished_at": 3500, "message": null},
                {"step": "switch", "status": "succeeded", "started_at": 3500, "finished_at": 3600, "message": "a|b"}
            ]
        });
        let mut outcome = Outcome::from_operation("deploy", &detail);
        outcome.url = Some("http://shop-staging.localhost".into());
        assert!(outcome.success);
        assert_eq!(
            outcome.outputs(),
            vec![
                ("operation-id", "7".to_owned()),
                ("release", "v3".to_owned()),
                ("status", "succeeded".to_owned()),
                ("url", "http://shop-staging.localhost".to_owned()),
            ]
        );
        let summary = outcome.summary();
        assert!(
            summary.starts_with("### ✅ Slipway deploy of `shop/staging`: succeeded"),
            "{summary}"
        );
        assert!(
            summary.contains("| build | succeeded | 2.5 s |  |"),
            "{summary}"
        );
        assert!(
            summary.contains("| switch | succeeded | 100 ms | a\\|b |"),
            "{summary}"
        );
    }
}
