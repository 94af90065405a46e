-- deliveryDeadline per config, in milliseconds (NULL: none); a delivery it ends is 'EXPIRED'.
ALTER TABLE webhook_configs ADD COLUMN delivery_deadline_ms BIGINT;
