-- A config its health DISABLED now stays subscribed, so the hooks accepted meanwhile are held for
-- it. Configs that were DISABLED before this version lost their subscriptions: give them back
-- (events are stored comma-separated).
WITH RECURSIVE split (app_key, product, config_id, event, rest) AS (
    SELECT app_key, product, id, '', events || ','
    FROM webhook_configs WHERE enabled = 1 AND health_state = 'DISABLED'
    UNION ALL
    SELECT app_key, product, config_id, substr(rest, 1, instr(rest, ',') - 1),
           substr(rest, instr(rest, ',') + 1)
    FROM split WHERE rest <> ''
)
INSERT OR IGNORE INTO subscriptions (app_key, product, event, config_id)
SELECT app_key, product, event, config_id FROM split WHERE event <> '';
