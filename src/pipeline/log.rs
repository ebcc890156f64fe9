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

/// Past the cap, Slipway's own lines (steps, errors, the outcome) are still kept, up to
/// this much more: a log that ends before it says how the operation ended is no log.
const OWN_LINES_RESERVE: u64 = 1024 * 1024;

/// The handle the pipeline and the runtimes write an operation's log through.
#[derive(Clone)]
pub struct OperationLog {
    id: OperationId,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    masker: Arc<Masker>,
    bus: LogBus,
    counts: Arc<Counts>,
}

/// What a log has taken so far, shared by every clone of it.
#[derive(Default)]
struct Counts {
    /// Bytes kept, a newline counted per line.
    written: AtomicU64,
    /// Set once output reached the cap: from then on output is dropped.
    capped: AtomicBool,
    /// Bytes of output dropped past the cap.
    dropped: AtomicU64,
}

/// Who wrote a line: output is capped, Slipway's own lines only by the reserve.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writer {
    Slipway,
    Output,
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
            counts: Arc::default(),
        }
    }

    pub fn id(&self) -> OperationId {
        self.id
    }

    pub fn masker(&self) -> &Masker {
        &self.masker
    }

    /// Writes one of Slipway's own lines (several if it has newlines): kept even once
    /// output is capped. A failure to persist is reported through tracing: a log line
    /// must never fail the deploy it describes.
    pub async fn line(&self, text: impl AsRef<str>) {
        let lines: Vec<String> = text.as_ref().lines().map(|l| l.to_owned()).collect();
        self.write(lines, Writer::Slipway).await;
    }

    /// Writes lines a command printed. Past `LOG_CAP_BYTES` one line says that the log is
    /// capped, and the rest is dropped (and counted, see `dropped_bytes`).
    pub async fn output(&self, lines: Vec<String>) {
        self.write(lines, Writer::Output).await;
    }

    /// Whether output is dropped now: a reader may stop splitting it into lines.
    pub fn is_capped(&self) -> bool {
        self.counts.capped.load(Ordering::Relaxed)
    }

    /// Counts output that a reader dropped without making lines of it.
    pub fn note_dropped(&self, bytes: u64) {
        self.counts.dropped.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes of output dropped so far; compare before and after a command to tell its share.
    pub fn dropped_bytes(&self) -> u64 {
        self.counts.dropped.load(Ordering::Relaxed)
    }

    /// After a command: says how much of its output the cap dropped, if any, given
    /// `dropped_bytes()` from before it ran.
    pub async fn report_dropped(&self, label: &str, dropped_before: u64) {
        let dropped = self.dropped_bytes().saturating_sub(dropped_before);
        if dropped > 0 {
            self.line(format!(
                "[{label}] {} more of output not kept: an operation's log keeps at most {} MiB of output",
                human_bytes(dropped),
                LOG_CAP_BYTES / 1024 / 1024
            ))
            .await;
        }
    }

    async fn write(&self, lines: Vec<String>, writer: Writer) {
        if lines.is_empty() {
            return;
        }
        let counts = &self.counts;
        let mut kept = Vec::with_capacity(lines.len());
        for line in lines {
            if writer == Writer::Output && counts.capped.load(Ordering::Relaxed) {
                counts
                    .dropped
                    .fetch_add(line.len() as u64 + 1, Ordering::Relaxed);
                continue;
            }
            let line = cut(self.masker.mask(&line));
            let size = line.len() as u64 + 1;
            let before = counts.written.load(Ordering::Relaxed);
            let limit = match writer {
                Writer::Output => LOG_CAP_BYTES,
                Writer::Slipway => LOG_CAP_BYTES + OWN_LINES_RESERVE,
            };
            if before + size > limit {
                // The first line past the cap is the one that says so, once.
                if !counts.capped.swap(true, Ordering::Relaxed) {
                    kept.push(format!(
                        "[log capped at {} MiB: the rest of this operation's output is not kept]",
                        LOG_CAP_BYTES / 1024 / 1024
                    ));
                }
                if writer == Writer::Output {
                    counts.dropped.fetch_add(size, Ordering::Relaxed);
                }
                continue;
            }
            counts.written.fetch_add(size, Ordering::Relaxed);
            kept.push(line);
        }
        if kept.is_empty() {
            return;
        }
        let at = self.clock.now_millis();
        if let Err(error) = self.store.append_log(self.id, at, &kept).await {
            tracing::error!(operation = %self.id, %error, "could not write the operation log");
        }
        self.bus.wake();
    }
}

