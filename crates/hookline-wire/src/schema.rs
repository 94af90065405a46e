//! The JSON Schema subset of the catalogue: a hook schema compiled once into a [`Schema`] tree that
//! ingest walks (both the full path here and the fast path in `canonical.rs`), and the published
//! form of a schema (what an outside JSON Schema 2020-12 validator sees).
//!
//! Semantics follow JSON Schema, with one rule of hookline's on top: an optional property may be
//! `null` (null means "absent", as producers send it). The published schema says so explicitly
//! ([`publish`] adds `null` to the type and enum of every optional property), so both agree.

use serde_json::{Map, Number, Value};

use crate::dates::{self, DateFormat};
use crate::json::{describe, quote_for_message};
use crate::validate::{ValidationError, ValidationErrorKind as K};

/// The keywords hookline implements; any other keyword in a hook schema is refused at load.
pub(crate) const KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "enum",
    "const",
    "items",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "pattern",
    "additionalProperties",
    "description",
    "format",
    "title",
    "examples",
    "$schema",
];

/// A set of JSON types (bit per type; empty means any type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Types(u8);

impl Types {
    pub(crate) const NULL: Types = Types(1);
    pub(crate) const BOOLEAN: Types = Types(2);
    pub(crate) const INTEGER: Types = Types(4);
    pub(crate) const NUMBER: Types = Types(8);
    pub(crate) const STRING: Types = Types(16);
    pub(crate) const OBJECT: Types = Types(32);
    pub(crate) const ARRAY: Types = Types(64);

    const NAMES: [(&'static str, Types); 7] = [
        ("null", Types::NULL),
        ("boolean", Types::BOOLEAN),
        ("integer", Types::INTEGER),
        ("number", Types::NUMBER),
        ("string", Types::STRING),
        ("object", Types::OBJECT),
        ("array", Types::ARRAY),
    ];

    pub(crate) fn any(self) -> bool {
        self.0 == 0
    }
    pub(crate) fn has(self, t: Types) -> bool {
        self.0 & t.0 != 0
    }
    fn with(self, t: Types) -> Types {
        Types(self.0 | t.0)
    }
    /// Whether `self` allows the JSON type of `v` (`number` includes integers).
    fn allows(self, v: &Value) -> bool {
        if self.any() {
            return true;
        }
        match v {
            Value::Null => self.has(Types::NULL),
            Value::Bool(_) => self.has(Types::BOOLEAN),
            Value::Number(n) => {
                self.has(Types::NUMBER) || (self.has(Types::INTEGER) && is_integer_number(n))
            }
            Value::String(_) => self.has(Types::STRING),
            Value::Array(_) => self.has(Types::ARRAY),
            Value::Object(_) => self.has(Types::OBJECT),
        }
    }
    /// What an error message says was expected: `a string`, `an integer`,
    /// `a string or an integer`, `true, false or null`.
    fn expected(self) -> String {
        if self == Types::BOOLEAN.with(Types::NULL) {
            return "true, false or null".to_owned();
        }
        let names: Vec<&str> = [
            (Types::STRING, "a string"),
            (Types::INTEGER, "an integer"),
            (Types::NUMBER, "a number"),
            (Types::BOOLEAN, "true or false"),
            (Types::OBJECT, "an object"),
            (Types::ARRAY, "an array"),
        ]
        .into_iter()
        .filter(|(t, _)| self.has(*t))
        .map(|(_, name)| name)
        .collect();
        match names.split_last() {
            None => "null".to_owned(),
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        }
    }
}

/// A JSON integer that fits the typed models' `i64`: `1` and `-1`, not `1.0` (serde_json keeps the
/// two apart without `arbitrary_precision`, which this crate does not enable), nor
/// `9223372036854775808` (which a receiver's typed model could not read).
fn is_integer_number(n: &Number) -> bool {
    n.is_i64()
}

/// One compiled schema (of a hook, a property, or an array's items).
#[derive(Debug, Clone, Default)]
pub(crate) struct Schema {
    pub types: Types,
    /// `enum`, when every value is a string (the usual case, checked without allocating).
    pub str_values: Option<Vec<String>>,
    /// `enum` or `const` with other values.
    pub values: Option<Vec<Value>>,
    pub min_chars: Option<usize>,
    pub max_chars: Option<usize>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub pattern: Option<regex::Regex>,
    pub date: Option<DateFormat>,
    pub properties: Vec<Property>,
    pub additional_properties: bool,
    pub items: Option<Box<Schema>>,
    /// Whether the fast path in `canonical.rs` can check values of this schema (and of all its
    /// subschemas) itself; other schemas send the body to the full path.
    pub fast: bool,
}

/// A property of an object schema.
#[derive(Debug, Clone)]
pub(crate) struct Property {
    pub name: String,
    /// Other spellings accepted on ingest and renamed to `name` (top-level properties only).
    pub aliases: Vec<String>,
    pub required: bool,
    pub schema: Schema,
}

/// Why a hook schema does not compile: where (a JSON path from the schema's root, `$`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SchemaError {
    pub path: String,
    pub message: String,
}

