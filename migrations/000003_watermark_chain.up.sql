-- The watermark chain (src/cdc.c, "THE RULE"): every write of the watermark row, by Debezium's
-- heartbeat.action.query or by a replica's ticker, raises seq by exactly one and stamps origin with
-- the writing server's start time. A replica that sees seq skip knows WAL was never streamed to it
-- (a reset slot or offsets); a new origin means PostgreSQL restarted or a standby was promoted.
ALTER TABLE inventory.cdcache_watermark
    ADD COLUMN seq bigint NOT NULL DEFAULT 1,
    ADD COLUMN origin bigint NOT NULL DEFAULT 0;

CREATE FUNCTION inventory.cdcache_watermark_link() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        NEW.seq := OLD.seq + 1;
    ELSE
        NEW.seq := 1;
    END IF;
    NEW.origin := (extract(epoch FROM pg_postmaster_start_time()) * 1000000)::bigint;
    RETURN NEW;
END;
$$;

CREATE TRIGGER cdcache_watermark_link
    BEFORE INSERT OR UPDATE ON inventory.cdcache_watermark
    FOR EACH ROW EXECUTE FUNCTION inventory.cdcache_watermark_link();
