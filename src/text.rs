//! How text from outside — a config value, a name in a URL, a header — is quoted in an
//! error message: short, and with control characters escaped, so that a megabyte-long
//! or binary value neither floods a terminal, a log or a check run nor garbles it.

/// The most characters of a value an error message quotes.
pub const SHOWN_CHARS: usize = 60;

/// `text` as an error message quotes it: its first `SHOWN_CHARS` characters (then `…`),
/// with control characters written as escapes (`\n`, `\u{0}`).
pub fn shown(text: &str) -> String {
    let mut out = String::new();
    for (count, c) in text.chars().enumerate() {
        if count == SHOWN_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `shown` would change `text`.
pub fn needs_shortening(text: &str) -> bool {
    text.chars().nth(SHOWN_CHARS).is_some() || text.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_plain_text_is_kept() {
        assert_eq!(shown("web"), "web");
        assert!(!needs_shortening("web"));
    }

    #[test]
    fn long_text_is_cut_and_control_characters_escaped() {
        let long = "a".repeat(1_000_000);
        assert_eq!(shown(&long), format!("{}…", "a".repeat(SHOWN_CHARS)));
        assert_eq!(shown("../x\0\n"), "../x\\u{0}\\n");
        assert_eq!(shown("\u{1b}[31m"), "\\u{1b}[31m");
        assert!(needs_shortening("a\tb"));
    }
}
