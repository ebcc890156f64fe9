-- Maintenance mode of an environment (`slipway maintenance on`), kept so that a server
-- restart does not lift it.
ALTER TABLE environments ADD COLUMN maintenance INTEGER NOT NULL DEFAULT 0;
