//! Durations written the way a user writes them in `slipway.yml` (`1h`, `10m`, `2s`),
//! so that error messages echo the configuration instead of `Duration`'s debug form.

use std::time::Duration;

/// `3600s` → `1h`, `90s` → `1m30s`, `1.5s` → `1500ms`, zero → `0s`.
pub(crate) fn duration(value: Duration) -> String {
    if value.subsec_millis() != 0 {
        return format!("{}ms", value.as_millis());
    }
    let total = value.as_secs();
    if total == 0 {
        return "0s".to_owned();
    }
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    let mut text = String::new();
    for (amount, unit) in [(hours, "h"), (minutes, "m"), (seconds, "s")] {
        if amount != 0 {
            text.push_str(&format!("{amount}{unit}"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_durations_like_the_config_does() {
        assert_eq!(duration(Duration::from_secs(3600)), "1h");
        assert_eq!(duration(Duration::from_secs(600)), "10m");
        assert_eq!(duration(Duration::from_secs(2)), "2s");
        assert_eq!(duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration(Duration::ZERO), "0s");
    }
}
