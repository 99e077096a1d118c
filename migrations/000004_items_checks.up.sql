-- A price is never negative and a name never empty. The items request parser used to refuse both for
-- /items alone; now that every resource is read by the same per-type codecs, the rules live where
-- they belong, in the table, and a write that breaks one is a 400 naming the column (sql.c reads the
-- constraint's column). NOT VALID: rows written before (by plain SQL) are left as they are.
ALTER TABLE inventory.items ADD CONSTRAINT items_price_not_negative CHECK (price >= 0) NOT VALID;
ALTER TABLE inventory.items ADD CONSTRAINT items_name_not_empty CHECK (name <> '') NOT VALID;
