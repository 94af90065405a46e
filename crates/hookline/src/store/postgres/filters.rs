//! Filters evaluated on the request's task instead of in the ingest statement.
//!
//! The ingest statement can evaluate a config's filter itself (its `filter_path`, a `jsonpath`
//! over the hook cast to `jsonb`), but that runs on the writer's one connection, one hook after
//! another: a 10-key filter on every config cost about a fifth of batched ingest. So a node
//! learns, from the ingest answers, the filters of the configs each (app key, product, event)
//! fans out to ([`KeyFilters`]), and evaluates them with [`Filter::matches_json`] on the
//! request's own task before the request reaches the writer ([`Answers`]). The statement uses an
//! answer only where the config's stored filter is still the very text the node evaluated (a
//! config changed on another node, or since, falls back to the `jsonpath`), and answers which
//! keys' filters it did not know, to be learnt for the next request. The two evaluators agree by
//! design (`crate::filter`), and the store test of filters takes both paths.

use std::sync::Arc;

use hookline_wire::ValidatedHook;

use crate::filter::Filter;
use crate::store::{StoreError, StoreResult};

/// The filtered configs of one (app key, product, event), as an ingest answer last listed them.
pub(super) struct KeyFilters {
    pub(super) configs: Vec<KnownFilter>,
}

pub(super) struct KnownFilter {
    pub(super) config_id: String,
    /// The filter's stored text: an answer counts only while the config's is the same.
    pub(super) stored: String,
    filter: Filter,
}

/// A request's filter answers, computed against `filters`: per hook, one character per config
/// of `filters.configs`, in that order (`1` passes, `0` does not).
pub(super) struct Answers {
    pub(super) filters: Arc<KeyFilters>,
    pub(super) per_hook: Vec<String>,
}

impl Answers {
    pub(super) fn compute(filters: Arc<KeyFilters>, hooks: &[ValidatedHook]) -> Answers {
        let per_hook = hooks
            .iter()
            .map(|hook| {
                filters
                    .configs
                    .iter()
                    .map(|c| {
                        if c.filter.matches_json(&hook.json) {
                            '1'
                        } else {
                            '0'
                        }
                    })
                    .collect()
            })
            .collect();
        Answers { filters, per_hook }
    }
}

/// The filters an ingest answer listed (its learnt column: a JSON array of
/// `[key ordinal, config id, stored filter]`, for each key with a filter it did not know), by
/// key ordinal (1-based, as the statement's `keys` number them). A filter that cannot be read
/// is left out: its config keeps the `jsonpath`.
pub(super) fn learnt(text: &str) -> StoreResult<Vec<(usize, KeyFilters)>> {
    let rows: Vec<(usize, String, String)> = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("ingest's filters: {e}")))?;
    let mut keys: Vec<(usize, KeyFilters)> = Vec::new();
    for (key, config_id, stored) in rows {
        let Ok(Some(filter)) = Filter::from_stored(&stored) else {
            continue;
        };
        let known = KnownFilter {
            config_id,
            stored,
            filter,
        };
        match keys.iter_mut().find(|(k, _)| *k == key) {
            Some((_, filters)) => filters.configs.push(known),
            None => keys.push((
                key,
                KeyFilters {
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
    fn learnt_filters_are_grouped_by_key_and_unreadable_ones_left_out() {
        let text = r#"[[1,"a","{\"x\":1}"],[2,"b","{\"y\":{\"$gt\":2}}"],[1,"c","not json"],[1,"d","{\"z\":\"q\"}"]]"#;
        let keys = learnt(text).unwrap();
        let ids: Vec<(usize, Vec<&str>)> = keys
            .iter()
            .map(|(k, f)| (*k, f.configs.iter().map(|c| c.config_id.as_str()).collect()))
            .collect();
        assert_eq!(ids, vec![(1, vec!["a", "d"]), (2, vec!["b"])]);
        assert!(learnt("{").is_err());
    }

    #[test]
    fn answers_give_each_hook_one_character_per_known_config_in_order() {
        let text = r#"[[1,"a","{\"x\":1}"],[1,"b","{\"y\":{\"$gt\":2}}"]]"#;
        let Some((_, filters)) = learnt(text).unwrap().pop() else {
            panic!("no key learnt");
        };
        let hook = |json: &str| ValidatedHook {
            hook_id: "h".into(),
            json: json.into(),
            id_generated: false,
        };
        let answers = Answers::compute(
            Arc::new(filters),
            &[
                hook(r#"{"x":1,"y":3}"#),
                hook(r#"{"x":2,"y":3}"#),
                hook(r#"{"x":1}"#),
            ],
        );
        assert_eq!(answers.per_hook, vec!["11", "01", "10"]);
    }
}
