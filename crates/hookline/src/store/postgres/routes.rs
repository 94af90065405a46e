//! Filters and ordering-key values evaluated on the request's task instead of in the ingest
//! statement.
//!
//! The ingest statement can do both itself (a filter's `filter_path`, a `jsonpath`; a key's
//! value read from the hook cast to `jsonb`), but that runs on the writer's one connection, one
//! hook after another: it bounded batched ingest (a 10-key filter on every config cost a fifth of
//! it, an `orderingKey` a third). So a node learns, from the ingest answers, the configs with a
//! filter or an `orderingKey` that each (app key, product, event) fans out to ([`KeyRoutes`]),
//! and evaluates them on the request's own task before the request reaches the writer
//! ([`Answers`]). The statement uses an answer only where the config's stored filter and
//! `orderingKey` are still the ones the node evaluated (a config changed on another node, or
//! since, falls back to the statement's own evaluation), and lists the keys with such configs it
//! did not know, to be learnt for the next request. The evaluators agree by design
//! (`crate::filter`, `model::ordering_value`); a key's value other than a string is left to the
//! statement (`jsonb` prints objects and numbers its own way, and a key must keep one text).
//! The store tests of filters and ordering take both paths.

use std::sync::Arc;

use hookline_wire::ValidatedHook;

use crate::filter::Filter;
use crate::store::{StoreError, StoreResult};

/// The configs with a filter or an `orderingKey` of one (app key, product, event), as an ingest
/// answer last listed them.
pub(super) struct KeyRoutes {
    pub(super) configs: Vec<KnownConfig>,
}

impl KeyRoutes {
    /// The same configs, with the same filters and `orderingKey`s, in the same order.
    pub(super) fn same_as(&self, other: &KeyRoutes) -> bool {
        fn fields(c: &KnownConfig) -> (&str, Option<&str>, Option<&str>) {
            (
                &c.config_id,
                c.filter_stored.as_deref(),
                c.ordering_key.as_deref(),
            )
        }
        self.configs
            .iter()
            .map(fields)
            .eq(other.configs.iter().map(fields))
    }
}

pub(super) struct KnownConfig {
    pub(super) config_id: String,
    /// The filter's stored text: an answer counts only while the config's is the same.
    pub(super) filter_stored: Option<String>,
    filter: Option<Filter>,
    /// The `orderingKey` field, likewise.
    pub(super) ordering_key: Option<String>,
}

/// What a hook is for one config: filtered out, or passed with the value of its key.
const FILTERED_OUT: char = '0';
/// Passed; its key's value (if the config has an `orderingKey`) is in [`Answers::values`].
const PASSES: char = '1';
/// Passed; its key's value is not a string: the statement reads it from the hook.
const PASSES_VALUE_IN_SQL: char = '2';

/// A request's answers, computed against `routes`: per hook, one character per config of
/// `routes.configs`, in that order (see [`FILTERED_OUT`], [`PASSES`], [`PASSES_VALUE_IN_SQL`]),
/// and one value per hook and config, hook after hook (`None` for a config without an
/// `orderingKey`, a hook filtered out, or a key absent or null).
pub(super) struct Answers {
    pub(super) routes: Arc<KeyRoutes>,
    pub(super) per_hook: Vec<String>,
    pub(super) values: Vec<Option<String>>,
}

impl Answers {
    pub(super) fn compute(routes: Arc<KeyRoutes>, hooks: &[ValidatedHook]) -> Answers {
        let mut per_hook = Vec::with_capacity(hooks.len());
        let mut values = Vec::with_capacity(hooks.len() * routes.configs.len());
        for hook in hooks {
            let mut marks = String::with_capacity(routes.configs.len());
            for c in &routes.configs {
                let passes = c.filter.as_ref().is_none_or(|f| f.matches_json(&hook.json));
                let (mark, value) = match (passes, &c.ordering_key) {
                    (false, _) => (FILTERED_OUT, None),
                    (true, None) => (PASSES, None),
                    (true, Some(field)) => string_value(&hook.json, field)
                        .map_or((PASSES_VALUE_IN_SQL, None), |value| (PASSES, value)),
                };
                marks.push(mark);
                values.push(value);
            }
            per_hook.push(marks);
        }
        Answers {
            routes,
            per_hook,
            values,
        }
    }
}