fn schema_error(path: &str, message: impl Into<String>) -> SchemaError {
    SchemaError {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Compiles `v` (a JSON Schema in the subset, [`KEYWORDS`]) found at `path`.
pub(crate) fn compile(v: &Value, path: &str) -> Result<Schema, SchemaError> {
    let Value::Object(map) = v else {
        return Err(schema_error(path, "a schema must be a JSON object"));
    };
    if let Some(key) = map.keys().find(|k| !KEYWORDS.contains(&k.as_str())) {
        return Err(schema_error(
            &format!("{path}.{key}"),
            format!(
                "the keyword {key:?} is not supported (hookline implements {})",
                KEYWORDS.join(", ")
            ),
        ));
    }
    let mut schema = Schema {
        additional_properties: true,
        fast: true,
        ..Schema::default()
    };
    match map.get("type") {
        None => {}
        Some(Value::String(name)) => schema.types = type_named(name, &format!("{path}.type"))?,
        Some(Value::Array(names)) => {
            for (i, name) in names.iter().enumerate() {
                let at = format!("{path}.type[{i}]");
                let Value::String(name) = name else {
                    return Err(schema_error(&at, "a type name must be a string"));
                };
                schema.types = schema.types.with(type_named(name, &at)?);
            }
            if names.is_empty() {
                return Err(schema_error(
                    &format!("{path}.type"),
                    "the list of types is empty",
                ));
            }
        }
        Some(_) => {
            return Err(schema_error(
                &format!("{path}.type"),
                "expected a type name or a list of type names",
            ));
        }
    }
    if let Some(values) = map.get("enum") {
        let Value::Array(values) = values else {
            return Err(schema_error(&format!("{path}.enum"), "expected an array"));
        };
        schema.set_values(values.clone());
    }
    if let Some(value) = map.get("const") {
        schema.set_values(vec![value.clone()]);
    }
    schema.min_chars = count(map, "minLength", path)?;
    schema.max_chars = count(map, "maxLength", path)?;
    schema.minimum = bound(map, "minimum", path)?;
    schema.maximum = bound(map, "maximum", path)?;
    if let Some(pattern) = map.get("pattern") {
        let at = format!("{path}.pattern");
        let Value::String(pattern) = pattern else {
            return Err(schema_error(&at, "expected a string"));
        };
        let compiled = regex::Regex::new(pattern)
            .map_err(|e| schema_error(&at, format!("not a regular expression: {e}")))?;
        schema.pattern = Some(compiled);
        schema.fast = false;
    }
    if let Some(format) = map.get("format") {
        let at = format!("{path}.format");
        let Value::String(format) = format else {
            return Err(schema_error(&at, "expected a string"));
        };
        let Some(date) = DateFormat::named(format) else {
            return Err(schema_error(
                &at,
                format!(
                    "the format {format:?} is not one hookline checks (one of {})",
                    DateFormat::ALL.map(DateFormat::name).join(", ")
                ),
            ));
        };
        schema.date = Some(date);
    }
    let required: Vec<&str> = match map.get("required") {
        None => Vec::new(),
        Some(Value::Array(names)) => {
            let mut out = Vec::with_capacity(names.len());
            for (i, name) in names.iter().enumerate() {
                let Value::String(name) = name else {
                    return Err(schema_error(
                        &format!("{path}.required[{i}]"),
                        "expected a property name",
                    ));
                };
                out.push(name.as_str());
            }
            out
        }
        Some(_) => {
            return Err(schema_error(
                &format!("{path}.required"),
                "expected an array of property names",
            ));
        }
    };
    if let Some(properties) = map.get("properties") {
        let Value::Object(properties) = properties else {
            return Err(schema_error(
                &format!("{path}.properties"),
                "expected an object of schemas",
            ));
        };
        for (name, sub) in properties {
            let sub = compile(sub, &format!("{path}.properties.{name}"))?;
            schema.fast &= sub.fast;
            schema.properties.push(Property {
                name: name.clone(),
                aliases: Vec::new(),
                required: required.contains(&name.as_str()),
                schema: sub,
            });
        }
    }
    // A required name without a schema of its own: present and not null is all it asks.
    for name in &required {
        if !schema.properties.iter().any(|p| p.name == *name) {
            schema.properties.push(Property {
                name: (*name).to_owned(),
                aliases: Vec::new(),
                required: true,
                schema: Schema {
                    additional_properties: true,
                    fast: true,
                    ..Schema::default()
                },
            });
        }
    }
    match map.get("additionalProperties") {
        None | Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => {
            schema.additional_properties = false;
            schema.fast = false;
        }
        Some(_) => {
            return Err(schema_error(
                &format!("{path}.additionalProperties"),
                "hookline implements true or false here",
            ));
        }
    }
    if let Some(items) = map.get("items") {
        let sub = compile(items, &format!("{path}.items"))?;
        schema.fast &= sub.fast;
        schema.items = Some(Box::new(sub));
    }
    // The fast path knows strings, integers, booleans, objects and arrays of objects.
    if schema.values.is_some()
        || schema.min_chars.is_some()
        || schema.minimum.is_some()
        || schema.maximum.is_some()
        || schema.types.any()
        || schema.types.has(Types::NUMBER)
        || (schema.types.has(Types::ARRAY)
            && schema
                .items
                .as_ref()
                .is_none_or(|i| i.types != Types::OBJECT))
    {
        schema.fast = false;
    }
    Ok(schema)
}

impl Schema {
    fn set_values(&mut self, values: Vec<Value>) {
        let strings: Option<Vec<String>> = values
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect();
        match strings {
            Some(strings) => self.str_values = Some(strings),
            None => self.values = Some(values),
        }
    }

    /// Whether `null` is allowed as this schema's value (beyond "absent" for optional properties).
    pub(crate) fn allows_null(&self) -> bool {
        self.types.any() || self.types.has(Types::NULL)
    }
}

fn type_named(name: &str, path: &str) -> Result<Types, SchemaError> {
    Types::NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            schema_error(
                path,
                format!(
                    "{name:?} is not a JSON Schema type (one of null, boolean, integer, number, string, object, array)"
                ),
            )
        })
}

