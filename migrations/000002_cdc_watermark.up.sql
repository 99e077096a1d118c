-- Debezium's heartbeat.action.query upserts this row on every heartbeat. Its change events travel the
-- WAL in order with the items' changes, so one that arrives with a recent commit time proves every
-- earlier commit has been streamed: replicas use it to vouch for their caches (bounded staleness).
CREATE TABLE inventory.cdcache_watermark (
    id integer PRIMARY KEY,
    ts timestamptz NOT NULL
);
