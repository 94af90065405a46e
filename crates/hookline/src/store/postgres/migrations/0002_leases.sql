ALTER TABLE deliveries ADD COLUMN lease_owner TEXT;
ALTER TABLE deliveries ADD COLUMN lease_expires_at BIGINT;
-- The sweep for due work: open deliveries by due time.
CREATE INDEX deliveries_open_by_due ON deliveries ((COALESCE(next_attempt_at, 0)))
    WHERE status IN ('PENDING', 'RETRYING');
-- Renewing and handing back one node's leases.
CREATE INDEX deliveries_by_lease_owner ON deliveries (lease_owner)
    WHERE lease_owner IS NOT NULL;
