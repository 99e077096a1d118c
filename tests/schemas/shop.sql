-- The second real schema the tests run every rule on (issue 14): a uuid key, text, varchar, boolean,
-- text[], jsonb, numeric, nullable columns, an enum, float8, date, bytea, and a long text that
-- PostgreSQL stores out of line; and an identity key with a foreign key. A user creates these with
-- psql "$DATABASE_URL" -f tests/schemas/shop.sql before `CONFIG=tests/schemas/shop.yaml make restart`.
CREATE SCHEMA IF NOT EXISTS shop;
DO $$ BEGIN
    CREATE TYPE shop.tier AS ENUM ('free', 'pro', 'enterprise');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

CREATE TABLE IF NOT EXISTS shop.customers (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email      text NOT NULL UNIQUE,
    name       varchar(200) NOT NULL,
    active     boolean NOT NULL DEFAULT true,
    tags       text[] NOT NULL DEFAULT '{}',
    profile    jsonb,
    balance    numeric(12, 2) NOT NULL DEFAULT 0,
    notes      text,
    tier       shop.tier NOT NULL DEFAULT 'free',
    score      double precision,
    born       date,
    avatar     bytea,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- out of line and uncompressed beyond ~2 kB, so an update that leaves it alone sends Debezium's
-- placeholder for it (REPLICA IDENTITY DEFAULT)
ALTER TABLE shop.customers ALTER COLUMN notes SET STORAGE EXTERNAL;

CREATE TABLE IF NOT EXISTS shop.orders (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id uuid NOT NULL REFERENCES shop.customers (id),
    total       numeric(12, 2) NOT NULL,
    quantity    integer NOT NULL DEFAULT 1,
    status      text NOT NULL DEFAULT 'new',
    placed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS orders_placed_at ON shop.orders (placed_at);
CREATE INDEX IF NOT EXISTS orders_customer_id ON shop.orders (customer_id);
