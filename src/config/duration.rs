//! Durations as users write them in `slipway.yml`: `500ms`, `10s`, `15m`, `1h`, `1h30m`.
//!
//! A bare number is refused on purpose: `stop_timeout: 10` could mean seconds or
//! minutes depending on which tool the user came from, and a wrong guess here is a
//! deploy that kills its instances too early or hangs for hours.

use std::time::Duration;

/// The units we accept, largest first; a duration lists its parts in this order.
const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

const HINT: &str = "write it like `500ms`, `10s`, `15m`, `1h` or `1h30m`";

/// Parses `500ms`, `10s`, `15m`, `1h`, or a combination like `1h30m`.
///
/// The error says what is wrong and how to write it instead; it never mentions a
/// position because callers attach the line and column of the value.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("a duration cannot be empty; {HINT}"));
    }
    if trimmed.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "`{trimmed}` has no unit; add one, e.g. `{trimmed}s` (units: ms, s, m, h)"
        ));
    }
    let mut rest = trimmed;
    let mut total_ms: u64 = 0;
    // Index into UNITS of the last unit seen: each part must use a smaller unit.
    let mut last_unit: Option<usize> = None;
    while !rest.is_empty() {
        let digits_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits_len == 0 {
            return Err(format!("`{trimmed}` is not a duration; {HINT}"));
        }
        let (digits, after) = rest.split_at(digits_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        if unit.starts_with('.') || unit.starts_with(',') {
            return Err(format!(
                "`{trimmed}` has a fraction; use whole numbers of a smaller unit, e.g. `1h30m` or `1500ms`"
            ));
        }
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(format!(
                "`{trimmed}` has an unknown unit `{unit}`; use ms, s, m or h ({HINT})"
            ));
        };
        if last_unit.is_some_and(|last| index <= last) {
            return Err(format!(
                "`{trimmed}` lists its units out of order or twice; write the largest unit first, e.g. `1h30m`"
            ));
        }
        last_unit = Some(index);
        let amount: u64 = digits
            .parse()
            .map_err(|_| format!("`{trimmed}` is too long a duration"))?;
        total_ms = amount
            .checked_mul(UNITS[index].1)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| format!("`{trimmed}` is too long a duration"))?;
        rest = next;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Writes a duration the way a user would: `1h30m`, `10s`, `500ms`, `0s`.
pub fn format_duration(duration: Duration) -> String {
    let mut ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (name, size) in UNITS {
        if ms >= size {
            out.push_str(&format!("{}{name}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_combinations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(
            parse_duration("1m30s500ms"),
            Ok(Duration::from_millis(90_500))
        );
        assert_eq!(parse_duration(" 0s "), Ok(Duration::ZERO));
    }

    #[test]
    fn a_bare_number_is_refused_with_a_hint_to_add_a_unit() {
        let error = parse_duration("10").unwrap_err();
        assert_eq!(
            error,
            "`10` has no unit; add one, e.g. `10s` (units: ms, s, m, h)"
        );
    }

    #[test]
    fn unknown_units_fractions_and_disorder_are_refused() {
        assert!(parse_duration("10sec")
            .unwrap_err()
            .contains("unknown unit `sec`"));
        assert!(parse_duration("3d")
            .unwrap_err()
            .contains("unknown unit `d`"));
        assert!(parse_duration("1.5h").unwrap_err().contains("fraction"));
        assert!(parse_duration("30m1h")
            .unwrap_err()
            .contains("out of order"));
        assert!(parse_duration("1m1m").unwrap_err().contains("out of order"));
        assert!(parse_duration("-5s")
            .unwrap_err()
            .contains("not a duration"));
        assert!(parse_duration("s").unwrap_err().contains("not a duration"));
        assert!(parse_duration("").unwrap_err().contains("cannot be empty"));
        assert!(parse_duration("99999999999999999999h")
            .unwrap_err()
            .contains("too long"));
    }

    #[test]
    fn formats_back_the_way_users_write_it() {
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_secs(15 * 60)), "15m");
    }
}
