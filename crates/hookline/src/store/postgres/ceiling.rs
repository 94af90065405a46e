//! The raw commit rate of a PostgreSQL cluster, for `hookline bench --ceiling`: what the database
//! alone can do with hook rows on this machine, so hookline's figures can be read against it.
//! Each transaction is one statement (a hook row and its queue row) in autocommit, the cheapest
//! durable write of a hook there is.

use std::time::Instant;

use super::connection::{connect, parse_url, pg_err};
use crate::store::StoreResult;

const STATEMENT: &str = "WITH new AS ( \
        INSERT INTO hooks (app_key, hook_id, product, event, body, created_at) \
        SELECT 'ceiling', t.id, 'SMS', 'MESSAGE_RESULT_UPDATE', t.body, 0 \
        FROM unnest($1::TEXT[], $2::TEXT[]) AS t(id, body) RETURNING seq) \
    INSERT INTO queue (config_id, event, hook_seq) \
    SELECT 'ceiling-config', 'MESSAGE_RESULT_UPDATE', seq FROM new";

/// Hooks per second committed by `clients` connections, each committing `per_commit` hooks per
/// transaction, `commits` times, into a fresh database made on the cluster of `url`. `body`
/// makes the JSON of hook `i`.
pub async fn commit_rate(
    url: &str,
    clients: usize,
    per_commit: usize,
    commits: usize,
    body: fn(usize, &mut String),
) -> StoreResult<f64> {
    let name = super::create_scratch_database(url).await?;
    let rate = measure(url, &name, clients, per_commit, commits, body).await;
    // Dropped whether or not the run succeeded (each run writes up to a few hundred MB); a
    // database left behind does not make the measurement wrong, so it is only reported.
    if let Err(e) = super::drop_scratch_database(url, &name).await {
        tracing::warn!(database = %name, error = %e, "the ceiling's database was not dropped");
    }
    rate
}

async fn measure(
    url: &str,
    name: &str,
    clients: usize,
    per_commit: usize,
    commits: usize,
    body: fn(usize, &mut String),
) -> StoreResult<f64> {
    let config = parse_url(url)?.with_dbname(name);
    let setup = connect(&config).await?;
    setup
        .batch_execute(include_str!("migrations/0001_initial.sql"))
        .await
        .map_err(pg_err)?;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        let client = connect(&config).await?;
        tasks.push(tokio::spawn(async move {
            let statement = client.prepare(STATEMENT).await.map_err(pg_err)?;
            let mut json = String::new();
            for k in 0..commits {
                let first = (c * commits + k) * per_commit;
                let mut ids = Vec::with_capacity(per_commit);
                let mut bodies = Vec::with_capacity(per_commit);
                for i in first..first + per_commit {
                    json.clear();
                    body(i, &mut json);
                    ids.push(format!("b{i}"));
                    bodies.push(json.clone());
                }
                client
                    .execute(&statement, &[&ids, &bodies])
                    .await
                    .map_err(pg_err)?;
            }
            StoreResult::Ok(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| crate::store::StoreError::Unavailable(format!("ceiling task: {e}")))??;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok((clients * commits * per_commit) as f64 / secs)
}