/// `model::ordering_value` where the statement would give the same text: a string (or an absent
/// or null field, no value). `None` for any other value, and for a string holding U+0000 (a
/// parameter cannot carry it; the statement reads it as U+FFFD).
fn string_value(hook_json: &str, field: &str) -> Option<Option<String>> {
    let Some(raw) = crate::filter::top_level_field(hook_json, field) else {
        return Some(None);
    };
    match raw.as_bytes().first() {
        Some(b'"') | Some(b'n') => match crate::model::ordering_value_of(raw) {
            Some(value) if value.contains('\0') => None,
            value => Some(value),
        },
        _ => None,
    }
}

/// The configs an ingest answer listed (its last column: a JSON array of
/// `[key ordinal, config id, stored filter or null, orderingKey or null]`, for each key with such
/// a config it did not know), by key ordinal (1-based, as the statement's `keys` number them). A
/// filter that cannot be read leaves its config out: it keeps the statement's evaluation.
pub(super) fn learnt(text: &str) -> StoreResult<Vec<(usize, KeyRoutes)>> {
    type Listed = (usize, String, Option<String>, Option<String>);
    let rows: Vec<Listed> = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("ingest's routes: {e}")))?;
    let mut keys: Vec<(usize, KeyRoutes)> = Vec::new();
    for (key, config_id, filter_stored, ordering_key) in rows {
        let filter = match filter_stored.as_deref().map(Filter::from_stored) {
            None => None,
            Some(Ok(Some(filter))) => Some(filter),
            Some(_) => continue,
        };
        let known = KnownConfig {
            config_id,
            filter_stored,
            filter,
            ordering_key,
        };
        match keys.iter_mut().find(|(k, _)| *k == key) {
            Some((_, routes)) => routes.configs.push(known),
            None => keys.push((
                key,
                KeyRoutes {
                    configs: vec![known],
                },
            )),
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learnt_configs_are_grouped_by_key_and_unreadable_filters_left_out() {
        let text = r#"[[1,"a","{\"x\":1}",null],[2,"b",null,"to"],[1,"c","not json",null],
                       [1,"d","{\"z\":\"q\"}","to"]]"#;
        let keys = learnt(text).unwrap();
        let ids: Vec<(usize, Vec<&str>)> = keys
            .iter()
            .map(|(k, r)| (*k, r.configs.iter().map(|c| c.config_id.as_str()).collect()))
            .collect();
        assert_eq!(ids, vec![(1, vec!["a", "d"]), (2, vec!["b"])]);
        assert!(learnt("{").is_err());
    }

    #[test]
    fn answers_give_each_hook_a_mark_and_a_value_per_known_config_in_order() {
        let text = r#"[[1,"a","{\"x\":1}",null],[1,"b","{\"y\":{\"$gt\":2}}","to"]]"#;
        let Some((_, routes)) = learnt(text).unwrap().pop() else {
            panic!("no key learnt");
        };
        let hook = |json: &str| ValidatedHook {
            hook_id: "h".into(),
            json: json.into(),
            id_generated: false,
        };
        let answers = Answers::compute(
            Arc::new(routes),
            &[
                hook(r#"{"x":1,"y":3,"to":"010"}"#),
                hook(r#"{"x":2,"y":3,"to":7}"#),
                hook(r#"{"x":1,"to":"011"}"#),
                hook(r#"{"x":1,"y":4,"to":null}"#),
            ],
        );
        assert_eq!(answers.per_hook, vec!["11", "02", "10", "11"]);
        let values: Vec<Option<&str>> = answers.values.iter().map(|v| v.as_deref()).collect();
        assert_eq!(
            values,
            vec![None, Some("010"), None, None, None, None, None, None]
        );
    }
}
