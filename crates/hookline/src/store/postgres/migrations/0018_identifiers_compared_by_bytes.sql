-- Every text column of hookline's tables compares and sorts byte by byte (`COLLATE "C"`), whatever
-- the database's default collation. A cluster made with a language's locale (`en_US.UTF-8`, the
-- default of most packaged and container clusters) otherwise compares every key through the
-- locale's rules (`strcoll`): each index search and insert on app keys, hook ids, config ids and
-- delivery ids, every sort of them. On such a cluster that cost a tenth of the rate at 100 hooks
-- per request (BENCHMARKS.md, "PostgreSQL: keys compared by bytes"). Byte order is also the
-- embedded store's (`BINARY`), so a list ordered by an id comes out in the same order on both
-- stores. Nothing is sorted for a reader by a language's rules: lists go by id or by time.
-- A collation-only change keeps the rows where they are (no table rewrite) but rebuilds each
-- index on these columns: one `ALTER TABLE` per table, so each of its indexes is rebuilt once.
-- Every table altered stays locked until the migration commits; on a large `hooks` table that
-- takes a while (README, upgrades). A database made with the C locale compares by bytes already
-- and is changed all the same: one rule for every database (a test checks it), and a dump
-- restored into a cluster of another locale keeps it.
DO $$
DECLARE
    t RECORD;
BEGIN
    FOR t IN
        SELECT c.relname AS name,
               string_agg(format('ALTER COLUMN %I TYPE %s COLLATE "C"', a.attname,
                                 format_type(a.atttypid, a.atttypmod)), ', ') AS changes
        FROM pg_class c
        JOIN pg_attribute a ON a.attrelid = c.oid
        WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
          AND c.relkind = 'r'
          AND c.relname IN ('app_keys', 'webhook_configs', 'subscriptions', 'hooks', 'queue',
                            'deliveries', 'delivery_hook_lists', 'attempts', 'nodes',
                            'dashboard_sessions', 'operational_events', 'portal_links')
          AND a.attnum > 0 AND NOT a.attisdropped
          AND a.atttypid IN ('text'::regtype, 'text[]'::regtype)
          AND a.attcollation <> (SELECT oid FROM pg_collation WHERE collname = 'C'
                                     AND collnamespace = 'pg_catalog'::regnamespace)
        GROUP BY c.relname
    LOOP
        EXECUTE format('ALTER TABLE %I %s', t.name, t.changes);
    END LOOP;
END
$$;
