//! The `Procfile` of Heroku and Aptible: one `name: command` line per process type.
//!
//! Blank lines and `#` comments are skipped; every malformed line is reported (not just
//! the first), each with its line number. Heroku's `release` process type is not a
//! service: it runs once per release, which is Slipway's `before_release` hook.

use super::error::{ConfigError, ConfigErrors};
use super::values::check_service_name;

/// What a Procfile declares.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Procfile {
    /// `(process type, command)` in file order, `release` excluded.
    pub processes: Vec<(String, String)>,
    /// The command of Heroku's `release` process type, if any.
    pub release: Option<String>,
}

pub(super) fn parse_procfile(text: &str, file: &str) -> Result<Procfile, ConfigErrors> {
    let mut procfile = Procfile::default();
    let mut seen: Vec<(String, usize)> = Vec::new();
    let mut errors = Vec::new();
    for (index, raw_line) in text.lines().enumerate() {
        let line_number = index + 1;
        let indent = raw_line.len() - raw_line.trim_start().len();
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let error =
            |column: usize, message: String| ConfigError::new(file, line_number, column, message);
        let Some((name, command)) = line.split_once(':') else {
            errors.push(error(
                indent + 1,
                format!(
                    "`{}` is not a process line; write `name: command`, e.g. `web: exec python3 app.py`",
                    crate::text::shown(line)
                ),
            ));
            continue;
        };
        let name = name.trim_end();
        if let Err(message) = check_service_name(name) {
            let message = if crate::text::needs_shortening(name) {
                message.replace(name, &crate::text::shown(name))
            } else {
                message
            };
            errors.push(error(
                indent + 1,
                format!("{message} (a Procfile line is `name: command`)"),
            ));
            continue;
        }
        let command = command.trim();
        if command.is_empty() {
            let column = indent + line.find(':').unwrap_or(0) + 2;
            errors.push(error(
                column,
                format!("process `{name}` has no command; write `{name}: <command>`"),
            ));
            continue;
        }
        if let Some((_, first_line)) = seen.iter().find(|(seen_name, _)| seen_name == name) {
            errors.push(error(
                indent + 1,
                format!("process `{name}` is defined twice (first on line {first_line}); keep one"),
            ));
            continue;
        }
        seen.push((name.to_owned(), line_number));
        if name == "release" {
            procfile.release = Some(command.to_owned());
        } else {
            procfile
                .processes
                .push((name.to_owned(), command.to_owned()));
        }
    }
    if errors.is_empty() {
        Ok(procfile)
    } else {
        Err(ConfigErrors(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_processes_in_order_skipping_comments_and_blank_lines() {
        let text = "# the app\nweb: exec python3 app.py --port $PORT\n\nworker:   exec python3 worker.py  \n";
        let procfile = parse_procfile(text, "Procfile").unwrap();
        assert_eq!(
            procfile.processes,
            vec![
                (
                    "web".to_owned(),
                    "exec python3 app.py --port $PORT".to_owned()
                ),
                ("worker".to_owned(), "exec python3 worker.py".to_owned()),
            ]
        );
        assert_eq!(procfile.release, None);
    }

    #[test]
    fn a_command_may_contain_colons() {
        let procfile =
            parse_procfile("web: gunicorn app:main -b 0.0.0.0:$PORT", "Procfile").unwrap();
        assert_eq!(
            procfile.processes[0].1,
            "gunicorn app:main -b 0.0.0.0:$PORT"
        );
    }

    #[test]
    fn the_release_process_is_kept_apart() {
        let procfile = parse_procfile("release: ./migrate\nweb: ./serve", "Procfile").unwrap();
        assert_eq!(procfile.release.as_deref(), Some("./migrate"));
        assert_eq!(procfile.processes.len(), 1);
    }

    #[test]
    fn every_malformed_line_is_reported_with_its_line_number() {
        let text = "web: ./serve\njust some words\nbad name: x\nworker:\nweb: ./again\n";
        let errors = parse_procfile(text, "app/Procfile")
            .unwrap_err()
            .to_string();
        let lines: Vec<&str> = errors.lines().collect();
        assert_eq!(lines.len(), 4, "{errors}");
        assert_eq!(
            lines[0],
            "app/Procfile:2:1: `just some words` is not a process line; write `name: command`, e.g. `web: exec python3 app.py`"
        );
        assert!(
            lines[1].starts_with("app/Procfile:3:1: `bad name` is not a valid service name"),
            "{}",
            lines[1]
        );
        assert_eq!(
            lines[2],
            "app/Procfile:4:8: process `worker` has no command; write `worker: <command>`"
        );
        assert_eq!(
            lines[3],
            "app/Procfile:5:1: process `web` is defined twice (first on line 1); keep one"
        );
    }
}
