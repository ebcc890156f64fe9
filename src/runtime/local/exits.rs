//! Why an instance is no longer running, told to a person: how it ended, whether the
//! port it was given is now another process's (it could not listen), whether its output
//! says that it tried to listen on a port that is taken — and where its output is.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use crate::pipeline::model::InstanceRecord;
use crate::runtime::local::instances::Children;
use crate::runtime::local::layout::Layout;
use crate::runtime::local::ports;
use crate::runtime::local::process::{group_alive, parse_handle};

/// How long the instance's output may take to reach its file after it exited: its
/// masker, in its process group, writes the last lines and ends with the group (within
/// milliseconds). Short, because the watch asks for this report before it switches back.
const OUTPUT_SETTLE: Duration = Duration::from_millis(200);

/// How often the group is looked at meanwhile: short, as a switch back waits for this.
const SETTLE_POLL: Duration = Duration::from_millis(2);

/// How much of the end of the log file is searched for what the instance said.
const TAIL_BYTES: u64 = 64 * 1024;

/// The report of an instance that is not running; `None` for a handle that is not a pid.
pub(crate) async fn report(
    layout: &Layout,
    children: &Children,
    instance: &InstanceRecord,
) -> Option<String> {
    let pid = parse_handle(&instance.handle)?;
    let settled = tokio::time::Instant::now() + OUTPUT_SETTLE;
    while group_alive(pid) && tokio::time::Instant::now() < settled {
        tokio::time::sleep(SETTLE_POLL).await;
    }
    let mut parts = Vec::new();
    if let Some(how) = children.ended(pid) {
        parts.push(how);
    }
    let port = instance
        .address
        .as_deref()
        .and_then(|address| address.rsplit(':').next()?.parse::<u16>().ok());
    let log_file = layout
        .instance_log(&instance.env, &instance.service, instance.index)
        .ok();
    let name = format!("{}.{}", instance.service, instance.index);
    let header = format!("==> starting {name} of {}", instance.release);
    let said_in_use = log_file
        .as_deref()
        .and_then(|file| output_since(file, &header))
        .is_some_and(|output| says_address_in_use(&output));
    match port {
        Some(port) if ports::is_taken(port) => parts.push(port_taken(port)),
        Some(port) if said_in_use => parts.push(format!(
            "its output says an address is already in use: an app must listen on $PORT \
             ({port} for this instance), the port Slipway routes to, not on a port of its own"
        )),
        _ => {}
    }
    if let Some(file) = log_file {
        parts.push(format!("its output is in {}", file.display()));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The sentence for a port that another process listens on.
fn port_taken(port: u16) -> String {
    let who = match ports::holder(port) {
        Some(holder) => format!("pid {} ({})", holder.pid, holder.name),
        None => "a process of another user".to_owned(),
    };
    format!(
        "its port 127.0.0.1:{port} ($PORT) was taken by another process, {who}, so it could \
         not listen; stop that process or let it use another port, then deploy again (each \
         start picks a free port)"
    )
}

/// What the instance wrote after `header` (its own start), from the end of the file; the
/// whole tail when the header is not in it (the file was rotated since).
fn output_since(file: &Path, header: &str) -> Option<String> {
    let mut handle = std::fs::File::open(file).ok()?;
    let length = handle.metadata().ok()?.len();
    handle
        .seek(SeekFrom::Start(length.saturating_sub(TAIL_BYTES)))
        .ok()?;
    let mut tail = Vec::new();
    handle.take(TAIL_BYTES).read_to_end(&mut tail).ok()?;
    let tail = String::from_utf8_lossy(&tail).into_owned();
    Some(match tail.rfind(header) {
        Some(start) => tail[start + header.len()..].to_owned(),
        None => tail,
    })
}

/// How Python, Node, Go, Ruby, Java and the C library word a bind to a taken port.
fn says_address_in_use(output: &str) -> bool {
    let output = output.to_ascii_lowercase();
    output.contains("address already in use") || output.contains("eaddrinuse")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_an_instance_said_after_its_own_start() {
        let dir = tempfile::tempdir().expect("a directory");
        let file = dir.path().join("web.1.log");
        std::fs::write(
            &file,
            "==> starting web.1 of v1\nOSError: [Errno 98] Address already in use\n\
             ==> starting web.1 of v2\nTraceback (most recent call last):\nKeyError: 'PORT'\n",
        )
        .expect("a log");
        let v2 = output_since(&file, "==> starting web.1 of v2").expect("the output");
        assert!(!says_address_in_use(&v2), "{v2}");
        let v1 = output_since(&file, "==> starting web.1 of v1").expect("the output");
        assert!(says_address_in_use(&v1), "{v1}");
        assert!(says_address_in_use("Error: listen EADDRINUSE: :::3000"));
    }
}
