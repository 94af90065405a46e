//! Reading result rows: typed columns ([`col`]) and the shared row types of `store::rows`. A
//! column of the wrong type is stored data that does not parse back: [`StoreError::Corrupt`].

use tokio_postgres::Row;

use super::cluster::DbClock;
use crate::model::AppKeyRecord;
use crate::store::rows::{ConfigRow, DeliveryRow};
use crate::store::{OpenDelivery, StoreError, StoreResult};

pub(super) fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
    r: &'a Row,
    i: usize,
) -> StoreResult<T> {
    r.try_get(i)
        .map_err(|e| StoreError::Corrupt(format!("column {i}: {e}")))
}

pub(super) fn config_row(r: &Row) -> StoreResult<ConfigRow> {
    let get = |e: tokio_postgres::Error| StoreError::Corrupt(format!("config row: {e}"));
    Ok(ConfigRow {
        id: r.try_get(0).map_err(get)?,
        app_key: r.try_get(1).map_err(get)?,
        product: r.try_get(2).map_err(get)?,
        events: r.try_get(3).map_err(get)?,
        url: r.try_get(4).map_err(get)?,
        signature: r.try_get(5).map_err(get)?,
        signing_secret: r.try_get(6).map_err(get)?,
        enabled: r.try_get(7).map_err(get)?,
        description: r.try_get(8).map_err(get)?,
        max_hooks: r.try_get(9).map_err(get)?,
        max_in_flight: r.try_get(10).map_err(get)?,
        timeout_ms: r.try_get(11).map_err(get)?,
        retry_schedule: r.try_get(12).map_err(get)?,
        health_state: r.try_get(13).map_err(get)?,
        consecutive_failures: r.try_get(14).map_err(get)?,
        last_success_at: r.try_get(15).map_err(get)?,
        last_failure_at: r.try_get(16).map_err(get)?,
        failing_since: r.try_get(17).map_err(get)?,
        disabled_reason: r.try_get(18).map_err(get)?,
        created_at: r.try_get(19).map_err(get)?,
        updated_at: r.try_get(20).map_err(get)?,
        previous_signing_secret: r.try_get(21).map_err(get)?,
        previous_signing_secret_expires_at: r.try_get(22).map_err(get)?,
        headers: r.try_get(23).map_err(get)?,
        filter: r.try_get(24).map_err(get)?,
        delivery_deadline_ms: r.try_get(25).map_err(get)?,
        ordering_key: r.try_get(26).map_err(get)?,
    })
}

/// A delivery as selected by `DELIVERY_COLUMNS`, its next attempt's time (stored in the
/// database's time) turned into this node's clock, in which the engine's timers count and its
/// attempts' `startedAt` are written: a retry answered as due at `nextAttemptAt` starts no
/// earlier than it says.
pub(super) fn delivery_row(r: &Row, clock: &DbClock) -> StoreResult<DeliveryRow> {
    Ok(DeliveryRow {
        hooks_id: col(r, 0)?,
        app_key: col(r, 1)?,
        config_id: col(r, 2)?,
        product: col(r, 3)?,
        event: col(r, 4)?,
        status: col(r, 5)?,
        attempt_count: col(r, 6)?,
        next_attempt_at: col::<Option<i64>>(r, 7)?.map(|at| clock.to_node(at)),
        created_at: col(r, 8)?,
        updated_at: col(r, 9)?,
        test: col(r, 10)?,
    })
}

/// `hooks_id, config_id, due` as selected by the open-delivery queries, the due time (stored in
/// the database's time) turned into this node's clock, which the engine's timers count in.
pub(super) fn open_delivery(r: &Row, clock: &DbClock) -> StoreResult<OpenDelivery> {
    Ok(OpenDelivery {
        hooks_id: col(r, 0)?,
        config_id: col(r, 1)?,
        next_attempt_at: clock.to_node(col(r, 2)?),
    })
}

pub(super) fn app_key_record(r: &Row) -> StoreResult<AppKeyRecord> {
    Ok(AppKeyRecord {
        app_key: col(r, 0)?,
        name: col(r, 1)?,
        created_at: col(r, 2)?,
        previous_secret_key_expires_at: col(r, 3)?,
    })
}
