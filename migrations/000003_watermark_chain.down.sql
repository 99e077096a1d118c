DROP TRIGGER IF EXISTS cdcache_watermark_link ON inventory.cdcache_watermark;
DROP FUNCTION IF EXISTS inventory.cdcache_watermark_link();
ALTER TABLE inventory.cdcache_watermark DROP COLUMN IF EXISTS seq, DROP COLUMN IF EXISTS origin;
