//! Glob matching for `--github-repos` (`acme/*`) and for the branch and tag globs of
//! `environments` (`release/*`, `v*`): `*` matches any run of characters, `?` one.

/// Whether `text` matches `pattern` as a whole.
pub fn matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    // Iterative matching with one backtrack point: linear in practice, no recursion.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// Whether any pattern matches; repository names compare case-insensitively, as GitHub's do.
pub fn any_matches_repository(patterns: &[String], repository: &str) -> bool {
    patterns.is_empty()
        || patterns
            .iter()
            .any(|p| matches(&p.to_lowercase(), &repository.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_question_marks() {
        assert!(matches("main", "main"));
        assert!(!matches("main", "mainline"));
        assert!(matches("v*", "v1.2.3"));
        assert!(!matches("v*", "release-1"));
        assert!(matches("release/*", "release/2024-01"));
        assert!(matches("*", ""));
        assert!(matches("a?c", "abc"));
        assert!(matches("*-*-x", "a-b-c-x"));
    }

    #[test]
    fn repositories_match_without_case_and_everything_when_no_pattern_is_given() {
        assert!(any_matches_repository(&[], "Codertocat/Hello-World"));
        assert!(any_matches_repository(
            &["codertocat/*".into()],
            "Codertocat/Hello-World"
        ));
        assert!(!any_matches_repository(
            &["acme/*".into()],
            "Codertocat/Hello-World"
        ));
    }
}
