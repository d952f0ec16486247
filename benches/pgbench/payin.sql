-- One durable pay-in (pgbench script): insert the payment (150 bps fee,
-- rounded half-up) and add its amount to the wallet's pending pay-ins, in
-- one transaction, committed with synchronous_commit = on.
\set m random(1, 64)
\set amount random(100, 500000)
BEGIN;
INSERT INTO payments (order_id, merchant_id, created_by, amount, fee, net_amount, payer)
VALUES ('pg-' || :client_id || '-' || gen_random_uuid(), :m, :m, :amount,
        (:amount * 150 + 5000) / 10000, :amount - (:amount * 150 + 5000) / 10000, 'Bench Payer');
UPDATE wallets SET pending_payins = pending_payins + :amount, updated_at = now()
WHERE merchant_id = :m;
COMMIT;
