//! `hookline configs`: list, get, create (every settable field), update (a JSON Merge Patch of the
//! fields given), pause, resume, delete, test, rotate the signing secret.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::client::{ApiClient, Connection};
use super::output::{details, field, show, table};

/// The settable fields, as flags (each optional: create sends what is given, update patches it).
#[derive(Debug, Args, Default)]
pub struct ConfigFields {
    /// A product of the server's catalogue: SMS, "KakaoTalk Bizmessage", Email, hookline (its
    /// operational events), or one the operator added.
    #[arg(long)]
    pub product: Option<String>,
    /// Comma-separated event names.
    #[arg(long, value_delimiter = ',')]
    pub events: Option<Vec<String>>,
    #[arg(long)]
    pub url: Option<String>,
    /// Sent verbatim in X-Toast-Webhook-Signature.
    #[arg(long)]
    pub signature: Option<String>,
    /// A whsec_ secret: adds the Standard Webhooks headers.
    #[arg(long)]
    pub signing_secret: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    #[arg(long)]
    pub max_hooks_per_request: Option<u32>,
    /// The ceiling of the adaptive concurrency.
    #[arg(long)]
    pub max_requests_in_flight: Option<u32>,
    #[arg(long)]
    pub timeout_ms: Option<u32>,
    /// Comma-separated delays, e.g. 5s,30s,2m.
    #[arg(long, value_delimiter = ',')]
    pub retry_schedule: Option<Vec<String>>,
    /// A custom request header, `Name: value` (repeatable). On update, a name with nothing after
    /// the colon removes that header.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// No attempt starts later than this after a hook was accepted (1s to 30d), e.g. 10m; later
    /// deliveries end EXPIRED. On update, `none` removes it.
    #[arg(long, value_name = "DURATION")]
    pub delivery_deadline: Option<String>,
    /// The top-level hook field whose value orders deliveries (hooks with the same value go out
    /// in acceptance order), e.g. recipientNo. On update, `none` removes it.
    #[arg(long, value_name = "FIELD")]
    pub ordering_key: Option<String>,
}

impl ConfigFields {
    /// The fields given, by their API names.
    fn to_json(&self) -> Map<String, Value> {
        let mut body = Map::new();
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                body.insert(key.to_owned(), value);
            }
        };
        put("productName", self.product.clone().map(Value::from));
        put("events", self.events.clone().map(|e| json!(e)));
        put("url", self.url.clone().map(Value::from));
        put("signature", self.signature.clone().map(Value::from));
        put(
            "signingSecret",
            self.signing_secret.clone().map(Value::from),
        );
        put("description", self.description.clone().map(Value::from));
        put(
            "maxHooksPerRequest",
            self.max_hooks_per_request.map(Value::from),
        );
        put(
            "maxRequestsInFlight",
            self.max_requests_in_flight.map(Value::from),
        );
        put("timeoutMs", self.timeout_ms.map(Value::from));
        put(
            "retrySchedule",
            self.retry_schedule.clone().map(|s| json!(s)),
        );
        put(
            "deliveryDeadline",
            self.delivery_deadline.as_deref().map(|d| match d {
                "none" => Value::Null,
                d => Value::from(d),
            }),
        );
        put(
            "orderingKey",
            self.ordering_key.as_deref().map(|k| match k {
                "none" => Value::Null,
                k => Value::from(k),
            }),
        );
        if !self.headers.is_empty() {
            let headers: Map<String, Value> = self
                .headers
                .iter()
                .map(|h| {
                    let (name, value) = h.split_once(':').unwrap_or((h.as_str(), ""));
                    let value = value.trim();
                    let value = if value.is_empty() {
                        Value::Null
                    } else {
                        Value::from(value)
                    };
                    (name.trim().to_owned(), value)
                })
                .collect();
            body.insert("headers".to_owned(), Value::Object(headers));
        }
        body
    }
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// The app key's webhook configs.
    List {
        #[arg(long)]
        product: Option<String>,
        #[arg(long)]
        event: Option<String>,
        /// Only enabled (true) or paused (false) configs.
        #[arg(long)]
        enabled: Option<bool>,
    },
    /// One config, with its health.
    Get { id: String },
    /// Create a config (--product, --events, --url and --signature are required by the server).
    Create {
        #[command(flatten)]
        fields: ConfigFields,
        /// Create it paused.
        #[arg(long)]
        paused: bool,
    },
    /// Change the fields given (a JSON Merge Patch); the others stay as they are.
    Update {
        id: String,
        #[command(flatten)]
        fields: ConfigFields,
        /// Remove the signing secret.
        #[arg(long, conflicts_with = "signing_secret")]
        remove_signing_secret: bool,
    },
    /// Stop sending to it (`enabled: false`): hooks accepted meanwhile are not queued for it.
    Pause { id: String },
    /// Send to it again (`enabled: true`; a DISABLED config gets a fresh health).
    Resume { id: String },
    /// Delete it; its open deliveries become CANCELLED.
    Delete { id: String },
    /// Send one sample hook now (marked X-Hookline-Test) and show the attempt.
    Test {
        id: String,
        /// The event of the sample (default: the config's first).
        #[arg(long)]
        event: Option<String>,
    },
    /// A new Standard Webhooks signing secret; the old one signs beside it for the grace period.
    RotateSigningSecret {
        id: String,
        /// The new secret (default: generated, shown once).
        #[arg(long)]
        signing_secret: Option<String>,
        /// How long the old secret keeps signing, e.g. 24h (0s to 30d).
        #[arg(long)]
        grace_period: Option<String>,
    },
}

