//! Realistic sample hooks, for `hookline emit` and a config's test delivery.

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Value, json};

use crate::catalogue::{Event, Product, catalogue};
use crate::dates::DateFormat;
use crate::ids::{generate_id, is_generated_id};
use crate::schema::Schema;

/// A realistic hook of `event` as `product` emits it: the catalogue's example with a fresh
/// `hookId`, fresh ids wherever the example shows a generated-looking id (such as `requestId`), and
/// the current time (Korea Standard Time, the platform's zone) in every field with a date format.
/// It always passes [`crate::validate_hook`] for that product and event.
///
/// If `product` does not emit `event` (see [`Event::is_valid_for`]), the sample is that of the
/// first product that does emit it, so the call never fails; an event no product emits gets a hook
/// with only a `hookId`.
pub fn sample_hook(product: Product, event: Event) -> Value {
    let c = catalogue();
    let entry = c.event(product, event).or_else(|| {
        c.products()
            .iter()
            .find_map(|p| c.event(p.product(), event))
    });
    let hook_id = generate_id();
    let Some(entry) = entry else {
        return json!({ "hookId": hook_id });
    };
    let now = now_kst();
    let mut hook = entry.example().clone();
    // One fresh id per distinct example id, so that an id repeated in the example (a requestId
    // inside a link) stays the same within the sample.
    let mut fresh: Vec<(String, String)> = Vec::new();
    refresh(&mut hook, &entry.schema, &now, &mut fresh);
    if let Value::Object(map) = &mut hook {
        map.insert("hookId".to_owned(), Value::String(hook_id));
    }
    hook
}

/// A sample made from an example hook that this process's catalogue does not have (an operator's
/// event, as a server's `GET /v1/catalogue` shows it): the example with a fresh `hookId` and fresh
/// ids wherever it shows a generated-looking id. Dates are kept as the example has them.
pub fn sample_from_example(example: &Value) -> Value {
    let mut hook = example.clone();
    let mut fresh = Vec::new();
    refresh(&mut hook, &Schema::default(), &now_kst(), &mut fresh);
    if let Value::Object(map) = &mut hook {
        map.insert("hookId".to_owned(), Value::String(generate_id()));
    }
    hook
}

/// Replaces generated-looking ids (also inside longer strings such as links) and dated fields of
/// `v`, described by `schema`, in place.
fn refresh(
    v: &mut Value,
    schema: &Schema,
    now: &DateTime<FixedOffset>,
    fresh: &mut Vec<(String, String)>,
) {
    match v {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                let sub = schema.properties.iter().find(|p| p.name == *key);
                match (sub.and_then(|p| p.schema.date), value) {
                    (Some(format), Value::String(s)) => *s = format_date(format, now),
                    (_, value) => {
                        if let Some(p) = sub {
                            refresh(value, &p.schema, now, fresh);
                        } else {
                            refresh(value, &Schema::default(), now, fresh);
                        }
                    }
                }
            }
        }
        Value::Array(items) => {
            let empty = Schema::default();
            let item_schema = schema.items.as_deref().unwrap_or(&empty);
            for item in items {
                refresh(item, item_schema, now, fresh);
            }
        }
        Value::String(s) => {
            let ids: Vec<String> = s
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|word| is_generated_id(word))
                .map(str::to_owned)
                .collect();
            for id in ids {
                let new = match fresh.iter().find(|(old, _)| *old == id) {
                    Some((_, new)) => new.clone(),
                    None => {
                        let new = generate_id();
                        fresh.push((id.clone(), new.clone()));
                        new
                    }
                };
                *s = s.replace(&id, &new);
            }
        }
        _ => {}
    }
}

fn format_date(format: DateFormat, now: &DateTime<FixedOffset>) -> String {
    let pattern = match format {
        DateFormat::SpaceSeconds | DateFormat::DateOrDateTime => "%Y-%m-%d %H:%M:%S",
        DateFormat::IsoSeconds => "%Y-%m-%dT%H:%M:%S",
        DateFormat::IsoMillisOffset => "%Y-%m-%dT%H:%M:%S%.3f%:z",
    };
    now.format(pattern).to_string()
}

fn now_kst() -> DateTime<FixedOffset> {
    // UTC+09:00 has no daylight saving, so a fixed offset is exact; `east_opt` only fails beyond a day.
    match FixedOffset::east_opt(9 * 3600) {
        Some(kst) => Utc::now().with_timezone(&kst),
        None => Utc::now().fixed_offset(),
    }
}
