//! Ingest validation: one request body in, every hook checked against its event's field table,
//! normalised and serialised once.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::canonical::validate_canonical;
use crate::catalogue::{Event, Product, catalogue, product_list};
use crate::ids::{generate_id, is_valid_hook_id};
use crate::json::{describe, quote_for_message};
use crate::schema::{missing, validate_object, wrong_type};

/// Limits applied by [`validate_ingest`] (the server exposes each as a flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    /// Most hooks in one request. Default 1000.
    pub max_hooks: usize,
    /// Most bytes of one hook's normalised, compact JSON ([`ValidatedHook::json`]). Default 65536.
    pub max_hook_bytes: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_hooks: 1000,
            max_hook_bytes: 64 * 1024,
        }
    }
}

/// A request that passed validation: what to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedBatch {
    /// The product, whatever letter case the request used.
    pub product: Product,
    /// The event, valid for `product`.
    pub event: Event,
    /// The distinct hooks in input order: a hookId repeated in the request keeps only its first
    /// occurrence, so this can be shorter than the request's `hooks`.
    pub hooks: Vec<ValidatedHook>,
    /// The hookId of every input position, in input order (same length as the request's `hooks`;
    /// repeated ids repeat here). This is what the ingest response answers.
    pub input_ids: Vec<String>,
}

/// One valid hook, ready to be stored and spliced into envelopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedHook {
    /// The hook's id: the producer's, or a generated one.
    pub hook_id: String,
    /// The normalised hook as compact JSON, `"hookId"` included; aliases renamed, unknown fields
    /// kept in their original order. No object in it repeats a member name (the fast path sends
    /// such bodies to the full path, which keeps the last): the server reads members of stored
    /// hooks by the first of a name.
    pub json: String,
    /// Whether `hook_id` was generated because the producer gave none (absent or null).
    pub id_generated: bool,
}

/// What kind of rule a request broke (stable, so the server can map kinds to result codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValidationErrorKind {
    /// The body is not JSON.
    InvalidJson,
    /// The body, a hook, or an element of an array of objects is not a JSON object.
    NotAnObject,
    /// A required field is absent or null.
    MissingField,
    /// A field has the wrong JSON type.
    WrongType,
    /// An enumerated field has a value outside its list.
    NotInEnum,
    /// A date string does not match its format.
    BadFormat,
    /// `productName` names no known product.
    UnknownProduct,
    /// `event` names no known event.
    UnknownEvent,
    /// `event` is a known event, but not one the product emits.
    EventNotForProduct,
    /// `hooks` is an empty array.
    EmptyHooks,
    /// `hooks` has more entries than [`IngestLimits::max_hooks`].
    TooManyHooks,
    /// A hook's JSON is larger than [`IngestLimits::max_hook_bytes`].
    HookTooLarge,
    /// A given `hookId` is not a string of 1 to 64 letters, digits, `-`, `_`, `.`.
    InvalidHookId,
    /// A string field is longer than its limit ([`crate::MAX_FIELD_CHARS`] for ids, codes, names
    /// and dates, [`crate::MAX_LINK_CHARS`] for links and file paths).
    StringTooLong,
    /// A string field is shorter than its schema's `minLength`.
    StringTooShort,
    /// A number is outside its schema's `minimum` or `maximum`.
    OutOfRange,
    /// A field that its object's schema does not allow (`additionalProperties: false`).
    UnknownField,
    /// The product's events are produced by hookline itself, never ingested.
    NotIngestible,
}

/// Why a request was rejected: the kind, the path of the offending field
/// (`hooks[3].messageStatus`; `body` for the body as a whole) and a message a person can act on.
///
/// Displays as `path: message` ([`validate_ingest`] always sets a path; the message alone is
/// displayed only if a path is empty).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{}{}", .path, if .path.is_empty() { "" } else { ": " }, .message)]
pub struct ValidationError {
    /// The broken rule.
    pub kind: ValidationErrorKind,
    /// Where: `productName`, `event`, `hooks`, `hooks[0].comments[1].attachment[0].filePath`, or
    /// `body` for the whole body (not JSON, not an object).
    pub path: String,
    /// What is wrong, naming the offending value and what is expected.
    pub message: String,
}

impl ValidationError {
    pub(crate) fn new(
        kind: ValidationErrorKind,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ValidationError {
            kind,
            path: path.into(),
            message: message.into(),
        }
    }
}

use ValidationErrorKind as K;

/// The path of errors about the request body as a whole.
const BODY: &str = "body";

