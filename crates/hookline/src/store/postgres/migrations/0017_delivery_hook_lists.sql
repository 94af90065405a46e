-- A delivery's hooks as one row per delivery, `delivery_hook_lists`, instead of a row per hook
-- in `delivery_hooks`: `hook_seqs` (in the delivery's order), `hook_keys` (each hook's
-- orderingKey value, in the same order; NULL for a delivery of a config without one) and
-- `hook_range` (the smallest and largest seq, for finding the deliveries of a hook).
-- `delivery_hooks` held a row per hook with two index entries: at 100 hooks per delivery its
-- insert was half to two thirds of a claim's buffers and 1,200 WAL records of 120 kB per 400 hooks
-- (BENCHMARKS.md, "A delivery's hooks in one row"). Now a claim writes one row, one key entry and
-- one GiST entry per delivery. Not columns of `deliveries`: a delivery's row is updated at each
-- step (lease, attempt, status), each update a new version in every index of the table, the
-- GiST one too (tried: at one hook per delivery the database's CPU per hook rose 10-15 %).
-- The deliveries of a hook are found through `delivery_hook_lists_by_hook` (the ranges that hold
-- its seq), then `seq = ANY(hook_seqs)`: a delivery's range also spans the hooks of other
-- configs accepted between its first and last.
-- Not for a rolling upgrade: a node of an earlier version writes and reads `delivery_hooks`.
CREATE TABLE delivery_hook_lists (
    hooks_id   TEXT PRIMARY KEY,
    hook_seqs  BIGINT[] NOT NULL,
    hook_keys  TEXT[],
    hook_range INT8RANGE NOT NULL
);
INSERT INTO delivery_hook_lists (hooks_id, hook_seqs, hook_keys, hook_range)
SELECT hooks_id, array_agg(hook_seq ORDER BY position),
       CASE WHEN bool_or(ordering_key IS NOT NULL)
            THEN array_agg(ordering_key ORDER BY position) END,
       int8range(min(hook_seq), max(hook_seq), '[]')
FROM delivery_hooks GROUP BY hooks_id;
DROP TABLE delivery_hooks;
CREATE INDEX delivery_hook_lists_by_hook ON delivery_hook_lists USING gist (hook_range);
