DROP TRIGGER IF EXISTS items_bump_version ON inventory.items;
DROP FUNCTION IF EXISTS inventory.items_bump_version();
DROP TABLE IF EXISTS inventory.items;
DROP SCHEMA IF EXISTS inventory;