/// Validates an ingest request body
/// (`{"productName": .., "event": .., "hooks": [{..}, ..]}`), all or nothing.
///
/// Each hook is checked against its event's field table (required fields, types, enumerated
/// values, date formats, nested objects) and normalised (aliases renamed, a hookId generated when
/// absent) into compact JSON. Unknown fields, top-level or in hooks, are ignored or kept verbatim
/// respectively. The first error in input order is returned.
///
/// A valid body that serde_json would store as written (the usual case) is checked in one pass
/// over its bytes and its hooks' text copied (`canonical.rs`); any other body, and every invalid
/// one, is parsed into `serde_json::Value`s, checked and written out again, which also words the
/// error. Both store the same bytes.
pub fn validate_ingest(
    body: &[u8],
    limits: &IngestLimits,
) -> Result<ValidatedBatch, ValidationError> {
    if let Some(batch) = validate_canonical(body, limits) {
        return Ok(batch);
    }
    validate_parsed(body, limits)
}

/// [`validate_ingest`] by way of `serde_json::Value`: any body, and the wording of every error.
pub(crate) fn validate_parsed(
    body: &[u8],
    limits: &IngestLimits,
) -> Result<ValidatedBatch, ValidationError> {
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| ValidationError::new(K::InvalidJson, BODY, format!("not valid JSON: {e}")))?;
    let Value::Object(mut top) = body else {
        return Err(ValidationError::new(
            K::NotAnObject,
            BODY,
            format!(
                "must be a JSON object with productName, event and hooks, got {}",
                describe(&body)
            ),
        ));
    };

    let product = match top.get("productName") {
        None | Some(Value::Null) => {
            return Err(missing("productName", top.get("productName")));
        }
        Some(Value::String(name)) => {
            let product = Product::parse(name).ok_or_else(|| {
                ValidationError::new(
                    K::UnknownProduct,
                    "productName",
                    format!(
                        "{} is not a product (expected {})",
                        quote_for_message(name),
                        product_list()
                    ),
                )
            })?;
            if !product.is_ingestible() {
                return Err(ValidationError::new(
                    K::NotIngestible,
                    "productName",
                    format!("{product} events are produced by hookline itself, never ingested"),
                ));
            }
            product
        }
        Some(other) => return Err(wrong_type("productName", "a string", other)),
    };

    let event = match top.get("event") {
        None | Some(Value::Null) => return Err(missing("event", top.get("event"))),
        Some(Value::String(name)) => match Event::parse(name) {
            Some(e) if e.is_valid_for(product) => e,
            found => {
                let kind = if found.is_some() {
                    K::EventNotForProduct
                } else {
                    K::UnknownEvent
                };
                return Err(not_an_event_of(kind, product, name));
            }
        },
        Some(other) => return Err(wrong_type("event", "a string", other)),
    };

    let hooks = match top.remove("hooks") {
        None | Some(Value::Null) => {
            return Err(ValidationError::new(
                K::MissingField,
                "hooks",
                "required field is missing: give an array of at least one hook",
            ));
        }
        Some(Value::Array(hooks)) => hooks,
        Some(other) => return Err(wrong_type("hooks", "an array of hooks", &other)),
    };
    if hooks.is_empty() {
        return Err(ValidationError::new(
            K::EmptyHooks,
            "hooks",
            "the array is empty: give at least one hook",
        ));
    }
    if hooks.len() > limits.max_hooks {
        return Err(ValidationError::new(
            K::TooManyHooks,
            "hooks",
            format!(
                "{} hooks is more than the limit of {} per request: split them into several requests",
                hooks.len(),
                limits.max_hooks
            ),
        ));
    }

    let mut input_ids = Vec::with_capacity(hooks.len());
    let mut distinct = Vec::with_capacity(hooks.len());
    let mut seen: HashSet<String> = HashSet::with_capacity(hooks.len());
    for (index, hook) in hooks.into_iter().enumerate() {
        let validated = validate_hook(product, event, hook, index)?;
        if validated.json.len() > limits.max_hook_bytes {
            return Err(ValidationError::new(
                K::HookTooLarge,
                format!("hooks[{index}]"),
                format!(
                    "the hook is {} bytes as JSON, more than the limit of {} bytes",
                    validated.json.len(),
                    limits.max_hook_bytes
                ),
            ));
        }
        input_ids.push(validated.hook_id.clone());
        // The same hookId twice in one request is one hook: the first occurrence is the one kept,
        // and later ones are still validated above so a bad duplicate cannot slip through.
        if seen.insert(validated.hook_id.clone()) {
            distinct.push(validated);
        }
    }

    Ok(ValidatedBatch {
        product,
        event,
        hooks: distinct,
        input_ids,
    })
}

