DROP TABLE IF EXISTS inventory.cdcache_watermark;
