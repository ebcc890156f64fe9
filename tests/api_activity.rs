//! The activity report against the real server: `slipway activity --format csv` is RFC
//! 4180 (checked with the `csv` crate) with the promised columns and the values of real
//! operations, includes operations of apps deleted since, filters by day, and streams:
//! a report of tens of megabytes leaves the server's peak memory where it was.

mod api_support;
mod common;

use api_support::{get, runtime};
use common::{App, Server, Workspace};
use sqlx::Connection;

const COLUMNS: [&str; 13] = [
    "operation_id",
    "app",
    "environment",
    "type",
    "state",
    "initiator",
    "commit",
    "release_before",
    "release_after",
    "created_at",
    "started_at",
    "finished_at",
    "duration_seconds",
];

fn parse_csv(text: &str) -> Vec<csv::StringRecord> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let headers = reader.headers().expect("a header row").clone();
    assert_eq!(headers.iter().collect::<Vec<_>>(), COLUMNS);
    reader
        .records()
        .map(|r| r.expect("an RFC 4180 record"))
        .collect()
}

/// Inserts operations straight into the server's database, as an older server (or a
/// deleted app) left them: `rows` of (app, env, initiator, created_at millis).
fn insert_operations(ws: &Workspace, rows: impl Iterator<Item = (String, String, String, i64)>) {
    let url = format!(
        "sqlite://{}?mode=rw",
        ws.data_dir().join("slipway.db").display()
    );
    runtime().block_on(async {
        let mut db = sqlx::SqliteConnection::connect(&url).await.expect("the database opens");
        sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut db).await.expect("busy timeout");
        let mut tx = db.begin().await.expect("a transaction");
        for (app, env, initiator, at) in rows {
            sqlx::query(
                "INSERT INTO operations (app, env, kind, state, commit_sha, args, initiator, created_at, started_at, finished_at) \
                 VALUES (?, ?, 'deploy', 'succeeded', 'abc123', 'null', ?, ?, ?, ?)",
            )
            .bind(app)
            .bind(env)
            .bind(initiator)
            .bind(at)
            .bind(at + 1_000)
            .bind(at + 3_500)
            .execute(&mut *tx)
            .await
            .expect("an operation is inserted");
        }
        tx.commit().await.expect("the operations are committed");
    });
}

fn field<'a>(row: &'a csv::StringRecord, column: &str) -> &'a str {
    let index = COLUMNS.iter().position(|c| *c == column).expect("a column");
    row.get(index).expect("the field")
}

