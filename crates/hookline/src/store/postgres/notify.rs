//! LISTEN/NOTIFY: how nodes tell each other of their commits.
//!
//! Ingest and replay `NOTIFY hookline_work, '<config id>'` in their transaction, config changes
//! `NOTIFY hookline_config`, a node handing its leases back `hookline_freed`, a node joining or
//! leaving `hookline_nodes`, a redelivery or a retry left to a config's home `hookline_waiting`. A listener connection of each node turns them into [`StoreSignal`]s
//! (after a lost connection, one `Resync`). Signals of a node's own commits are also emitted
//! locally, at once, by the writer.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use super::connection::{Conn, DbConfig, describe, execute};
use crate::store::{StoreResult, StoreSignal};

/// Notification channels (payload: a config id).
pub(super) const WORK_CHANNEL: &str = "hookline_work";
pub(super) const CONFIG_CHANNEL: &str = "hookline_config";
/// A node handed its leases back: the others sweep for them at once (payload: its node id).
pub(super) const FREED_CHANNEL: &str = "hookline_freed";
/// Open deliveries of a config wait for its home, which may be another node: a redelivery, or a
/// retry recorded by a node the config's home moved away from (payload: the config id).
pub(super) const WAITING_CHANNEL: &str = "hookline_waiting";
/// A node joined or left (payload: its node id).
pub(super) const NODES_CHANNEL: &str = "hookline_nodes";

/// How long the listener waits before connecting again after losing its connection.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// Turns `NOTIFY`s of every node into signals, on a connection of its own. Each time it has
/// subscribed (at start too: the engine may have loaded its state just before) it sends
/// `Resync`, since notifications sent while it was not listening are gone.
///
/// Subscribing also writes the connection's server process into the node's row
/// (`nodes.listener_pid`, migration 20): the other nodes count this node alive while that process
/// lives (`PostgresStore::membership`), so a node whose process died is counted out within a
/// second. The node's row exists by then (`cluster::join` runs before the listener starts).
///
/// Work this node's writers committed is signalled by the writers themselves, at once; their
/// `hookline_work` notifications (sent by the server processes `writer_pids`, 0 while unknown)
/// come back here a moment later and are dropped. Another `NewWork` for the same rows would make the
/// engine distrust a claim's `drained` and claim again for nothing.
pub(super) async fn listen(
    config: DbConfig,
    node_id: Arc<str>,
    signals: mpsc::UnboundedSender<StoreSignal>,
    writer_pids: Vec<Arc<AtomicI32>>,
) {
    let subscribe_sql = format!(
        "LISTEN {WORK_CHANNEL}; LISTEN {CONFIG_CHANNEL}; LISTEN {FREED_CHANNEL}; \
             LISTEN {NODES_CHANNEL}; LISTEN {WAITING_CHANNEL}"
    );
    loop {
        match config.pg.connect(config.tls.clone()).await {
            Ok((client, mut connection)) => {
                let subscribe = async {
                    client.batch_execute(&subscribe_sql).await?;
                    client
                        .execute(
                            "UPDATE nodes SET listener_pid = pg_backend_pid() WHERE node_id = $1",
                            &[&&*node_id],
                        )
                        .await
                };
                tokio::pin!(subscribe);
                let mut subscribed = false;
                loop {
                    tokio::select! {
                        result = &mut subscribe, if !subscribed => match result {
                            Ok(_) => {
                                subscribed = true;
                                if signals.send(StoreSignal::Resync).is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "postgres LISTEN failed");
                                break;
                            }
                        },
                        message = std::future::poll_fn(|cx| connection.poll_message(cx)) => {
                            match message {
                                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                                    if n.channel() == WORK_CHANNEL && is_own(&writer_pids, n.process_id()) {
                                        continue;
                                    }
                                    let config_id = n.payload().to_owned();
                                    let signal = match n.channel() {
                                        CONFIG_CHANNEL => StoreSignal::ConfigChanged { config_id },
                                        FREED_CHANNEL => StoreSignal::LeasesFreed,
                                        NODES_CHANNEL => StoreSignal::NodesChanged,
                                        WAITING_CHANNEL => StoreSignal::DeliveriesWaiting { config_id },
                                        _ => StoreSignal::NewWork { config_id },
                                    };
                                    if signals.send(signal).is_err() {
                                        return;
                                    }
                                }
                                Some(Ok(_)) => {}
                                Some(Err(e)) => {
                                    tracing::warn!(error = %e, "postgres notification connection failed");
                                    break;
                                }
                                None => break,
                            }
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %describe(&e), "postgres notification connection cannot connect");
            }
        }
        if signals.is_closed() {
            return;
        }
        tokio::time::sleep(LISTEN_RETRY).await;
    }
}

/// Whether `pid` is the server process of one of this node's writer connections.
fn is_own(writer_pids: &[Arc<AtomicI32>], pid: i32) -> bool {
    pid != 0 && writer_pids.iter().any(|w| w.load(Ordering::Relaxed) == pid)
}

/// `NOTIFY`s, delivered to every node when the transaction commits (identical ones once).
pub(super) async fn notify(c: &Conn, channel: &str, config_ids: &[String]) -> StoreResult<()> {
    if config_ids.is_empty() {
        return Ok(());
    }
    execute(
        c,
        "SELECT pg_notify($1, id) FROM unnest($2::TEXT[]) AS id",
        &[&channel, &config_ids],
    )
    .await?;
    Ok(())
}