fn count(map: &Map<String, Value>, key: &str, path: &str) -> Result<Option<usize>, SchemaError> {
    match map.get(key) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                schema_error(&format!("{path}.{key}"), "expected a non-negative integer")
            }),
        Some(_) => Err(schema_error(
            &format!("{path}.{key}"),
            "expected a non-negative integer",
        )),
    }
}

fn bound(map: &Map<String, Value>, key: &str, path: &str) -> Result<Option<f64>, SchemaError> {
    match map.get(key) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(schema_error(&format!("{path}.{key}"), "expected a number")),
    }
}

// ---------------------------------------------------------------------------------------------
// Validation of a parsed hook (the full path: it also words every error).
// ---------------------------------------------------------------------------------------------

/// Checks `map`'s properties against `schema`. `path` is the object's path; it is extended while
/// descending and restored afterwards, so the happy path does not allocate per field.
pub(crate) fn validate_object(
    map: &Map<String, Value>,
    schema: &Schema,
    path: &mut String,
) -> Result<(), ValidationError> {
    for property in &schema.properties {
        if property.name == "hookId" {
            // Checked on its own by `validate_hook` (and generated when absent).
            continue;
        }
        let (key, value) = lookup(map, property);
        let base = path.len();
        path.push('.');
        path.push_str(key);
        match value {
            None => {
                if property.required {
                    return Err(missing(path.as_str(), value));
                }
            }
            Some(Value::Null) if !property.schema.allows_null() => {
                if property.required {
                    return Err(missing(path.as_str(), value));
                }
            }
            Some(v) => validate_value(v, &property.schema, path)?,
        }
        path.truncate(base);
    }
    if !schema.additional_properties
        && let Some(key) = map.keys().find(|k| {
            k.as_str() != "hookId"
                && !schema
                    .properties
                    .iter()
                    .any(|p| p.name == **k || p.aliases.iter().any(|a| a == *k))
        })
    {
        let base = path.len();
        path.push('.');
        path.push_str(key);
        let err = ValidationError::new(
            K::UnknownField,
            path.as_str(),
            "this field is not allowed here (the event's schema lists every field it accepts)",
        );
        path.truncate(base);
        return Err(err);
    }
    Ok(())
}

