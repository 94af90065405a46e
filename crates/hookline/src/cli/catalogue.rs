//! `hookline catalogue`: the server's products and events (`GET /v1/catalogue`), built-in and
//! operator-defined, as a table or (with `--json`) the whole catalogue with each hook's schema.

use clap::Args;
use reqwest::Method;
use serde_json::Value;

use super::client::{ApiClient, Connection, Credential};
use super::output::{show, table};

#[derive(Debug, Args)]
pub struct CatalogueArgs {
    /// Only this product's events (its name, any letter case).
    #[arg(long)]
    pub product: Option<String>,
}

pub async fn run(conn: &Connection, args: CatalogueArgs) -> anyhow::Result<()> {
    let api = ApiClient::new(conn)?;
    let mut answer = api
        .call(
            Method::GET,
            "/v1/catalogue",
            None,
            Credential::AppKey,
            "read the catalogue",
        )
        .await?;
    if let Some(wanted) = &args.product {
        let products = answer["catalogue"]["products"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let kept: Vec<Value> = products
            .into_iter()
            .filter(|p| {
                p["productName"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(wanted))
            })
            .collect();
        if kept.is_empty() {
            anyhow::bail!("--product: the server's catalogue has no product {wanted:?}");
        }
        answer["catalogue"]["products"] = Value::Array(kept);
    }
    show(conn.json, &answer, |a| {
        let mut rows = Vec::new();
        for product in a["catalogue"]["products"].as_array().into_iter().flatten() {
            let name = product["productName"].as_str().unwrap_or("").to_owned();
            let ingestible = if product["ingestible"] == Value::Bool(false) {
                "no"
            } else {
                "yes"
            };
            for event in product["events"].as_array().into_iter().flatten() {
                let required = event["hookSchema"]["required"]
                    .as_array()
                    .map(|r| {
                        r.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                rows.push(vec![
                    name.clone(),
                    event["event"].as_str().unwrap_or("").to_owned(),
                    ingestible.to_owned(),
                    required,
                ]);
            }
        }
        table(&["PRODUCT", "EVENT", "INGEST", "REQUIRED FIELDS"], &rows)
    });
    Ok(())
}
