//! Configuration errors, each with the file, line and column it is about.

use std::fmt;

/// One thing wrong with a configuration, printed as `FILE:LINE:COL: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Everything wrong with a configuration: one error per line when displayed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        Self(vec![error])
    }
}

impl ConfigError {
    pub fn new(
        file: impl Into<String>,
        line: usize,
        column: usize,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            line,
            column,
            message: message.into(),
        }
    }

    /// An error about a whole file (unreadable, too large): it points at its start.
    pub fn at_start(file: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(file, 1, 1, message)
    }

    /// Turns a serde_yaml error into ours: its position, and a message without the
    /// position (we print that in front) and in our wording.
    pub(super) fn from_yaml(file: &str, error: &serde_yaml::Error) -> Self {
        let (line, column) = error
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        let mut message = error.to_string();
        let position = format!(" at line {line} column {column}");
        if let Some(at) = message.find(&position) {
            message.replace_range(at..at + position.len(), "");
        }
        Self::new(file, line, column, reword(&message))
    }
}

/// Rewrites serde's messages so that they say what is allowed, in the words of a config
/// file (keys, not fields).
fn reword(message: &str) -> String {
    if let Some(at) = message.find("unknown field `") {
        let (prefix, rest) = message.split_at(at);
        let rest = &rest["unknown field `".len()..];
        // The key may hold backticks itself: it ends where serde's list of the allowed
        // ones begins (the last such separator: no allowed key contains it).
        let Some(end) = ["`, expected ", "`, there are no fields"]
            .iter()
            .filter_map(|separator| rest.rfind(separator))
            .max()
        else {
            return message.to_owned();
        };
        let key = crate::text::shown(&rest[..end]);
        let allowed: Vec<&str> = rest[end + 1..].split('`').skip(1).step_by(2).collect();
        let mut out = format!("{prefix}unknown key `{key}`; ");
        if allowed.is_empty() {
            out.push_str("no keys are allowed here");
        } else {
            out.push_str("allowed keys: ");
            out.push_str(&allowed.join(", "));
        }
        if key == "build" && allowed.contains(&"before_release") {
            out.push_str("; the build hook goes under `build:` as `hook:`");
        }
        return out;
    }
    if let Some(at) = message.find("missing field `") {
        let (prefix, rest) = message.split_at(at);
        let key = rest["missing field `".len()..].trim_end_matches('`');
        return format!("{prefix}missing key `{key}`; add it");
    }
    if let Some(at) = message.find("invalid type: ") {
        // serde says "invalid type: integer `5`, expected a hook: ..."; say what was found
        // in plainer words, keeping the allowed shapes at the end where the eye lands.
        let (prefix, rest) = message.split_at(at);
        if let Some((found, expected)) = rest["invalid type: ".len()..].split_once(", expected ") {
            // serde quotes a whole string value, however long it is.
            let found = match found.split_once(' ') {
                Some((kind, value)) if crate::text::needs_shortening(value) => {
                    format!("{kind} {}", crate::text::shown(value))
                }
                _ => found.to_owned(),
            };
            return format!("{prefix}wrong type: found {found}, expected {expected}");
        }
    }
    if message.contains("recursion limit exceeded") || message.contains("repetition limit exceeded")
    {
        return "the document nests or repeats aliases too deeply to be a config; write it out plainly".to_owned();
    }
    if message.starts_with("did not find")
        || message.starts_with("mapping values are not allowed")
        || message.starts_with("found ")
        || message.starts_with("while ")
        || message.starts_with("could not find")
        || message.starts_with("control characters")
        || message.starts_with("invalid ")
            && !message.starts_with("invalid type")
            && !message.starts_with("invalid value")
    {
        return format!("YAML syntax error: {message}");
    }
    message.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_messages_name_the_allowed_keys() {
        assert_eq!(
            reword("services.web: unknown field `comand`, expected one of `command`, `instances`, `size`"),
            "services.web: unknown key `comand`; allowed keys: command, instances, size"
        );
        assert_eq!(
            reword("unknown field `x`, expected `run`"),
            "unknown key `x`; allowed keys: run"
        );
        assert_eq!(
            reword("unknown field `x`, expected `a` or `b`"),
            "unknown key `x`; allowed keys: a, b"
        );
        assert_eq!(
            reword("unknown field `x`, there are no fields"),
            "unknown key `x`; no keys are allowed here"
        );
    }

    /// Found by the config fuzz target: a key with a backtick in it was cut there, and
    /// the rest of it (1 KB of it) was listed as the allowed keys.
    #[test]
    fn a_key_with_backticks_is_quoted_whole_and_shortened() {
        let long = format!("ith `slipway up`; the page {}", "a".repeat(1000));
        let message = format!("unknown field `{long}`, expected `command` or `instances`");
        let reworded = reword(&message);
        assert!(
            reworded.ends_with("; allowed keys: command, instances"),
            "{reworded}"
        );
        assert!(reworded.len() < 300, "{} bytes: {reworded}", reworded.len());
        assert_eq!(
            reword("unknown field `a`b`, there are no fields"),
            "unknown key `a`b`; no keys are allowed here"
        );
    }

    #[test]
    fn missing_field_says_key() {
        assert_eq!(
            reword("services.web: missing field `command`"),
            "services.web: missing key `command`; add it"
        );
    }

    #[test]
    fn alias_limits_are_explained() {
        assert_eq!(
            reword("repetition limit exceeded"),
            "the document nests or repeats aliases too deeply to be a config; write it out plainly"
        );
    }

    #[test]
    fn errors_display_one_per_line() {
        let errors = ConfigErrors(vec![
            ConfigError::new("slipway.yml", 3, 5, "first"),
            ConfigError::at_start("Procfile", "second"),
        ]);
        assert_eq!(
            errors.to_string(),
            "slipway.yml:3:5: first\nProcfile:1:1: second"
        );
    }
}
