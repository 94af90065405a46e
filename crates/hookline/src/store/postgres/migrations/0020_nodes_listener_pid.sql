-- Each node's listener connection: the server process that serves it (`pg_backend_pid()`),
-- written by the node each time its listener subscribes. While that process lives, the node's
-- connection is open; once the node's process dies (a crash, `kill -9`) the server ends it at
-- once, and the other nodes count the node out 3 s later (a listener that reconnects is not
-- counted out), at a read of the membership (every second), instead of after `--lease-ttl`
-- without a heartbeat: the configs whose home it was move to a live node within a few seconds
-- (`store/postgres/cluster.rs`, `LIVE_NODES`). A node joining writes NULL first. NULL (a node
-- of an older version, or a listener not subscribed yet) leaves the heartbeat alone to decide.
-- Only adds a column: fit for a rolling restart.
ALTER TABLE nodes ADD COLUMN listener_pid INTEGER;
