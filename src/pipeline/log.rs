//! An operation's log: timestamped lines, persisted as they are written, with every
//! secret value masked before it reaches the store, and capped so that a hook that
//! floods its output cannot fill the disk.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::ids::OperationId;
use crate::pipeline::traits::{Clock, Store};

/// The most bytes an operation's log keeps; past it, one line says so and the rest is dropped.
pub const LOG_CAP_BYTES: u64 = 10 * 1024 * 1024;
/// The longest line kept; longer lines are cut and marked.
pub const MAX_LINE_BYTES: usize = 8 * 1024;

/// Replaces secret values with `****`.
#[derive(Clone, Debug, Default)]
pub struct Masker {
    secrets: Vec<String>,
}

/// Values shorter than this are not masked: masking `1` would garble every log line,
/// and such values are not secrets anyone relies on.
pub const MIN_MASKED_LEN: usize = 3;

impl Masker {
    pub fn new<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut secrets: Vec<String> = values
            .into_iter()
            .map(Into::into)
            .filter(|v| v.len() >= MIN_MASKED_LEN)
            .collect();
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "****");
            }
        }
        out
    }
}

/// Wakes log followers when any operation's log grows.
#[derive(Clone, Default)]
pub struct LogBus {
    notify: Arc<Notify>,
}

impl LogBus {
    pub fn notified(&self) -> impl std::future::Future<Output = ()> + '_ {
        self.notify.notified()
    }
    pub fn wake(&self) {
        self.notify.notify_waiters();
    }
}

/// The handle the pipeline and the runtimes write an operation's log through.
#[derive(Clone)]
pub struct OperationLog {
    id: OperationId,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    masker: Arc<Masker>,
    bus: LogBus,
    written: Arc<AtomicU64>,
    capped: Arc<AtomicBool>,
}

impl OperationLog {
    pub fn new(
        id: OperationId,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        masker: Masker,
        bus: LogBus,
    ) -> Self {
        Self {
            id,
            store,
            clock,
            masker: Arc::new(masker),
            bus,
            written: Arc::new(AtomicU64::new(0)),
            capped: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn id(&self) -> OperationId {
        self.id
    }

    pub fn masker(&self) -> &Masker {
        &self.masker
    }

    /// Writes one line (several if it has newlines). A failure to persist is reported
    /// through tracing: a log line must never fail the deploy it describes.
    pub async fn line(&self, text: impl AsRef<str>) {
        let lines: Vec<String> = text.as_ref().lines().map(|l| l.to_owned()).collect();
        self.lines(lines).await;
    }

    pub async fn lines(&self, lines: Vec<String>) {
        if lines.is_empty() || self.capped.load(Ordering::Relaxed) {
            return;
        }
        let mut kept = Vec::with_capacity(lines.len());
        for line in lines {
            let mut line = self.masker.mask(&line);
            if line.len() > MAX_LINE_BYTES {
                let mut cut = MAX_LINE_BYTES;
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                line.truncate(cut);
                line.push_str(" [line cut]");
            }
            let total = self
                .written
                .fetch_add(line.len() as u64 + 1, Ordering::Relaxed);
            if total + line.len() as u64 > LOG_CAP_BYTES {
                self.capped.store(true, Ordering::Relaxed);
                kept.push(format!(
                    "[log capped at {} MiB: further output of this operation is dropped]",
                    LOG_CAP_BYTES / 1024 / 1024
                ));
                break;
            }
            kept.push(line);
        }
        let at = self.clock.now_millis();
        if let Err(error) = self.store.append_log(self.id, at, &kept).await {
            tracing::error!(operation = %self.id, %error, "could not write the operation log");
        }
        self.bus.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_secret_and_the_longest_first() {
        let masker = Masker::new(["hunter22", "hunter2234", "ab"]);
        assert_eq!(
            masker.mask("pw=hunter2234 and hunter22, ab"),
            "pw=**** and ****, ab"
        );
    }
}
