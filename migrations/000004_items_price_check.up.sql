-- A price is never negative. The request parser used to refuse it for /items alone; now that every
-- resource is read by the same per-type codecs, the rule lives where it belongs, in the table, and
-- a write that breaks it is a 400 naming the column (sql.c reads the constraint's column).
ALTER TABLE inventory.items ADD CONSTRAINT items_price_not_negative CHECK (price >= 0);
