//! The runner's file commands: step outputs appended to `$GITHUB_OUTPUT` in the
//! multi-line-safe `name<<DELIMITER` form, and Markdown appended to
//! `$GITHUB_STEP_SUMMARY`, kept under the runner's 1 MiB limit per step.

use std::io::Write;
use std::path::Path;

/// The runner refuses a step summary past this size (and shows none of it).
pub const SUMMARY_LIMIT_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FileCommandError {
    #[error("cannot write the step's {what} file {path}: {source}")]
    Write {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
}

/// `name<<DELIMITER\nvalue\nDELIMITER\n` for each output, with a random delimiter that
/// does not occur in the value (so a value with newlines, or one that looks like a
/// delimiter, cannot end early or add outputs).
pub fn format_outputs(outputs: &[(&str, String)]) -> String {
    let mut text = String::new();
    for (name, value) in outputs {
        let delimiter = loop {
            let candidate = format!("ghadelimiter_{:032x}", rand::random::<u128>());
            if !value.contains(&candidate) {
                break candidate;
            }
        };
        text.push_str(&format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"));
    }
    text
}

fn append(path: &Path, what: &'static str, text: &str) -> Result<(), FileCommandError> {
    let error = |source| FileCommandError::Write {
        what,
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(error)?;
    file.write_all(text.as_bytes()).map_err(error)
}

/// Appends the outputs to `$GITHUB_OUTPUT`.
pub fn write_outputs(path: &Path, outputs: &[(&str, String)]) -> Result<(), FileCommandError> {
    append(path, "GITHUB_OUTPUT", &format_outputs(outputs))
}

/// Appends Markdown to `$GITHUB_STEP_SUMMARY`, cut (on a line boundary, with a note) so
/// the file stays under the runner's limit together with what is already in it.
pub fn write_summary(path: &Path, markdown: &str) -> Result<(), FileCommandError> {
    let existing = std::fs::metadata(path).map_or(0, |m| m.len() as usize);
    let room = SUMMARY_LIMIT_BYTES.saturating_sub(existing);
    append(path, "GITHUB_STEP_SUMMARY", &fit(markdown, room))
}

/// `markdown`, or as many of its first lines as fit in `room` bytes with a closing note.
pub fn fit(markdown: &str, room: usize) -> String {
    if markdown.len() <= room {
        return markdown.to_owned();
    }
    let note = "\n\n_The rest is cut: a step summary may not exceed 1 MiB. The operation's full log is on the Slipway server._\n";
    let budget = room.saturating_sub(note.len());
    let mut kept = String::new();
    for line in markdown.split_inclusive('\n') {
        if kept.len() + line.len() > budget {
            break;
        }
        kept.push_str(line);
    }
    if kept.len() + note.len() <= room {
        kept.push_str(note);
    }
    kept
}

/// Escapes text for a cell of a Markdown table: pipes, and newlines as spaces.
pub fn table_cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_use_a_delimiter_absent_from_the_value() {
        let text = format_outputs(&[("status", "succeeded".into()), ("url", "a\nb".into())]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 7, "{text}");
        let delimiter = lines[0].strip_prefix("status<<").expect("heredoc form");
        assert!(delimiter.starts_with("ghadelimiter_"));
        assert_eq!(lines[1], "succeeded");
        assert_eq!(lines[2], delimiter);
        assert_eq!(&lines[4..6], &["a", "b"]);
    }

    #[test]
    fn the_summary_is_cut_under_the_limit() {
        let dir = std::env::temp_dir().join(format!("slipway-summary-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("summary.md");
        std::fs::write(&path, "x".repeat(1000)).expect("existing summary");
        let big: String = (0..200_000).map(|i| format!("| line {i} |\n")).collect();
        write_summary(&path, &big).expect("written");
        let written = std::fs::read_to_string(&path).expect("read");
        assert!(written.len() <= SUMMARY_LIMIT_BYTES, "{}", written.len());
        assert!(written.len() > SUMMARY_LIMIT_BYTES - 1000);
        assert!(written.ends_with("on the Slipway server._\n"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn cells_keep_the_table_whole() {
        assert_eq!(table_cell("a|b\nc"), "a\\|b c");
    }
}
