-- The custom headers an attempt sent (credential-like values masked): a JSON array of [name, value]
-- pairs, NULL when none.
ALTER TABLE attempts ADD COLUMN request_headers TEXT;
