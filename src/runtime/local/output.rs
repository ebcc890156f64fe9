//! A child's output, carried into an operation log: read line by line with a bounded
//! buffer (a flood of output, or one endless line, never grows memory), written in
//! batches (a fast writer does not cost one database write per line), and once the log
//! is capped read on and dropped without being split into lines, so that a hook that
//! prints 100 MB is neither blocked on a full pipe nor slowed by its own output.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

use crate::pipeline::log::{OperationLog, MAX_LINE_BYTES};

/// At most this many lines per write to the log...
const BATCH_LINES: usize = 100;
/// ...and a line waits at most this long for others to join its batch.
const BATCH_WAIT: Duration = Duration::from_millis(50);

/// How much of a stream is read at once.
const READ_BUFFER: usize = 64 * 1024;

/// Reads `stream` line by line, sending each line (with `prefix`) into `lines`. A line
/// longer than `MAX_LINE_BYTES` is cut there and the rest of it skipped, so memory stays
/// bounded whatever the child writes. Once `log` is capped, the rest is read and only
/// counted. Returns at end of stream, or when the receiver is gone.
pub(crate) async fn read_lines<R>(
    stream: R,
    prefix: String,
    lines: mpsc::Sender<String>,
    log: OperationLog,
) where
    R: AsyncRead + Unpin,
{
    let mut reader = BufReader::with_capacity(READ_BUFFER, stream);
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let mut cut = false;
    loop {
        let buffer = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(buffer) => buffer,
        };
        if log.is_capped() {
            let dropped = buffer.len() + line.len();
            log.note_dropped(dropped as u64);
            line.clear();
            let all = buffer.len();
            reader.consume(all);
            continue;
        }
        let (chunk, ends_line) = match buffer.iter().position(|byte| *byte == b'\n') {
            Some(end) => (&buffer[..end], true),
            None => (buffer, false),
        };
        let room = MAX_LINE_BYTES.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        cut |= chunk.len() > room;
        let consumed = chunk.len() + usize::from(ends_line);
        reader.consume(consumed);
        if ends_line
            && lines
                .send(finish(&prefix, &mut line, &mut cut))
                .await
                .is_err()
        {
            return;
        }
    }
    // A last line without a newline is still a line.
    if !line.is_empty() {
        let _ = lines.send(finish(&prefix, &mut line, &mut cut)).await;
    }
}

fn finish(prefix: &str, line: &mut Vec<u8>, cut: &mut bool) -> String {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    let mut text = format!("{prefix}{}", String::from_utf8_lossy(line));
    if *cut {
        text.push_str(" [line cut]");
    }
    line.clear();
    *cut = false;
    text
}

/// Writes the lines received into `log` in batches, until every sender is gone.
pub(crate) async fn write_batches(mut lines: mpsc::Receiver<String>, log: OperationLog) {
    while let Some(first) = lines.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + BATCH_WAIT;
        while batch.len() < BATCH_LINES {
            match tokio::time::timeout_at(deadline, lines.recv()).await {
                Ok(Some(line)) => batch.push(line),
                // Channel closed or the batch waited long enough: write what we have.
                Ok(None) | Err(_) => break,
            }
        }
        log.output(batch).await;
    }
}