#[test]
fn the_csv_report_lists_real_operations_with_who_started_them() {
    let ws = Workspace::new();
    let server = ws.serve();
    let dir = ws.path("shop");
    App::new("shop", "one").write(&dir);
    ws.cli(
        &server,
        &["deploy", dir.to_str().unwrap(), "--env", "staging"],
    )
    .ok();
    ws.cli(&server, &["restart", "--app", "shop", "--env", "staging"])
        .ok();
    ws.cli(
        &server,
        &[
            "config",
            "set",
            "COLOR=blue",
            "--app",
            "shop",
            "--env",
            "staging",
        ],
    )
    .ok();
    // An app deleted since: its operations are still in the report, awkward text and all.
    let awkward = "webhook \"push\", delivery\n42";
    insert_operations(
        &ws,
        std::iter::once((
            "gone".into(),
            "staging".into(),
            awkward.into(),
            978_307_200_000,
        )),
    );

    let out = ws
        .cli(
            &server,
            &["activity", "--env", "staging", "--format", "csv"],
        )
        .ok();
    let text = out.stdout;
    assert!(
        text.starts_with("operation_id,app,environment,type,state,initiator,"),
        "{text}"
    );
    assert!(
        text.ends_with("\r\n")
            && !text
                .replace("\r\n", "")
                .replace("delivery\n42", "")
                .contains('\n'),
        "lines end with CRLF:\n{text:?}"
    );
    let rows = parse_csv(&text);
    assert_eq!(rows.len(), 4, "{text}");

    let gone = rows
        .iter()
        .find(|r| field(r, "app") == "gone")
        .expect("the deleted app's operation");
    assert_eq!(field(gone, "initiator"), awkward);
    assert_eq!(field(gone, "created_at"), "2001-01-01T00:00:00Z");
    assert_eq!(field(gone, "duration_seconds"), "2.500");

    let shop: Vec<&csv::StringRecord> = rows.iter().filter(|r| field(r, "app") == "shop").collect();
    let types: Vec<&str> = shop.iter().map(|r| field(r, "type")).collect();
    assert_eq!(types, ["deploy", "restart", "configure"]);
    for row in &shop {
        assert_eq!(field(row, "environment"), "staging");
        assert_eq!(field(row, "state"), "succeeded");
        for column in ["created_at", "started_at", "finished_at"] {
            let time = field(row, column);
            assert!(
                time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339)
                    .is_ok()
                    && time.ends_with('Z'),
                "{column} {time}"
            );
        }
        let duration: f64 = field(row, "duration_seconds")
            .parse()
            .expect("a duration in seconds");
        assert!((0.0..120.0).contains(&duration));
    }
    assert_eq!(field(shop[0], "initiator"), "admin token via cli");
    assert_eq!(field(shop[0], "release_before"), "");
    assert_eq!(field(shop[0], "release_after"), "v1");
    assert_eq!(field(shop[2], "initiator"), "admin token");
    assert!(
        field(shop[2], "release_after").starts_with('v')
            && !field(shop[2], "release_before").is_empty()
    );
    let ids: Vec<i64> = shop
        .iter()
        .map(|r| field(r, "operation_id").parse().expect("an id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    // Days: the deleted app's day only; the same from the API's CSV endpoint.
    let day = ws
        .cli(
            &server,
            &["activity", "--since", "2001-01-01", "--until", "2001-01-01"],
        )
        .ok()
        .stdout;
    let rows = parse_csv(&day);
    assert_eq!(rows.len(), 1);
    assert_eq!(field(&rows[0], "app"), "gone");
    let answer = get(
        &server.api,
        "/api/v1/activity.csv?since=2001-01-01T00:00:00Z&until=2001-01-02",
        &server.token,
    );
    assert_eq!(answer.status, 200);
    assert_eq!(parse_csv(&answer.body).len(), 1);
    let wrong = get(
        &server.api,
        "/api/v1/activity.csv?since=last-week",
        &server.token,
    );
    assert_eq!(wrong.status, 400);
    assert!(wrong.body.contains("2026-11-01"), "{wrong:?}");

    // JSON, for scripts.
    let json = ws
        .cli(
            &server,
            &["activity", "--app", "shop", "--env", "staging", "--json"],
        )
        .ok()
        .json();
    assert_eq!(json.as_array().map(Vec::len), Some(3));
}

/// The peak resident memory of a process, in kB.
fn peak_rss_kb(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server's /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[test]
fn a_large_report_streams_without_growing_the_server() {
    let ws = Workspace::new();
    let server: Server = ws.serve();
    // 20,000 operations of 3 kB each: a report of about 60 MB.
    let filler = "x".repeat(3_000);
    let count = 20_000;
    insert_operations(
        &ws,
        (0..count).map(|i| {
            (
                "big".to_owned(),
                "production".to_owned(),
                format!("{filler}{i}"),
                1_700_000_000_000 + i,
            )
        }),
    );
    // Warm the server's paths once on a small report, so the baseline includes them.
    assert_eq!(
        get(&server.api, "/api/v1/activity.csv?app=none", &server.token).status,
        200
    );

    let before = peak_rss_kb(server.pid());
    let (rows, bytes) = runtime().block_on(async {
        let mut response = api_support::http()
            .get(format!("{}/api/v1/activity.csv", server.api))
            .bearer_auth(&server.token)
            .send()
            .await
            .expect("the report starts");
        assert_eq!(response.status(), 200);
        assert!(
            response.content_length().is_none(),
            "a streamed body has no length up front"
        );
        let (mut rows, mut bytes) = (0usize, 0usize);
        while let Some(chunk) = response.chunk().await.expect("the report goes on") {
            bytes += chunk.len();
            rows += chunk.windows(2).filter(|w| w == b"\r\n").count();
        }
        (rows, bytes)
    });
    let after = peak_rss_kb(server.pid());
    assert_eq!(rows, count as usize + 1, "every operation and the header");
    assert!(bytes > 60_000_000, "{bytes} bytes");
    let grown_mb = after.saturating_sub(before) / 1024;
    eprintln!("peak memory: {before} kB before, {after} kB after streaming {bytes} bytes");
    // Loading the report whole would take more than its 60 MB; a page at a time takes a few.
    assert!(
        grown_mb < 30,
        "the server's peak memory grew by {grown_mb} MB while streaming {} MB",
        bytes / 1_000_000
    );
}
