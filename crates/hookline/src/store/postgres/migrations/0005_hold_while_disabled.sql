-- A config its health DISABLED now stays subscribed, so the hooks accepted meanwhile are held for
-- it. Configs that were DISABLED before this version lost their subscriptions: give them back
-- (events are stored comma-separated).
INSERT INTO subscriptions (app_key, product, event, config_id)
SELECT c.app_key, c.product, e, c.id
FROM webhook_configs c, unnest(string_to_array(c.events, ',')) AS e
WHERE c.enabled AND c.health_state = 'DISABLED'
ON CONFLICT DO NOTHING;
