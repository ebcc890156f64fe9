-- API tokens other than the bootstrap admin token (which lives in <data>/admin.token).
-- Only the sha256 of a token is kept: the text is shown once, when it is created.
--
-- Timestamps are unix milliseconds.

CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL,
    hash          TEXT NOT NULL,     -- hex sha256 of the token text
    role          TEXT NOT NULL,     -- 'read' | 'deploy' | 'admin'
    environments  TEXT NOT NULL,     -- JSON list of `app/env` patterns; `*` matches any part
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER            -- NULL: the token works
);

-- The activity report filters operations by time; operations are paged by id.
CREATE INDEX operations_by_created_at ON operations (created_at, id);
