//! Figures from a set of load samples: counts per outcome, throughput, and latency
//! percentiles taken from the sorted latencies (exact, no histogram buckets).

use std::collections::HashMap;
use std::time::Duration;

use super::load::{Outcome, Sample};

/// What a group of samples adds up to.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub attempts: usize,
    pub ok: usize,
    pub failures: HashMap<&'static str, usize>,
    /// Latencies of the successful requests, sorted.
    latencies: Vec<Duration>,
}

impl Summary {
    pub fn of<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Summary {
        let mut summary = Summary::default();
        for sample in samples {
            summary.attempts += 1;
            if sample.outcome == Outcome::Ok {
                summary.ok += 1;
                summary.latencies.push(sample.latency);
            } else {
                *summary.failures.entry(sample.outcome.label()).or_default() += 1;
            }
        }
        summary.latencies.sort();
        summary
    }

    pub fn failed(&self) -> usize {
        self.failures.values().sum()
    }

    /// `p` in 0..=100, of the successful requests' latencies.
    pub fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }

    pub fn max(&self) -> Duration {
        self.latencies.last().copied().unwrap_or_default()
    }

    /// "0" or "2 resets/closed mid-request, 1 5xx": every failure kind, each counted.
    pub fn failures_text(&self) -> String {
        let parts: Vec<String> = Outcome::FAILURES
            .iter()
            .map(|o| {
                (
                    o.label(),
                    self.failures.get(o.label()).copied().unwrap_or(0),
                )
            })
            .map(|(label, count)| format!("{count} {label}"))
            .collect();
        format!("{} ({})", self.failed(), parts.join(", "))
    }
}

/// The nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds with a precision that suits the size: `0.214 ms`, `12.3 ms`, `2004 ms`.
pub fn ms(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.3} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// `a / b`, two decimals; "n/a" when `b` is zero.
pub fn ratio(a: f64, b: f64) -> String {
    if b == 0.0 {
        "n/a".to_owned()
    } else {
        format!("{:.2}", a / b)
    }
}

pub fn ratio_of(a: Duration, b: Duration) -> String {
    ratio(a.as_secs_f64(), b.as_secs_f64())
}