/// Cuts a line longer than `MAX_LINE_BYTES` (on a character boundary) and marks it.
fn cut(mut line: String) -> String {
    if line.len() > MAX_LINE_BYTES {
        let mut end = MAX_LINE_BYTES;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push_str(" [line cut]");
    }
    line
}

/// `512 B`, `3.4 KiB`, `90.0 MiB`.
fn human_bytes(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let value = bytes as f64;
    if value < KIB {
        format!("{bytes} B")
    } else if value < KIB * KIB {
        format!("{:.1} KiB", value / KIB)
    } else {
        format!("{:.1} MiB", value / KIB / KIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::tests::memory_store::MemoryStore;
    use crate::pipeline::traits::SystemClock;

    fn log() -> (OperationLog, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::default());
        let log = OperationLog::new(
            OperationId(1),
            store.clone(),
            Arc::new(SystemClock),
            Masker::default(),
            LogBus::default(),
        );
        (log, store)
    }

    #[tokio::test]
    async fn output_past_the_cap_is_dropped_and_counted_and_slipways_own_lines_still_kept() {
        let (log, store) = log();
        // 1 KiB lines (1023 bytes and a newline): the cap holds exactly this many.
        let per_cap = (LOG_CAP_BYTES / 1024) as usize;
        let line = "x".repeat(1023);
        for _ in 0..per_cap / 100 {
            log.output(vec![line.clone(); 100]).await;
        }
        log.output(vec![line.clone(); per_cap % 100]).await;
        assert!(!log.is_capped(), "exactly at the cap is not past it");
        let before = log.dropped_bytes();
        log.output(vec![line.clone(); 3]).await;
        assert!(log.is_capped());
        log.note_dropped(5000);
        log.report_dropped("before_release", before).await;
        log.line("==> switch traffic").await;

        let text = store.log_text(OperationId(1));
        assert_eq!(text.len(), per_cap + 3, "{:?}", &text[per_cap..]);
        assert_eq!(
            text[per_cap],
            "[log capped at 10 MiB: the rest of this operation's output is not kept]"
        );
        assert_eq!(
            text[per_cap + 1],
            "[before_release] 7.9 KiB more of output not kept: an operation's log keeps at most 10 MiB of output"
        );
        assert_eq!(text[per_cap + 2], "==> switch traffic");
        assert_eq!(log.dropped_bytes() - before, 3 * 1024 + 5000);
    }

    #[tokio::test]
    async fn a_long_line_is_cut_at_a_character_boundary() {
        let (log, store) = log();
        log.output(vec!["é".repeat(MAX_LINE_BYTES)]).await;
        let text = store.log_text(OperationId(1));
        assert!(
            text[0].ends_with("é [line cut]"),
            "{}",
            &text[0][text[0].len() - 20..]
        );
        assert!(text[0].len() <= MAX_LINE_BYTES + " [line cut]".len());
    }

    #[test]
    fn sizes_read_as_a_person_writes_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 + 400), "3.4 KiB");
        assert_eq!(human_bytes(90 * 1024 * 1024), "90.0 MiB");
    }

    #[test]
    fn masks_every_secret_and_the_longest_first() {
        let masker = Masker::new(["hunter22", "hunter2234", "ab"]);
        assert_eq!(
            masker.mask("pw=hunter2234 and hunter22, ab"),
            "pw=**** and ****, ab"
        );
    }
}
