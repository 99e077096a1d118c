ALTER TABLE inventory.items DROP CONSTRAINT IF EXISTS items_name_not_empty;
ALTER TABLE inventory.items DROP CONSTRAINT IF EXISTS items_price_not_negative;