/// The property's value under its own name, or else under its first alias present. Returns the
/// key found so error paths name the field as the producer spelled it.
fn lookup<'a, 'p>(
    map: &'a Map<String, Value>,
    property: &'p Property,
) -> (&'p str, Option<&'a Value>) {
    if let Some(v) = map.get(&property.name) {
        return (&property.name, Some(v));
    }
    for alias in &property.aliases {
        if let Some(v) = map.get(alias) {
            return (alias, Some(v));
        }
    }
    (&property.name, None)
}

fn validate_value(v: &Value, schema: &Schema, path: &mut String) -> Result<(), ValidationError> {
    if !schema.types.allows(v) {
        // An array's element that should be an object is "not an object", as the full path
        // always said.
        if schema.types == Types::OBJECT && path.ends_with(']') {
            return Err(ValidationError::new(
                K::NotAnObject,
                path.as_str(),
                format!("expected an object, got {}", describe(v)),
            ));
        }
        return Err(wrong_type(path.as_str(), &schema.types.expected(), v));
    }
    match v {
        Value::String(s) => {
            check_length(s, schema, path)?;
            if let Some(values) = &schema.str_values
                && !values.iter().any(|x| x == s)
            {
                return Err(not_in_enum(path, &quote_for_message(s), values.iter()));
            }
            if let Some(re) = &schema.pattern
                && !re.is_match(s)
            {
                return Err(ValidationError::new(
                    K::BadFormat,
                    path.as_str(),
                    format!(
                        "{} does not match the pattern {}",
                        quote_for_message(s),
                        re.as_str()
                    ),
                ));
            }
            if let Some(format) = schema.date
                && !dates::matches(format, s)
            {
                return Err(ValidationError::new(
                    K::BadFormat,
                    path.as_str(),
                    format!(
                        "{} does not match {}",
                        quote_for_message(s),
                        format.describe()
                    ),
                ));
            }
        }
        Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                let low = schema.minimum.is_some_and(|m| x < m);
                let high = schema.maximum.is_some_and(|m| x > m);
                if low || high {
                    let (word, limit) = if low {
                        ("less than the minimum", schema.minimum)
                    } else {
                        ("more than the maximum", schema.maximum)
                    };
                    return Err(ValidationError::new(
                        K::OutOfRange,
                        path.as_str(),
                        format!("{n} is {word} {}", limit.unwrap_or_default()),
                    ));
                }
            }
        }
        Value::Object(inner) => validate_object(inner, schema, path)?,
        Value::Array(items) => {
            if let Some(item_schema) = &schema.items {
                for (i, item) in items.iter().enumerate() {
                    let base = path.len();
                    path.push_str(&format!("[{i}]"));
                    match item {
                        Value::Null if !item_schema.allows_null() => {
                            return Err(if item_schema.types == Types::OBJECT {
                                ValidationError::new(
                                    K::NotAnObject,
                                    path.as_str(),
                                    format!("expected an object, got {}", describe(item)),
                                )
                            } else {
                                wrong_type_kind(
                                    K::WrongType,
                                    path.as_str(),
                                    &item_schema.types.expected(),
                                    item,
                                )
                            });
                        }
                        _ => validate_value(item, item_schema, path)?,
                    }
                    path.truncate(base);
                }
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
    if let Some(values) = &schema.values
        && !values.contains(v)
    {
        let shown: Vec<String> = values.iter().map(Value::to_string).collect();
        return Err(not_in_enum(path, &v.to_string(), shown.iter()));
    }
    Ok(())
}

fn not_in_enum<'a>(
    path: &str,
    got: &str,
    values: impl Iterator<Item = &'a String>,
) -> ValidationError {
    let list: Vec<&str> = values.map(String::as_str).collect();
    ValidationError::new(
        K::NotInEnum,
        path,
        format!("{got} is not one of {}", list.join(", ")),
    )
}

