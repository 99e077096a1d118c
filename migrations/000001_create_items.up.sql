CREATE SCHEMA IF NOT EXISTS inventory;

CREATE TABLE inventory.items (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    description text NOT NULL,
    price       numeric(10, 2) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    version     bigint NOT NULL DEFAULT 1
);

-- Every UPDATE, including plain SQL that bypasses the API, raises version by one and stamps
-- updated_at, so every row image (query or change event) carries a per-key monotonic version.
CREATE FUNCTION inventory.items_bump_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER items_bump_version
    BEFORE UPDATE ON inventory.items
    FOR EACH ROW EXECUTE FUNCTION inventory.items_bump_version();
