//! The writer's hot statements: prepared once when the writer thread starts and kept for its life.
//!
//! `prepare_cached` looks a statement up by its SQL text: it hashes the text twice and allocates
//! a key per use, which showed in profiles at a dozen statements per one-hook ingest or claim.
//! The statements every group runs (ingest, claims, attempt records, the transaction itself) are
//! fields here instead; the rare ones keep using `prepare_cached`. Each SQL text lives beside the
//! code that binds it.

use rusqlite::{Connection, PrepFlags, Statement};

use super::{attempts, claims, deliveries, ingest};

pub(super) struct Hot<'c> {
    /// The writer's connection (what a statement's changes and new rowids are read from).
    pub(super) conn: &'c Connection,
    pub(super) begin: Statement<'c>,
    pub(super) commit: Statement<'c>,
    pub(super) insert_hook: Statement<'c>,
    pub(super) insert_queue: Statement<'c>,
    pub(super) oldest_queued: Statement<'c>,
    pub(super) take_queued: Statement<'c>,
    pub(super) delete_queued: Statement<'c>,
    pub(super) insert_deliveries: Statement<'c>,
    pub(super) insert_delivery_hooks: Statement<'c>,
    pub(super) hooks_id_at_seq: Statement<'c>,
    pub(super) insert_attempt: Statement<'c>,
    pub(super) advance_delivery: Statement<'c>,
}

impl<'c> Hot<'c> {
    /// Prepares every statement (the schema is migrated before the writer starts).
    pub(super) fn prepare(conn: &'c Connection) -> rusqlite::Result<Self> {
        // Kept for the connection's life: SQLite may place them in longer-lived memory.
        let prepare =
            |sql: &str| conn.prepare_with_flags(sql, PrepFlags::SQLITE_PREPARE_PERSISTENT);
        Ok(Hot {
            conn,
            begin: prepare("BEGIN IMMEDIATE")?,
            commit: prepare("COMMIT")?,
            insert_hook: prepare(ingest::INSERT_HOOK)?,
            insert_queue: prepare(ingest::INSERT_QUEUE)?,
            oldest_queued: prepare(claims::OLDEST_QUEUED)?,
            take_queued: prepare(claims::TAKE_QUEUED)?,
            delete_queued: prepare(claims::DELETE_QUEUED)?,
            insert_deliveries: prepare(deliveries::INSERT_DELIVERIES)?,
            insert_delivery_hooks: prepare(deliveries::INSERT_DELIVERY_HOOKS)?,
            hooks_id_at_seq: prepare(deliveries::HOOKS_ID_AT_SEQ)?,
            insert_attempt: prepare(attempts::INSERT_ATTEMPT)?,
            advance_delivery: prepare(attempts::ADVANCE_DELIVERY)?,
        })
    }
}
