-- Schema for the pgbench comparison (benches/pgbench/run.sh): the same
-- durable pay-in as Tijori's POST /payments (a payment row and the
-- wallet's pending_payins in one transaction), 64 merchant wallets.
DROP TABLE IF EXISTS payments;
DROP TABLE IF EXISTS wallets;
CREATE TABLE wallets (
    merchant_id    integer PRIMARY KEY,
    currency       text    NOT NULL DEFAULT 'INR',
    available      bigint  NOT NULL DEFAULT 0 CHECK (available >= 0),
    held           bigint  NOT NULL DEFAULT 0 CHECK (held >= 0),
    pending_payins bigint  NOT NULL DEFAULT 0 CHECK (pending_payins >= 0),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE payments (
    id          uuid    PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id    text    NOT NULL,
    merchant_id integer NOT NULL REFERENCES wallets (merchant_id),
    created_by  integer NOT NULL,
    amount      bigint  NOT NULL CHECK (amount > 0),
    fee         bigint  NOT NULL,
    net_amount  bigint  NOT NULL,
    currency    text    NOT NULL DEFAULT 'INR',
    status      text    NOT NULL DEFAULT 'pending',
    payer       text    NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (merchant_id, order_id)
);
-- Newest-first listings per merchant and per creator, as Tijori indexes them.
CREATE INDEX payments_by_merchant ON payments (merchant_id, created_at DESC);
CREATE INDEX payments_by_creator ON payments (created_by, created_at DESC);
INSERT INTO wallets (merchant_id) SELECT g FROM generate_series(1, 64) AS g;
