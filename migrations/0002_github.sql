-- GitHub in the loop: the webhook deliveries Slipway accepted, the link between an
-- operation and the GitHub commit it reports to, and the outbox of API requests that
-- still have to reach GitHub.
--
-- Timestamps are unix milliseconds.

-- Every accepted delivery is stored before it is answered, and worked on afterwards by
-- a worker that reads this table, so a delivery accepted is never lost.
CREATE TABLE github_deliveries (
    id               TEXT PRIMARY KEY NOT NULL,   -- X-GitHub-Delivery
    event            TEXT NOT NULL,               -- X-GitHub-Event
    action           TEXT,
    repository       TEXT,                        -- owner/name
    head_sha         TEXT,
    installation_id  INTEGER,
    payload          TEXT NOT NULL,               -- the JSON body
    received_at      INTEGER NOT NULL,
    processed_at     INTEGER,                     -- NULL: still to be worked on
    outcome          TEXT                         -- what was done, for people
);
CREATE INDEX github_deliveries_pending ON github_deliveries (processed_at, received_at);
CREATE INDEX github_deliveries_by_repository ON github_deliveries (repository, received_at);

-- One row per operation started for a GitHub commit: what to report to, and how far
-- the reporting got (so a restart neither repeats nor skips a status).
CREATE TABLE github_operations (
    operation_id      INTEGER PRIMARY KEY NOT NULL REFERENCES operations (id),
    app               TEXT NOT NULL,
    env               TEXT NOT NULL,
    repository        TEXT NOT NULL,              -- owner/name
    head_sha          TEXT NOT NULL,
    installation_id   INTEGER,
    delivery_id       TEXT,
    check_run_id      INTEGER,                    -- set once GitHub created the check run
    deployment_id     INTEGER,                    -- set once GitHub created the deployment
    -- 0 nothing, 1 queued, 2 running, 3 finished: the last phase put in the outbox.
    reported_phase    INTEGER NOT NULL DEFAULT 0,
    -- How many ended steps the check run was last updated with.
    reported_steps    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX github_operations_by_check_run ON github_operations (repository, check_run_id);
CREATE INDEX github_operations_by_delivery ON github_operations (delivery_id);

-- Requests to GitHub, sent in id order by one worker; one that fails for a reason that
-- may pass (outage, rate limit) is retried with back-off and blocks the ones after it,
-- so statuses arrive in the order they were written.
CREATE TABLE github_outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Whose check_run_id / deployment_id fill the `{check_run_id}` / `{deployment_id}`
    -- placeholders of `path`, and receive the id GitHub answers with (`store_as`).
    operation_id     INTEGER,
    installation_id  INTEGER,
    method           TEXT NOT NULL,
    path             TEXT NOT NULL,
    body             TEXT NOT NULL,               -- JSON
    store_as         TEXT,                        -- 'check_run_id' | 'deployment_id'
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    done_at          INTEGER,                     -- NULL: still to be sent
    outcome          TEXT                         -- 'sent' | 'dropped: <why>'
);
CREATE INDEX github_outbox_pending ON github_outbox (done_at, id);
