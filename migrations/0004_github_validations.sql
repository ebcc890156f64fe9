-- The `slipway/validate` check runs of pull requests (configuration check and build),
-- which belong to no operation: where their check run id is kept once GitHub created
-- it, so the check run can be completed and given its annotations 50 at a time, and
-- which validations a killed server left unfinished (the next start runs them again).
--
-- Timestamps are unix milliseconds.
CREATE TABLE github_validations (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id      TEXT NOT NULL,
    repository       TEXT NOT NULL,               -- owner/name
    head_sha         TEXT NOT NULL,
    installation_id  INTEGER,
    pull_request     INTEGER,                     -- its number; NULL when unknown
    from_fork        INTEGER NOT NULL,            -- 1: no build with the app's variables
    check_run_id     INTEGER,                     -- set once GitHub created the check run
    created_at       INTEGER NOT NULL,
    finished_at      INTEGER                      -- NULL: still to be completed
);
CREATE UNIQUE INDEX github_validations_by_delivery ON github_validations (delivery_id, head_sha);
CREATE INDEX github_validations_by_check_run ON github_validations (repository, check_run_id);

-- An outbox request about a validation's check run: its `{check_run_id}` placeholder is
-- filled from, and a created check run's id stored in, `github_validations`.
ALTER TABLE github_outbox ADD COLUMN validation_id INTEGER REFERENCES github_validations (id);