/// A string outside the schema's length, counted in characters (cheaply: a string of at most `max`
/// bytes has at most `max` characters).
fn check_length(s: &str, schema: &Schema, path: &str) -> Result<(), ValidationError> {
    if let Some(max) = schema.max_chars
        && s.len() > max
    {
        let chars = s.chars().count();
        if chars > max {
            return Err(ValidationError::new(
                K::StringTooLong,
                path,
                format!(
                    "the value is {chars} characters long, more than the limit of {max} for this field"
                ),
            ));
        }
    }
    if let Some(min) = schema.min_chars {
        let chars = s.chars().count();
        if chars < min {
            return Err(ValidationError::new(
                K::StringTooShort,
                path,
                format!(
                    "the value is {chars} characters long, fewer than the {min} this field needs"
                ),
            ));
        }
    }
    Ok(())
}

pub(crate) fn missing(path: &str, value: Option<&Value>) -> ValidationError {
    let message = if value.is_some() {
        "required field is null"
    } else {
        "required field is missing"
    };
    ValidationError::new(K::MissingField, path, message)
}

pub(crate) fn wrong_type(path: &str, expected: &str, got: &Value) -> ValidationError {
    wrong_type_kind(K::WrongType, path, expected, got)
}

fn wrong_type_kind(kind: K, path: &str, expected: &str, got: &Value) -> ValidationError {
    let beyond = match got {
        Value::Number(n) if n.is_u64() && !n.is_i64() => {
            ", beyond the signed 64-bit range (largest 9223372036854775807)"
        }
        _ => "",
    };
    ValidationError::new(
        kind,
        path,
        format!("expected {expected}, got {}{beyond}", describe(got)),
    )
}

// ---------------------------------------------------------------------------------------------
// The published schema.
// ---------------------------------------------------------------------------------------------

/// The published JSON Schema 2020-12 of a hook whose source schema is `source`: equivalent to
/// what ingest applies. It adds what ingest does beyond the source: optional properties may be
/// `null`, integers are 64-bit, `hookId` is checked, and each alias is a property like the field
/// it stands for.
pub(crate) fn publish(source: &Value, aliases: &[(String, String)]) -> Value {
    let mut out = source.clone();
    if let Value::Object(map) = &mut out
        && !map.contains_key("$schema")
    {
        map.shift_insert(
            0,
            "$schema".to_owned(),
            Value::String("https://json-schema.org/draft/2020-12/schema".to_owned()),
        );
    }
    publish_node(&mut out);
    if let Value::Object(map) = &mut out {
        let properties = map
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(properties) = properties {
            properties.insert(
                "hookId".to_owned(),
                serde_json::json!({
                    "type": ["string", "null"],
                    "pattern": "^[A-Za-z0-9._-]{1,64}$",
                    "description": "The id of this event occurrence; generated when absent."
                }),
            );
            for (alias, name) in aliases {
                if let Some(target) = properties.get(name).cloned() {
                    properties.entry(alias.clone()).or_insert(target);
                }
            }
        }
    }
    out
}

