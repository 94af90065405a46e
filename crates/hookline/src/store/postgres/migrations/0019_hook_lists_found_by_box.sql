-- The deliveries of a hook are found through a GiST index of boxes, not of ranges: the same
-- lookup (the lists whose first and last seq hold the hook's, then `seq = ANY(hook_seqs)`), the
-- same few pages read, a third of the cost to insert. A GiST insert compares the new entry with
-- every entry of a page at each level of the tree (`penalty`); for `int8range` each comparison
-- copies both ranges out of their short on-disk form and decodes them: with one hook per
-- delivery that was 7-8 % of a two-core machine's CPU, every claim and redelivery paying for it
-- (BENCHMARKS.md, "PostgreSQL: a delivery's hooks found by a box"). A box's penalty is arithmetic
-- on four numbers stored as they are. The box spans the seqs on x and 0..1 on y, so its area
-- grows with the span and the tree keeps nearby seqs together (on a flat box every area is 0 and
-- the tree does not sort: a lookup read a hundred pages). Seqs as `float8` are exact up to 2^53;
-- beyond, rounding keeps their order, so a list holding a seq is never missed, and the seq test
-- beside it stays exact. An empty list (`'empty'` range) has no box and is never found, as before.
-- The expression is written once in the code (`store/postgres/deliveries.rs`,
-- `list_holds_hook!`): a lookup must repeat it to use the index.
-- Not for a rolling upgrade: a node of an earlier version looks a hook's deliveries up by the
-- range, and would read the whole table for each lookup (README, upgrades).
DROP INDEX delivery_hook_lists_by_hook;
CREATE INDEX delivery_hook_lists_by_hook ON delivery_hook_lists
    USING gist ((box(point(lower(hook_range), 0), point(upper(hook_range), 1))));
