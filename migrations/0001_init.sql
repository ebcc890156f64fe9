-- The state of a Slipway server: apps and their environments, the operations run on
-- them with their steps and logs, the releases each environment went through, the
-- instances now running and each environment's configuration variables.
--
-- Timestamps are unix milliseconds. Enums (operation kind, state, step, step status)
-- are stored as their snake_case names, structured values as JSON text.

CREATE TABLE apps (
    name        TEXT PRIMARY KEY NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE environments (
    app              TEXT NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    -- The number of the release now serving; NULL before the first deploy.
    current_release  INTEGER,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (app, name)
);

-- History: operations name their app and environment as text, with no foreign key, so
-- that deleting an app keeps its operations and logs for the activity report.
-- AUTOINCREMENT so that an id, which appears in links posted to GitHub, is never reused.
CREATE TABLE operations (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    app             TEXT NOT NULL,
    env             TEXT NOT NULL,
    kind            TEXT NOT NULL,
    state           TEXT NOT NULL,
    step            TEXT,
    source          TEXT,              -- JSON SourceSpec
    commit_sha      TEXT,
    args            TEXT NOT NULL,     -- JSON
    release_before  INTEGER,
    release_after   INTEGER,
    initiator       TEXT NOT NULL,
    message         TEXT,
    created_at      INTEGER NOT NULL,
    started_at      INTEGER,
    finished_at     INTEGER
);
-- An environment's operations, newest first.
CREATE INDEX operations_by_env ON operations (app, env, id);
-- The queued operations of an environment, and the operations left running.
CREATE INDEX operations_by_state ON operations (state, app, env, id);

-- One row per (operation, step): a step is recorded as it starts and updated as it ends.
CREATE TABLE operation_steps (
    operation_id  INTEGER NOT NULL REFERENCES operations (id),
    step          TEXT NOT NULL,
    status        TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    message       TEXT,
    PRIMARY KEY (operation_id, step)
);

-- seq is 1-based and dense per operation; the primary key serves both the
-- "next seq" lookup and reading a log in order.
CREATE TABLE operation_logs (
    operation_id  INTEGER NOT NULL REFERENCES operations (id),
    seq           INTEGER NOT NULL,
    at            INTEGER NOT NULL,
    text          TEXT NOT NULL,
    PRIMARY KEY (operation_id, seq)
);

CREATE TABLE releases (
    app           TEXT NOT NULL,
    env           TEXT NOT NULL,
    number        INTEGER NOT NULL,
    commit_sha    TEXT,
    artifact      TEXT NOT NULL,     -- JSON Artifact
    config_hash   TEXT NOT NULL,
    variables     TEXT NOT NULL,     -- JSON object of the runtime variables (secrets)
    scale         TEXT NOT NULL,     -- JSON Scale
    operation_id  INTEGER NOT NULL REFERENCES operations (id),
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (app, env, number),
    FOREIGN KEY (app, env) REFERENCES environments (app, name) ON DELETE CASCADE
);

CREATE TABLE instances (
    id              TEXT PRIMARY KEY NOT NULL,
    app             TEXT NOT NULL,
    env             TEXT NOT NULL,
    service         TEXT NOT NULL,
    release_number  INTEGER NOT NULL,
    instance_index  INTEGER NOT NULL,
    handle          TEXT NOT NULL,
    address         TEXT,
    started_at      INTEGER NOT NULL,
    FOREIGN KEY (app, env) REFERENCES environments (app, name) ON DELETE CASCADE
);
CREATE INDEX instances_by_env ON instances (app, env, service, release_number, instance_index);

CREATE TABLE variables (
    app    TEXT NOT NULL,
    env    TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    build  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (app, env, key),
    FOREIGN KEY (app, env) REFERENCES environments (app, name) ON DELETE CASCADE
);