/// Validates and normalises one hook of `event` from `product`; `index` is its position in the
/// request and only shapes error paths (`hooks[index].field`).
///
/// Does not apply [`IngestLimits`] (the caller knows them). An `event` that `product` does not emit
/// is an [`ValidationErrorKind::EventNotForProduct`] error at path `event`.
pub fn validate_hook(
    product: Product,
    event: Event,
    hook: Value,
    index: usize,
) -> Result<ValidatedHook, ValidationError> {
    let Some(entry) = catalogue().event(product, event) else {
        return Err(not_an_event_of(
            K::EventNotForProduct,
            product,
            event.as_str(),
        ));
    };
    let mut path = format!("hooks[{index}]");
    let Value::Object(mut map) = hook else {
        let got = describe(&hook);
        return Err(ValidationError::new(
            K::NotAnObject,
            path,
            format!("expected a hook object, got {got}"),
        ));
    };

    let given_id = match map.get("hookId") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if is_valid_hook_id(id) => Some(id.clone()),
        Some(other) => {
            let got = match other {
                Value::String(s) => quote_for_message(s),
                v => describe(v),
            };
            path.push_str(".hookId");
            return Err(ValidationError::new(
                K::InvalidHookId,
                path,
                format!(
                    "{got} is not a valid hookId: use a string of 1 to 64 letters, digits, '-', '_' or '.', or leave it out to have one generated"
                ),
            ));
        }
    };

    validate_object(&map, &entry.schema, &mut path)?;
    apply_aliases(&mut map, entry.aliases());

    let (hook_id, id_generated) = match given_id {
        Some(id) => (id, false),
        None => {
            let id = generate_id();
            // `insert` keeps the position of an existing `"hookId": null`, otherwise appends.
            map.insert("hookId".to_owned(), Value::String(id.clone()));
            (id, true)
        }
    };

    let json = serde_json::to_string(&map).map_err(|e| {
        // Serialising a map with string keys cannot fail; reported rather than unwrapped.
        ValidationError::new(
            K::InvalidJson,
            path.clone(),
            format!("cannot serialise the hook: {e}"),
        )
    })?;

    Ok(ValidatedHook {
        hook_id,
        json,
        id_generated,
    })
}

/// Renames aliased fields to their catalogue names in place (keeping their position); when both
/// spellings are present the catalogue name wins and the alias is dropped.
fn apply_aliases(map: &mut Map<String, Value>, aliases: &[(String, String)]) {
    for (alias, name) in aliases {
        if !map.contains_key(alias) {
            continue;
        }
        if map.contains_key(name) {
            map.shift_remove(alias);
        } else if let Some(pos) = map.keys().position(|k| k == alias)
            && let Some(value) = map.shift_remove(alias)
        {
            map.shift_insert(pos, name.clone(), value);
        }
    }
}

fn not_an_event_of(kind: ValidationErrorKind, product: Product, name: &str) -> ValidationError {
    let expected: Vec<&str> = product.events().iter().map(|e| e.as_str()).collect();
    ValidationError::new(
        kind,
        "event",
        format!(
            "{} is not an event of {} (expected one of {})",
            quote_for_message(name),
            product.as_str(),
            expected.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn display_omits_empty_path() {
        let e = ValidationError::new(K::InvalidJson, "", "bad");
        assert_eq!(e.to_string(), "bad");
        let e = ValidationError::new(K::InvalidJson, BODY, "bad");
        assert_eq!(e.to_string(), "body: bad");
        let e = ValidationError::new(
            K::MissingField,
            "hooks[1].requestId",
            "required field is missing",
        );
        assert_eq!(
            e.to_string(),
            "hooks[1].requestId: required field is missing"
        );
    }

    #[test]
    fn aliases_rename_in_place() {
        let Value::Object(mut map) = json!({"a": 1, "recipientGropuingKey": "k", "z": 2}) else {
            panic!("object");
        };
        let entry = catalogue()
            .event(Product::Sms, Event::MessageResultUpdate)
            .unwrap();
        apply_aliases(&mut map, entry.aliases());
        let keys: Vec<&String> = map.keys().collect();
        assert_eq!(keys, ["a", "recipientGroupingKey", "z"]);
    }

    #[test]
    fn path_is_restored_after_nested_success() {
        let entry = catalogue()
            .event(Product::KakaoTalkBizmessage, Event::TemplateStatusUpdate)
            .unwrap();
        let Value::Object(map) = json!({"senderKey": "k", "templateCode": "t", "status": "TSC01",
            "comments": [{"attachment": [{"filePath": "/a"}]}], "updateDate": "bad"})
        else {
            panic!("object");
        };
        let mut path = "hooks[0]".to_owned();
        let err = validate_object(&map, &entry.schema, &mut path).unwrap_err();
        assert_eq!(err.path, "hooks[0].updateDate");
    }
}