fn publish_node(node: &mut Value) {
    let Value::Object(map) = node else {
        return;
    };
    if type_has(map, "integer") {
        map.entry("minimum").or_insert(Value::from(i64::MIN));
        map.entry("maximum").or_insert(Value::from(i64::MAX));
    }
    let required: Vec<String> = match map.get("required") {
        Some(Value::Array(names)) => names
            .iter()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        for (name, sub) in properties.iter_mut() {
            publish_node(sub);
            if !required.contains(name) {
                make_nullable(sub);
            }
        }
    }
    if let Some(items) = map.get_mut("items") {
        publish_node(items);
    }
}

fn type_has(map: &Map<String, Value>, name: &str) -> bool {
    match map.get("type") {
        Some(Value::String(t)) => t == name,
        Some(Value::Array(ts)) => ts.iter().any(|t| t == name),
        _ => false,
    }
}

/// Null is "absent" for an optional property: say so in its type, enum and const.
fn make_nullable(node: &mut Value) {
    let Value::Object(map) = node else {
        return;
    };
    match map.get_mut("type") {
        Some(Value::String(t)) if t != "null" => {
            let t = std::mem::take(t);
            map.insert(
                "type".to_owned(),
                Value::Array(vec![Value::String(t), Value::String("null".to_owned())]),
            );
        }
        Some(Value::Array(ts)) if !ts.iter().any(|t| t == "null") => {
            ts.push(Value::String("null".to_owned()));
        }
        _ => {}
    }
    if let Some(Value::Array(values)) = map.get_mut("enum")
        && !values.contains(&Value::Null)
    {
        values.push(Value::Null);
    }
    if let Some(value) = map.shift_remove("const") {
        map.insert("enum".to_owned(), Value::Array(vec![value, Value::Null]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_keywords_are_refused_with_their_path() {
        let err = compile(
            &json!({"type": "object", "properties": {"a": {"type": "string", "oneOf": []}}}),
            "$",
        )
        .unwrap_err();
        assert_eq!(err.path, "$.properties.a.oneOf");
    }

    #[test]
    fn expected_types_read_as_before() {
        assert_eq!(Types::STRING.with(Types::NULL).expected(), "a string");
        assert_eq!(
            Types::BOOLEAN.with(Types::NULL).expected(),
            "true, false or null"
        );
        assert_eq!(
            Types::STRING.with(Types::INTEGER).expected(),
            "a string or an integer"
        );
        assert_eq!(
            Types::STRING
                .with(Types::INTEGER)
                .with(Types::BOOLEAN)
                .expected(),
            "a string, an integer or true or false"
        );
    }

    #[test]
    fn publishing_makes_optional_properties_nullable() {
        let published = publish(
            &json!({"type": "object", "required": ["a"], "properties": {
                "a": {"type": "string"}, "b": {"type": "string", "enum": ["x"]},
                "c": {"type": "integer"}}}),
            &[("bb".to_owned(), "b".to_owned())],
        );
        assert_eq!(published["properties"]["a"]["type"], "string");
        assert_eq!(
            published["properties"]["b"]["type"],
            json!(["string", "null"])
        );
        assert_eq!(published["properties"]["b"]["enum"], json!(["x", null]));
        assert_eq!(published["properties"]["bb"], published["properties"]["b"]);
        assert_eq!(published["properties"]["c"]["maximum"], json!(i64::MAX));
    }
}
