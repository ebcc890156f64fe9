//! Workflow commands: the `::name key=value::message` lines the Actions runner reads from
//! a step's output (`::group::`, `::error file=…,line=…,col=…::`, `::add-mask::`), with
//! the runner's escaping, and the printer every line of the action goes through.
//!
//! The printer is the one door to the job log: it announces every secret with
//! `::add-mask::` before anything else is printed, and replaces secret values in what it
//! prints, so a secret reaches the log neither before the runner knows it nor after.

use std::io::Write;

/// Escapes a command's message (data): `%`, CR and LF.
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value: as data, plus `:` and `,` which end a property.
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// One workflow command, e.g. `::error file=slipway.yml,line=3,col=5::message`.
pub fn command(name: &str, properties: &[(&str, String)], message: &str) -> String {
    let properties: Vec<String> = properties
        .iter()
        .map(|(key, value)| format!("{key}={}", escape_property(value)))
        .collect();
    let separator = if properties.is_empty() { "" } else { " " };
    format!(
        "::{name}{separator}{}::{}",
        properties.join(","),
        escape_data(message)
    )
}

/// Where an annotation points.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Place {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

/// Prints to the job log (stdout), masking secrets.
pub struct Printer {
    out: Box<dyn Write + Send>,
    secrets: Vec<String>,
    in_group: bool,
}

impl Printer {
    /// A printer to stdout that has announced `secrets` to the runner.
    pub fn stdout(secrets: &[&str]) -> Printer {
        Printer::new(Box::new(std::io::stdout()), secrets)
    }

    /// Announces every secret (`::add-mask::`, each line of a multi-line one too) before
    /// anything else is written.
    pub fn new(out: Box<dyn Write + Send>, secrets: &[&str]) -> Printer {
        let mut masked: Vec<String> = Vec::new();
        for secret in secrets.iter().filter(|s| !s.trim().is_empty()) {
            masked.push((*secret).to_owned());
            masked.extend(
                secret
                    .lines()
                    .map(str::trim)
                    .filter(|l| l.len() >= 3 && *l != *secret)
                    .map(str::to_owned),
            );
        }
        // Longest first, so a secret that contains another is replaced whole.
        masked.sort_by_key(|s| std::cmp::Reverse(s.len()));
        masked.dedup();
        let mut printer = Printer {
            out,
            secrets: Vec::new(),
            in_group: false,
        };
        for secret in &masked {
            printer.raw(&command("add-mask", &[], secret));
        }
        printer.secrets = masked;
        printer
    }

    fn mask(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "***");
            }
        }
        text
    }

    fn raw(&mut self, line: &str) {
        // A log line that cannot be written (a closed stdout) must not fail the deploy.
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
    }

    /// A plain line. A line that would read as a workflow command (a hook printing
    /// `::set-output`…) is indented, so an app's output cannot command the runner.
    pub fn line(&mut self, text: &str) {
        let text = self.mask(text);
        for line in text.split('\n') {
            let line = line.trim_end_matches('\r');
            if line.trim_start().starts_with("::") {
                self.raw(&format!("  {}", line.trim_start().replacen("::", ": :", 1)));
            } else {
                self.raw(line);
            }
        }
    }

    /// Opens a collapsible group, closing the one open.
    pub fn group(&mut self, title: &str) {
        self.end_group();
        let line = command("group", &[], &self.mask(title));
        self.raw(&line);
        self.in_group = true;
    }

    pub fn end_group(&mut self) {
        if self.in_group {
            self.raw("::endgroup::");
            self.in_group = false;
        }
    }

    /// `::error`, `::warning` or `::notice`, on a place of a file when given.
    pub fn annotation(&mut self, level: &str, place: Option<&Place>, message: &str) {
        let properties = match place {
            Some(place) => vec![
                ("file", self.mask(&place.file)),
                ("line", place.line.to_string()),
                ("col", place.column.to_string()),
            ],
            None => Vec::new(),
        };
        let line = command(level, &properties, &self.mask(message));
        self.raw(&line);
    }

    pub fn error(&mut self, message: &str) {
        self.annotation("error", None, message);
    }

    pub fn notice(&mut self, message: &str) {
        self.annotation("notice", None, message);
    }

    /// The secrets this printer masks, for the other files the step writes.
    pub fn mask_text(&self, text: &str) -> String {
        self.mask(text)
    }
}

impl Drop for Printer {
    fn drop(&mut self) {
        self.end_group();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().map(|b| b.clone()).unwrap_or_default())
                .unwrap_or_default()
        }
    }

    #[test]
    fn escaping_follows_the_runner() {
        assert_eq!(escape_data("50% done\r\nnext"), "50%25 done%0D%0Anext");
        assert_eq!(escape_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
        assert_eq!(
            command(
                "error",
                &[
                    ("file", "slipway.yml".into()),
                    ("line", "3".into()),
                    ("col", "5".into())
                ],
                "unknown key `servces`:\nallowed: services"
            ),
            "::error file=slipway.yml,line=3,col=5::unknown key `servces`:%0Aallowed: services"
        );
        assert_eq!(command("endgroup", &[], ""), "::endgroup::");
    }

    #[test]
    fn secrets_are_announced_first_and_never_printed() {
        let out = Shared::default();
        let mut printer = Printer::new(
            Box::new(out.clone()),
            &["s3cr3t-token", "line-one\nline-two"],
        );
        printer.line("using s3cr3t-token now");
        printer.group("build with line-two");
        printer.line("::set-output name=x::s3cr3t-token");
        drop(printer);
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[..4].iter().all(|l| l.starts_with("::add-mask::")),
            "{text}"
        );
        assert!(lines.contains(&"::add-mask::line-one%0Aline-two"), "{text}");
        assert!(lines.contains(&"::add-mask::line-two"), "{text}");
        assert!(lines.contains(&"using *** now"), "{text}");
        assert!(lines.contains(&"::group::build with ***"), "{text}");
        assert!(lines.contains(&"  : :set-output name=x::***"), "{text}");
        assert_eq!(lines.last(), Some(&"::endgroup::"));
        assert_eq!(text.matches("s3cr3t").count(), 1, "{text}");
    }
}
