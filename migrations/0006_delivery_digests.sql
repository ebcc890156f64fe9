-- The sha256 of each delivery's raw body, so that a signed body sent again under a new
-- X-GitHub-Delivery (a replay: the signature covers the body, not the delivery id) is
-- answered without being acted on twice. NULL for deliveries stored before this column.
ALTER TABLE github_deliveries ADD COLUMN body_sha256 TEXT;
CREATE INDEX github_deliveries_by_body ON github_deliveries (event, body_sha256);
