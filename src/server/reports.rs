//! The weekly activity reports: for each environment, once an ISO week has ended,
//! `<data>/reports/<app>-<env>-<YYYY>-W<ww>.csv` with that week's operations (the same
//! columns as `GET /api/v1/activity.csv`). A task checks on start and then every hour
//! which reports of the last finished week are missing, and writes them atomically
//! (a temporary file renamed into place), so a report that exists is complete.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use time::{Duration as TimeSpan, OffsetDateTime, Time, Weekday};
use tokio_util::sync::CancellationToken;

use crate::server::activity::write_csv;
use crate::store::{ActivityFilter, SqliteStore};

/// How often the task looks for missing reports.
const CHECK_EVERY: Duration = Duration::from_secs(3600);

/// The last ISO week that has ended before `now`: its start (Monday 00:00 UTC, unix ms),
/// its end (exclusive), and its name (`2026-W44`).
pub fn last_finished_week(now: OffsetDateTime) -> (i64, i64, String) {
    let today = now.to_offset(time::UtcOffset::UTC).date();
    let this_monday = today - TimeSpan::days(i64::from(today.weekday().number_days_from_monday()));
    let monday = this_monday - TimeSpan::days(7);
    let start = monday.with_time(Time::MIDNIGHT).assume_utc();
    let end = this_monday.with_time(Time::MIDNIGHT).assume_utc();
    let (year, week, _) = monday.to_iso_week_date();
    debug_assert_eq!(monday.weekday(), Weekday::Monday);
    (
        start.unix_timestamp() * 1000,
        end.unix_timestamp() * 1000,
        format!("{year}-W{week:02}"),
    )
}

/// Writes the missing reports of the last finished week; returns the files written.
pub async fn write_missing(
    store: Arc<SqliteStore>,
    data_dir: &Path,
    now: OffsetDateTime,
) -> std::io::Result<Vec<PathBuf>> {
    let (since, until, week) = last_finished_week(now);
    let dir = data_dir.join("reports");
    tokio::fs::create_dir_all(&dir).await?;
    let envs = store
        .environments_with_activity(since, until)
        .await
        .map_err(std::io::Error::other)?;
    let mut written = Vec::new();
    for env in envs {
        let path = dir.join(format!("{}-{}-{week}.csv", env.app, env.env));
        if tokio::fs::try_exists(&path).await? {
            continue;
        }
        let filter = ActivityFilter {
            app: Some(env.app.to_string()),
            env: Some(env.env.to_string()),
            since: Some(since),
            until: Some(until),
        };
        let temporary = dir.join(format!(".{}-{}-{week}.csv.tmp", env.app, env.env));
        let mut file = tokio::fs::File::create(&temporary).await?;
        write_csv(store.clone(), filter, &mut file).await?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&temporary, &path).await?;
        written.push(path);
    }
    Ok(written)
}

/// Runs until `shutdown`: writes what is missing now, then checks every hour.
pub async fn run(store: Arc<SqliteStore>, data_dir: PathBuf, shutdown: CancellationToken) {
    loop {
        match write_missing(store.clone(), &data_dir, OffsetDateTime::now_utc()).await {
            Ok(written) => {
                for path in written {
                    tracing::info!(report = %path.display(), "weekly activity report written");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot write the weekly activity reports; retrying in an hour")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::EnvKey;
    use crate::pipeline::model::{NewOperation, OperationKind};
    use crate::pipeline::traits::Store;
    use time::macros::datetime;

    #[test]
    fn the_last_finished_week_is_the_iso_week_before_this_one() {
        // Wednesday 2026-11-04: the week before is Monday 2026-10-26 .. Monday 2026-11-02.
        let (start, end, name) = last_finished_week(datetime!(2026-11-04 10:00 UTC));
        assert_eq!(name, "2026-W44");
        assert_eq!(
            start,
            datetime!(2026-10-26 00:00 UTC).unix_timestamp() * 1000
        );
        assert_eq!(end, datetime!(2026-11-02 00:00 UTC).unix_timestamp() * 1000);
        // Across a year: Monday 2027-01-04 closes 2026-W53.
        assert_eq!(
            last_finished_week(datetime!(2027-01-04 00:00 UTC)).2,
            "2026-W53"
        );
    }

    #[tokio::test]
    async fn missing_reports_are_written_once_per_environment() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = Arc::new(
            SqliteStore::open(dir.path())
                .await
                .expect("the store opens"),
        );
        let staging = EnvKey::new("shop", "staging");
        store
            .create_operation(NewOperation {
                env: staging.clone(),
                kind: OperationKind::Restart,
                source: None,
                commit: None,
                args: serde_json::Value::Null,
                initiator: "admin token".into(),
            })
            .await
            .expect("an operation");
        // A week after now: the operation falls in the last finished week.
        let later = OffsetDateTime::now_utc() + TimeSpan::days(7);
        let written = write_missing(store.clone(), dir.path(), later)
            .await
            .expect("reports are written");
        assert_eq!(written.len(), 1);
        let text = std::fs::read_to_string(&written[0]).expect("the report");
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert!(lines[0].starts_with("operation_id,app,environment,type"));
        assert!(
            lines[1].starts_with("1,shop,staging,restart,queued,admin token,"),
            "{text}"
        );
        let again = write_missing(store, dir.path(), later)
            .await
            .expect("a second check");
        assert!(
            again.is_empty(),
            "a report that exists is not written again"
        );
    }
}
