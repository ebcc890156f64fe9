//! Writing a bench's figures into BENCHMARKS.md: each bench owns one section between
//! markers and replaces only that section, so benches run separately (and by different
//! people) keep each other's figures.

use std::path::PathBuf;

const HEADER: &str = "# Benchmarks\n\n\
Figures measured by the benches in `benches/` (`cargo bench --bench <name>`). Each section \
is rewritten by its bench on every run and says when and where it was measured. Every \
figure is compared with a baseline measured in the same run, because the machines these \
run on are shared and noisy: read the ratios, not the absolute numbers.\n";

/// Where the file lives: the crate's root.
pub fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md")
}

/// Replaces (or appends) the section of bench `key` with `title` and `body`.
pub fn write_section(key: &str, title: &str, body: &str) {
    let path = path();
    let existing = std::fs::read_to_string(&path).unwrap_or_else(|_| HEADER.to_owned());
    let start = format!("<!-- bench:{key}:start -->");
    let end = format!("<!-- bench:{key}:end -->");
    let section = format!("{start}\n## {title}\n\n{}\n{end}", body.trim_end());
    let updated = match (existing.find(&start), existing.find(&end)) {
        (Some(from), Some(to)) if to > from => {
            format!(
                "{}{section}{}",
                &existing[..from],
                &existing[to + end.len()..]
            )
        }
        _ => format!("{}\n\n{section}\n", existing.trim_end()),
    };
    // Written beside and renamed, so a reader never sees half a file.
    let temporary = path.with_extension("md.tmp");
    std::fs::write(&temporary, updated).expect("write BENCHMARKS.md.tmp");
    std::fs::rename(&temporary, &path).expect("rename BENCHMARKS.md");
    println!("wrote the \"{title}\" section of {}", path.display());
}

/// "2026-01-31 14:05 UTC".
pub fn now() -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_else(|_| "unknown date".to_owned())
}

/// "2 cores (AMD EPYC 7B13), Linux 6.1.0": what the figures were measured on.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_owned())
        .unwrap_or_default();
    format!("{cores} cores ({model}), Linux {kernel}, shared with other builds")
}

/// The lines every section starts with.
pub fn preamble(command: &str) -> String {
    format!(
        "- command: `{command}`\n- date: {}\n- machine: {}\n",
        now(),
        machine()
    )
}

/// Resident memory of a process in KiB, from `/proc/<pid>/status` (`self` for this one).
pub fn rss_kib(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}