const CONFIG_KEYS: &[&str] = &[
    "webhookConfigId",
    "description",
    "productName",
    "events",
    "url",
    "signature",
    "hasSigningSecret",
    "previousSigningSecretExpiresAt",
    "enabled",
    "maxHooksPerRequest",
    "maxRequestsInFlight",
    "timeoutMs",
    "retrySchedule",
    "createdAt",
    "updatedAt",
];

/// One config as key/value lines, its health under it.
fn config_details(answer: &Value) -> String {
    let c = &answer["webhookConfig"];
    let mut out = details(c, CONFIG_KEYS);
    let h = &c["health"];
    out.push_str(&format!(
        "health                          {} ({} failures in a row; last success {}, last failure {}{})\n",
        field(h, "state"),
        field(h, "consecutiveFailures"),
        field(h, "lastSuccessAt"),
        field(h, "lastFailureAt"),
        match h["disabledReason"].as_str() {
            Some(reason) => format!("; disabled because {reason}"),
            None => String::new(),
        }
    ));
    out
}

pub async fn run(conn: &Connection, command: ConfigCommand) -> anyhow::Result<()> {
    let api = ApiClient::new(conn)?;
    let one = |id: &str| format!("/webhook-configs/{id}");
    match command {
        ConfigCommand::List {
            product,
            event,
            enabled,
        } => {
            let mut query = vec!["pageSize=1000".to_owned()];
            if let Some(p) = product {
                query.push(format!("productName={}", urlencode(&p)));
            }
            if let Some(e) = event {
                query.push(format!("event={}", urlencode(&e)));
            }
            if let Some(e) = enabled {
                query.push(format!("enabled={e}"));
            }
            let mut all = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut q = query.clone();
                if let Some(c) = &cursor {
                    q.push(format!("cursor={}", urlencode(c)));
                }
                let path = format!("/webhook-configs?{}", q.join("&"));
                let page = api.app(Method::GET, &path, None, "list configs").await?;
                all.extend(
                    page["webhookConfigs"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default(),
                );
                match page["nextCursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
            let answer = json!({ "webhookConfigs": all });
            show(conn.json, &answer, |a| {
                let rows: Vec<Vec<String>> = a["webhookConfigs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        vec![
                            field(c, "webhookConfigId"),
                            field(c, "productName"),
                            field(c, "events"),
                            if c["enabled"] == json!(true) {
                                field(&c["health"], "state")
                            } else {
                                "PAUSED".to_owned()
                            },
                            field(c, "url"),
                        ]
                    })
                    .collect();
                table(&["ID", "PRODUCT", "EVENTS", "STATE", "URL"], &rows)
            });
        }
        ConfigCommand::Get { id } => {
            let answer = api.app(Method::GET, &one(&id), None, "get config").await?;
            show(conn.json, &answer, config_details);
        }
        ConfigCommand::Create { fields, paused } => {
            let mut body = fields.to_json();
            if paused {
                body.insert("enabled".into(), json!(false));
            }
            let answer = api
                .app(
                    Method::POST,
                    "/webhook-configs",
                    Some(&Value::Object(body)),
                    "create config",
                )
                .await?;
            show(conn.json, &answer, |a| {
                format!("webhook config created\n{}", config_details(a))
            });
        }
        ConfigCommand::Update {
            id,
            fields,
            remove_signing_secret,
        } => {
            let mut patch = fields.to_json();
            if remove_signing_secret {
                patch.insert("signingSecret".into(), Value::Null);
            }
            if patch.is_empty() {
                anyhow::bail!("update: name at least one field to change (see --help)");
            }
            let answer = api
                .app(
                    Method::PATCH,
                    &one(&id),
                    Some(&Value::Object(patch)),
                    "update config",
                )
                .await?;
            show(conn.json, &answer, |a| {
                format!("webhook config updated\n{}", config_details(a))
            });
        }
        ConfigCommand::Pause { id } => set_enabled(conn, &api, &id, false).await?,
        ConfigCommand::Resume { id } => set_enabled(conn, &api, &id, true).await?,
        ConfigCommand::Delete { id } => {
            let answer = api
                .app(Method::DELETE, &one(&id), None, "delete config")
                .await?;
            show(conn.json, &answer, |a| {
                format!(
                    "webhook config {} deleted; its open deliveries are CANCELLED\n",
                    field(&a["webhookConfig"], "webhookConfigId")
                )
            });
        }
        ConfigCommand::Test { id, event } => {
            let body = match event {
                Some(e) => json!({ "event": e }),
                None => json!({}),
            };
            let answer = api
                .app(
                    Method::POST,
                    &format!("{}/test", one(&id)),
                    Some(&body),
                    "test config",
                )
                .await?;
            show(conn.json, &answer, |a| {
                let at = &a["attempt"];
                format!(
                    "test delivery {}: {} in {} ms (hooksId {}, hookId {}){}\n",
                    if at["succeeded"] == json!(true) {
                        "delivered"
                    } else {
                        "failed"
                    },
                    match at["errorKind"].as_str() {
                        Some(kind) => format!("error {kind}"),
                        None => format!("HTTP {}", field(at, "statusCode")),
                    },
                    field(at, "durationMs"),
                    field(at, "hooksId"),
                    field(at, "hookId"),
                    match at["errorMessage"].as_str() {
                        Some(m) => format!("\n  {m}"),
                        None => String::new(),
                    }
                )
            });
        }
        ConfigCommand::RotateSigningSecret {
            id,
            signing_secret,
            grace_period,
        } => {
            let mut body = Map::new();
            if let Some(s) = signing_secret {
                body.insert("signingSecret".into(), Value::from(s));
            }
            if let Some(g) = grace_period {
                body.insert("gracePeriod".into(), Value::from(g));
            }
            let answer = api
                .app(
                    Method::POST,
                    &format!("{}/signing-secret/rotate", one(&id)),
                    Some(&Value::Object(body)),
                    "rotate the signing secret",
                )
                .await?;
            show(conn.json, &answer, |a| {
                format!(
                    "signing secret rotated (shown only now): {}\nthe previous one also signs \
                     until {}\n",
                    field(a, "signingSecret"),
                    field(&a["webhookConfig"], "previousSigningSecretExpiresAt")
                )
            });
        }
    }
    Ok(())
}

async fn set_enabled(
    conn: &Connection,
    api: &ApiClient<'_>,
    id: &str,
    enabled: bool,
) -> anyhow::Result<()> {
    let answer = api
        .app(
            Method::PATCH,
            &format!("/webhook-configs/{id}"),
            Some(&json!({ "enabled": enabled })),
            if enabled {
                "resume config"
            } else {
                "pause config"
            },
        )
        .await?;
    show(conn.json, &answer, |_| {
        if enabled {
            format!("webhook config {id} resumed\n")
        } else {
            format!("webhook config {id} paused: it receives nothing new until resumed\n")
        }
    });
    Ok(())
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
