//! Config filters: which hooks a config receives (docs/api.md, "Filters"). Parsed and checked
//! once at config write ([`Filter::parse`], errors naming the path inside the filter), then
//! evaluated per hook at ingest fan-out: by [`Filter::matches`] in the embedded store's writer,
//! and in PostgreSQL by the `jsonpath` predicate [`Filter::jsonpath`] compiles it to, so that the
//! fan-out stays one statement there.
//!
//! Two evaluators must agree, so the semantics are defined as PostgreSQL's lax `jsonpath` has
//! them, and [`Filter::matches`] mirrors them:
//! - A path (`comments.status`) yields every value found: an array met on the way is looked into
//!   one level (each element that is an object), as lax mode unwraps it.
//! - A test on the values found holds when one of them (or an element of one that is an array,
//!   down two levels) satisfies it: `$eq`, `$in`, `$gt`, `$gte`, `$lt`, `$lte`, `$prefix`.
//!   `$ne` and `$nin` hold when none does (a missing field included). `$exists` looks at
//!   whether the path found anything (`null` counts).
//! - Comparisons only between the same types: numbers by value, strings by code point (both
//!   evaluators), booleans and `null` only for (in)equality. A value of another type satisfies
//!   nothing, so no test is ever "unknown".

use std::borrow::Cow;

use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};

/// Most conditions (field tests and `$and`/`$or`/`$not` nodes) in one filter.
pub const MAX_CONDITIONS: usize = 64;
/// Deepest nesting of `$and`, `$or` and `$not`.
pub const MAX_DEPTH: usize = 8;
/// Most segments in a field path.
pub const MAX_PATH_SEGMENTS: usize = 8;
/// Most values in an `$in` or `$nin` list.
pub const MAX_LIST: usize = 100;
/// Longest string operand or path, in bytes.
pub const MAX_TEXT: usize = 1024;

/// A parse error: where in the filter (`messageStatus.$within`, `$and[1]`; empty for the filter
/// itself) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FilterError {
    pub path: String,
    pub message: String,
}

/// A checked filter: the JSON as the customer wrote it, and its compiled form.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    source: Value,
    root: Node,
    /// The top-level fields the filter reads (the first name of each path), sorted: a stored
    /// hook is parsed for these only ([`Filter::matches_json`]).
    fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    Field { path: Vec<String>, test: Test },
}

#[derive(Debug, Clone, PartialEq)]
enum Test {
    Eq(Value),
    Ne(Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Gt(Value),
    Gte(Value),
    Lt(Value),
    Lte(Value),
    Exists(bool),
    Prefix(String),
}

impl Filter {
    /// Checks `value` (the config's `filter` field). `Ok(None)` for an empty object: no filter.
    pub fn parse(value: &Value) -> Result<Option<Filter>, FilterError> {
        let Value::Object(map) = value else {
            return Err(err("", "must be an object of field paths and conditions"));
        };
        if map.is_empty() {
            return Ok(None);
        }
        let mut budget = MAX_CONDITIONS;
        let root = parse_object(map, "", 0, &mut budget)?;
        let mut fields = Vec::new();
        root_fields(&root, &mut fields);
        fields.sort();
        fields.dedup();
        Ok(Some(Filter {
            source: value.clone(),
            root,
            fields,
        }))
    }

    /// Reads a filter stored as JSON text (checked when it was written).
    pub fn from_stored(text: &str) -> Result<Option<Filter>, FilterError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| err("", format!("not JSON: {e}")))?;
        Filter::parse(&value)
    }

    /// The filter as the customer wrote it.
    pub fn source(&self) -> &Value {
        &self.source
    }

    /// The filter as stored: its JSON text.
    pub fn to_stored(&self) -> String {
        self.source.to_string()
    }

    /// Whether `hook` (a hook's JSON object) passes.
    pub fn matches(&self, hook: &Value) -> bool {
        eval(&self.root, &|name| hook.get(name).map(At::Tree))
    }

    /// Whether the hook stored as `json` passes. Only the fields the filter reads are parsed
    /// (the rest is skipped without being built): this runs once per hook and filtered config
    /// at ingest. Stored hooks are valid JSON objects; one that is not passes, so that a filter
    /// never drops a hook it could not read.
    pub fn matches_json(&self, json: &str) -> bool {
        let mut de = serde_json::Deserializer::from_str(json);
        match serde::de::DeserializeSeed::deserialize(PickRaw(&self.fields), &mut de) {
            Ok(raw) => {
                let picked: Vec<(Cow<str>, PickedValue)> = raw
                    .into_iter()
                    .map(|(name, v)| (name, PickedValue::of(v)))
                    .collect();
                // A repeated name: the last one counts, as in a parsed object.
                eval(&self.root, &|name| {
                    picked
                        .iter()
                        .rev()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.at())
                })
            }
            Err(_) => true,
        }
    }

    /// The same predicate in PostgreSQL's `jsonpath` (lax mode), for `jsonb_path_match`.
    pub fn jsonpath(&self) -> String {
        let mut out = String::new();
        write_path(&self.root, &mut out);
        out
    }
}

fn err(path: &str, message: impl Into<String>) -> FilterError {
    FilterError {
        path: path.to_owned(),
        message: message.into(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn spend(budget: &mut usize, path: &str) -> Result<(), FilterError> {
    if *budget == 0 {
        return Err(err(
            path,
            format!("a filter holds at most {MAX_CONDITIONS} conditions"),
        ));
    }
    *budget -= 1;
    Ok(())
}

/// A filter object: every key must hold.
fn parse_object(
    map: &Map<String, Value>,
    path: &str,
    depth: usize,
    budget: &mut usize,
) -> Result<Node, FilterError> {
    if depth > MAX_DEPTH {
        return Err(err(
            path,
            format!("$and, $or and $not nest at most {MAX_DEPTH} deep"),
        ));
    }
    if map.is_empty() {
        return Err(err(path, "must not be empty"));
    }
    let mut all = Vec::with_capacity(map.len());
    for (key, value) in map {
        let here = join(path, key);
        match key.as_str() {
            "$and" | "$or" => {
                spend(budget, &here)?;
                let Value::Array(items) = value else {
                    return Err(err(&here, "must be a non-empty array of filters"));
                };
                if items.is_empty() {
                    return Err(err(&here, "must be a non-empty array of filters"));
                }
                let mut nodes = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{here}[{i}]");
                    let Value::Object(inner) = item else {
                        return Err(err(&item_path, "must be a filter object"));
                    };
                    nodes.push(parse_object(inner, &item_path, depth + 1, budget)?);
                }
                all.push(if key == "$and" {
                    Node::All(nodes)
                } else {
                    Node::Any(nodes)
                });
            }
            "$not" => {
                spend(budget, &here)?;
                let Value::Object(inner) = value else {
                    return Err(err(&here, "must be a filter object"));
                };
                all.push(Node::Not(Box::new(parse_object(
                    inner,
                    &here,
                    depth + 1,
                    budget,
                )?)));
            }
            other if other.starts_with('$') => {
                return Err(err(
                    &here,
                    "unknown operator here (a filter's keys are field paths, $and, $or or $not)",
                ));
            }
            field => {
                let segments = parse_field_path(field, &here)?;
                match value {
                    Value::Object(ops) => {
                        if ops.is_empty() {
                            return Err(err(&here, "must hold at least one operator"));
                        }
                        for (op, operand) in ops {
                            spend(budget, &here)?;
                            let op_path = format!("{here}.{op}");
                            all.push(Node::Field {
                                path: segments.clone(),
                                test: parse_test(op, operand, &op_path)?,
                            });
                        }
                    }
                    scalar => {
                        spend(budget, &here)?;
                        all.push(Node::Field {
                            path: segments,
                            test: Test::Eq(check_scalar(scalar, &here)?),
                        });
                    }
                }
            }
        }
    }
    Ok(if all.len() == 1 {
        all.remove(0)
    } else {
        Node::All(all)
    })
}

fn parse_field_path(field: &str, here: &str) -> Result<Vec<String>, FilterError> {
    if field.len() > MAX_TEXT {
        return Err(err(
            here,
            format!("a field path is at most {MAX_TEXT} bytes"),
        ));
    }
    let segments: Vec<String> = field.split('.').map(str::to_owned).collect();
    if segments.len() > MAX_PATH_SEGMENTS {
        return Err(err(
            here,
            format!("a field path has at most {MAX_PATH_SEGMENTS} parts"),
        ));
    }
    if segments.iter().any(|s| s.is_empty()) {
        return Err(err(
            here,
            "a field path is names joined by dots, none of them empty",
        ));
    }
    Ok(segments)
}

/// An equality operand: a string, number, boolean or null.
fn check_scalar(value: &Value, path: &str) -> Result<Value, FilterError> {
    match value {
        Value::String(s) if s.len() > MAX_TEXT => {
            Err(err(path, format!("a string is at most {MAX_TEXT} bytes")))
        }
        Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null => Ok(value.clone()),
        _ => Err(err(
            path,
            "must be a string, number, boolean or null (or an object of operators)",
        )),
    }
}

/// An ordering operand: a number or a string.
fn check_ordered(value: &Value, path: &str) -> Result<Value, FilterError> {
    match value {
        Value::Number(_) => Ok(value.clone()),
        Value::String(s) if s.len() <= MAX_TEXT => Ok(value.clone()),
        Value::String(_) => Err(err(path, format!("a string is at most {MAX_TEXT} bytes"))),
        _ => Err(err(path, "must be a number or a string")),
    }
}

fn check_list(value: &Value, path: &str) -> Result<Vec<Value>, FilterError> {
    let Value::Array(items) = value else {
        return Err(err(path, "must be an array of values"));
    };
    if items.is_empty() || items.len() > MAX_LIST {
        return Err(err(path, format!("must hold 1 to {MAX_LIST} values")));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| check_scalar(item, &format!("{path}[{i}]")))
        .collect()
}

fn parse_test(op: &str, operand: &Value, path: &str) -> Result<Test, FilterError> {
    Ok(match op {
        "$eq" => Test::Eq(check_scalar(operand, path)?),
        "$ne" => Test::Ne(check_scalar(operand, path)?),
        "$in" => Test::In(check_list(operand, path)?),
        "$nin" => Test::Nin(check_list(operand, path)?),
        "$gt" => Test::Gt(check_ordered(operand, path)?),
        "$gte" => Test::Gte(check_ordered(operand, path)?),
        "$lt" => Test::Lt(check_ordered(operand, path)?),
        "$lte" => Test::Lte(check_ordered(operand, path)?),
        "$exists" => match operand {
            Value::Bool(b) => Test::Exists(*b),
            _ => return Err(err(path, "must be true or false")),
        },
        "$prefix" => match operand {
            Value::String(s) if s.len() <= MAX_TEXT => Test::Prefix(s.clone()),
            _ => return Err(err(path, "must be a string")),
        },
        _ => {
            return Err(err(
                path,
                "unknown operator (expected $eq, $ne, $in, $nin, $gt, $gte, $lt, $lte, $exists \
                 or $prefix)",
            ));
        }
    })
}

/// The top-level fields a node reads.
fn root_fields(node: &Node, out: &mut Vec<String>) {
    match node {
        Node::All(nodes) | Node::Any(nodes) => nodes.iter().for_each(|n| root_fields(n, out)),
        Node::Not(inner) => root_fields(inner, out),
        Node::Field { path, .. } => out.extend(path.first().cloned()),
    }
}

/// A field name, borrowed from the text when it has no escapes.
struct PickedName<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for PickedName<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl<'de> serde::de::Visitor<'de> for Name {
            type Value = PickedName<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(PickedName(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(PickedName(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(Name)
    }
}

/// A picked field's value: a scalar as found in the text (a string borrowed unless escaped), or
/// an array or object left as text, walked only along the filter's paths ([`walk`]).
enum PickedValue<'de> {
    Str(Cow<'de, str>),
    Num(Number),
    Bool(bool),
    Null,
    Raw(&'de RawValue),
}

impl<'de> PickedValue<'de> {
    fn of(raw: &'de RawValue) -> PickedValue<'de> {
        let text = raw.get();
        match text.as_bytes().first() {
            Some(b'{' | b'[') => PickedValue::Raw(raw),
            Some(b'"') => match serde_json::from_str::<&str>(text) {
                Ok(s) => PickedValue::Str(Cow::Borrowed(s)),
                // Escapes: the string is unescaped into a copy.
                Err(_) => serde_json::from_str::<String>(text)
                    .map_or(PickedValue::Null, |s| PickedValue::Str(Cow::Owned(s))),
            },
            _ => match serde_json::from_str::<Value>(text) {
                Ok(Value::Number(n)) => PickedValue::Num(n),
                Ok(Value::Bool(b)) => PickedValue::Bool(b),
                _ => PickedValue::Null,
            },
        }
    }

    fn at(&self) -> At<'_> {
        match self {
            PickedValue::Str(s) => At::Scalar(Item::Str(s)),
            PickedValue::Num(n) => At::Scalar(Item::Num(n)),
            PickedValue::Bool(b) => At::Scalar(Item::Bool(*b)),
            PickedValue::Null => At::Scalar(Item::Null),
            PickedValue::Raw(r) => At::Raw(r),
        }
    }
}

/// Calls `leaf` on each value at `path` below the JSON text `raw` until one answers true: an
/// array met before a name is looked into one level (lax mode), at its elements that are
/// objects. Only the members on the path are read; the rest is skipped unbuilt.
fn walk(raw: &RawValue, path: &[String], leaf: &dyn Fn(&RawValue) -> bool) -> bool {
    let Some((name, rest)) = path.split_first() else {
        return leaf(raw);
    };
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'{') => member(text, name).is_some_and(|v| walk(v, rest, leaf)),
        Some(b'[') => serde_json::from_str::<Vec<&RawValue>>(text).is_ok_and(|elements| {
            elements.iter().any(|element| {
                element.get().starts_with('{')
                    && member(element.get(), name).is_some_and(|v| walk(v, rest, leaf))
            })
        }),
        _ => false,
    }
}

/// The member `name` of the JSON object `text` (the last one, if repeated).
fn member<'t>(text: &'t str, name: &str) -> Option<&'t RawValue> {
    let names = [name.to_owned()];
    let mut de = serde_json::Deserializer::from_str(text);
    let picked = serde::de::DeserializeSeed::deserialize(PickRaw(&names), &mut de).ok()?;
    picked.into_iter().next_back().map(|(_, v)| v)
}

/// Whether a value found as text satisfies `pred`: a scalar directly, an array or object (down
/// two array levels, as [`any_item`]) once built.
fn leaf_holds(raw: &RawValue, pred: &dyn Fn(Item) -> bool) -> bool {
    match PickedValue::of(raw) {
        PickedValue::Raw(r) => {
            serde_json::from_str::<Value>(r.get()).is_ok_and(|v| any_item(&v, pred))
        }
        scalar => match scalar.at() {
            At::Scalar(it) => pred(it),
            _ => false,
        },
    }
}

/// Reads an object's members named in the list (sorted) as text, skipping the others.
struct PickRaw<'f, S>(&'f [S]);

impl<'de, S: AsRef<str>> serde::de::DeserializeSeed<'de> for PickRaw<'_, S> {
    type Value = Vec<(Cow<'de, str>, &'de RawValue)>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, S: AsRef<str>> serde::de::Visitor<'de> for PickRaw<'_, S> {
    type Value = Vec<(Cow<'de, str>, &'de RawValue)>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut picked = Vec::with_capacity(self.0.len());
        while let Some(PickedName(name)) = map.next_key()? {
            if self.0.binary_search_by(|f| f.as_ref().cmp(&name)).is_ok() {
                picked.push((name, map.next_value()?));
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(picked)
    }
}

/// The text of the JSON object `json`'s top-level `field`; `None` when the field is absent or
/// `json` is not an object.
///
/// A skim, not a parse: this runs for every hook and ordered config at ingest, where serde_json
/// skipping every other member cost about 7,000 instructions per hook. It expects what ingest
/// stores: valid JSON whose objects never repeat a member name (`ValidatedHook::json`), so the
/// first member of that name is the one and reading stops there. It answers `None` where the
/// object's own structure is broken, but does not check the values it skips; the value found is
/// checked by whoever reads it (`model::ordering_value` parses it). `field` is a plain name (an
/// `orderingKey`: letters, digits, `_`), compared with member names as they are written, or
/// decoded where they hold an escape.
pub(crate) fn top_level_field<'a>(json: &'a str, field: &str) -> Option<&'a str> {
    let b = json.as_bytes();
    let mut i = skip_space(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_space(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return None;
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let name_end = string_end(b, i)?;
        let name = json.get(i..name_end)?;
        i = skip_space(b, name_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_space(b, i + 1);
        let value_end = value_end(b, i)?;
        if name_is(name, field) {
            return json.get(i..value_end);
        }
        i = skip_space(b, value_end);
        if b.get(i) != Some(&b',') {
            return None; // the end of the object (or something malformed)
        }
        i = skip_space(b, i + 1);
    }
}

fn skip_space(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// Just past the string whose opening quote is at `start`.
fn string_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        i += memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        if b.get(i) == Some(&b'"') {
            return Some(i + 1);
        }
        i += 2;
    }
}

/// Just past the value that starts at `start`.
fn value_end(b: &[u8], start: usize) -> Option<usize> {
    match b.get(start)? {
        b'"' => string_end(b, start),
        b'{' | b'[' => {
            let (mut i, mut depth) = (start, 0usize);
            loop {
                match b.get(i)? {
                    b'"' => i = string_end(b, i)?,
                    b'{' | b'[' => {
                        depth += 1;
                        i += 1;
                    }
                    b'}' | b']' => {
                        depth -= 1;
                        i += 1;
                        if depth == 0 {
                            return Some(i);
                        }
                    }
                    _ => i += 1,
                }
            }
        }
        _ => {
            let mut i = start;
            while !matches!(
                b.get(i),
                None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            ) {
                i += 1;
            }
            (i > start).then_some(i)
        }
    }
}

/// Whether the member name `quoted` (its JSON text, quotes included) is `field`.
fn name_is(quoted: &str, field: &str) -> bool {
    let Some(inner) = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"')) else {
        return false;
    };
    // A name's text is the name itself unless it holds an escape: then it spells a shorter
    // name, decoded only when it could be `field`. Text that equals `field` and holds an escape
    // is another name: the member `"` is written `"\""`, and its text `\"` is not the name `\"`.
    if inner == field {
        return !inner.contains('\\');
    }
    inner.len() > field.len()
        && inner.contains('\\')
        && serde_json::from_str::<String>(quoted).is_ok_and(|name| name == field)
}

/// A top-level field's value: a tree to walk, or a scalar read straight from the text.
#[derive(Clone, Copy)]
enum At<'a> {
    Tree(&'a Value),
    Scalar(Item<'a>),
    /// An array or object still as text.
    Raw(&'a RawValue),
}

/// A value a test looks at.
#[derive(Clone, Copy)]
enum Item<'a> {
    Str(&'a str),
    Num(&'a Number),
    Bool(bool),
    Null,
    /// An array or object: equal to no operand, ordered with none.
    Composite,
}

fn item(value: &Value) -> Item<'_> {
    match value {
        Value::String(s) => Item::Str(s),
        Value::Number(n) => Item::Num(n),
        Value::Bool(b) => Item::Bool(*b),
        Value::Null => Item::Null,
        Value::Array(_) | Value::Object(_) => Item::Composite,
    }
}

/// `field` finds a top-level field of the hook.
fn eval<'a>(node: &Node, field: &dyn Fn(&str) -> Option<At<'a>>) -> bool {
    match node {
        Node::All(nodes) => nodes.iter().all(|n| eval(n, field)),
        Node::Any(nodes) => nodes.iter().any(|n| eval(n, field)),
        Node::Not(inner) => !eval(inner, field),
        Node::Field { path, test } => {
            let Some((first, rest)) = path.split_first() else {
                return false;
            };
            let found = field(first);
            let any = |pred: &dyn Fn(Item) -> bool| match found {
                None => false,
                Some(At::Scalar(it)) => rest.is_empty() && pred(it),
                Some(At::Tree(v)) => any_at(v, rest, &|value| any_item(value, pred)),
                Some(At::Raw(r)) => walk(r, rest, &|leaf| leaf_holds(leaf, pred)),
            };
            match test {
                Test::Exists(wanted) => exists(found, rest) == *wanted,
                Test::Ne(v) => !any(&|it| same(it, v)),
                Test::Nin(vs) => !any(&|it| vs.iter().any(|v| same(it, v))),
                Test::Eq(v) => any(&|it| same(it, v)),
                Test::In(vs) => any(&|it| vs.iter().any(|v| same(it, v))),
                Test::Gt(v) => any(&|it| order(it, v).is_some_and(|o| o.is_gt())),
                Test::Gte(v) => any(&|it| order(it, v).is_some_and(|o| o.is_ge())),
                Test::Lt(v) => any(&|it| order(it, v).is_some_and(|o| o.is_lt())),
                Test::Lte(v) => any(&|it| order(it, v).is_some_and(|o| o.is_le())),
                Test::Prefix(p) => {
                    any(&|it| matches!(it, Item::Str(s) if s.starts_with(p.as_str())))
                }
            }
        }
    }
}

/// Whether the path finds anything (an empty array counts: it is found, it has no elements).
fn exists(found: Option<At<'_>>, rest: &[String]) -> bool {
    match found {
        None => false,
        Some(At::Scalar(_)) => rest.is_empty(),
        Some(At::Tree(v)) => any_at(v, rest, &|_| true),
        Some(At::Raw(r)) => walk(r, rest, &|_| true),
    }
}

/// Whether a value at `path` below `value` satisfies `pred`: an array met before a name is
/// looked into one level (lax mode), at its elements that are objects.
fn any_at(value: &Value, path: &[String], pred: &dyn Fn(&Value) -> bool) -> bool {
    let Some((name, rest)) = path.split_first() else {
        return pred(value);
    };
    match value {
        Value::Object(map) => map.get(name).is_some_and(|v| any_at(v, rest, pred)),
        Value::Array(items) => items.iter().any(|element| match element {
            Value::Object(map) => map.get(name).is_some_and(|v| any_at(v, rest, pred)),
            _ => false,
        }),
        _ => false,
    }
}

/// Whether the value found, or an element of it down two array levels (a lax filter unwraps
/// its input, a lax comparison its operand), satisfies `test`.
fn any_item(value: &Value, test: &dyn Fn(Item) -> bool) -> bool {
    match value {
        Value::Array(elements) => elements.iter().any(|element| match element {
            Value::Array(inner) => inner.iter().any(|v| test(item(v))),
            other => test(item(other)),
        }),
        other => test(item(other)),
    }
}

/// Equality as `jsonpath` has it: numbers by value, scalars of the same type, nothing else.
fn same(a: Item, b: &Value) -> bool {
    match (a, b) {
        (Item::Num(x), Value::Number(y)) => compare_numbers(x, y).is_some_and(|o| o.is_eq()),
        (Item::Str(x), Value::String(y)) => x == y,
        (Item::Bool(x), Value::Bool(y)) => x == *y,
        (Item::Null, Value::Null) => true,
        _ => false,
    }
}

/// Order between a number and a number, or a string and a string (by code point, which is byte
/// order in UTF-8); anything else is not ordered.
fn order(a: Item, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Item::Num(x), Value::Number(y)) => compare_numbers(x, y),
        (Item::Str(x), Value::String(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        _ => None,
    }
}

fn compare_numbers(x: &Number, y: &Number) -> Option<std::cmp::Ordering> {
    let exact = |n: &Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (exact(x), exact(y)) {
        (Some(a), Some(b)) => Some(a.cmp(&b)),
        _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
    }
}

fn write_path(node: &Node, out: &mut String) {
    match node {
        Node::All(nodes) | Node::Any(nodes) => {
            let op = if matches!(node, Node::All(_)) {
                " && "
            } else {
                " || "
            };
            out.push('(');
            for (i, n) in nodes.iter().enumerate() {
                if i > 0 {
                    out.push_str(op);
                }
                write_path(n, out);
            }
            out.push(')');
        }
        Node::Not(inner) => {
            out.push_str("!(");
            write_path(inner, out);
            out.push(')');
        }
        Node::Field { path, test } => {
            let (negated, predicate) = match test {
                Test::Exists(wanted) => {
                    if !wanted {
                        out.push('!');
                    }
                    out.push_str("exists(");
                    write_accessor(path, out);
                    out.push(')');
                    return;
                }
                Test::Eq(v) => (false, format!("@ == {}", literal(v))),
                Test::Ne(v) => (true, format!("@ == {}", literal(v))),
                Test::In(vs) | Test::Nin(vs) => (
                    matches!(test, Test::Nin(_)),
                    vs.iter()
                        .map(|v| format!("@ == {}", literal(v)))
                        .collect::<Vec<_>>()
                        .join(" || "),
                ),
                Test::Gt(v) => (false, format!("@ > {}", literal(v))),
                Test::Gte(v) => (false, format!("@ >= {}", literal(v))),
                Test::Lt(v) => (false, format!("@ < {}", literal(v))),
                Test::Lte(v) => (false, format!("@ <= {}", literal(v))),
                Test::Prefix(p) => (false, format!("@ starts with {}", string_literal(p))),
            };
            if negated {
                out.push('!');
            }
            out.push_str("exists(");
            write_accessor(path, out);
            out.push_str(" ? (");
            out.push_str(&predicate);
            out.push_str("))");
        }
    }
}

fn write_accessor(path: &[String], out: &mut String) {
    out.push('$');
    for segment in path {
        out.push('.');
        out.push_str(&string_literal(segment));
    }
}

/// A JSON string is a `jsonpath` string literal: its escapes are a subset of jsonpath's.
fn string_literal(s: &str) -> String {
    Value::from(s).to_string()
}

fn literal(v: &Value) -> String {
    match v {
        Value::Number(n) => number_literal(n),
        other => other.to_string(),
    }
}

/// A number as `jsonpath` reads it: negatives in parentheses (a unary minus), floats in plain
/// decimal or with an exponent as serde_json writes them.
fn number_literal(n: &Number) -> String {
    let text = n.to_string();
    match text.strip_prefix('-') {
        Some(rest) => format!("(-{rest})"),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The skim finds what serde_json finds in a parsed object, whatever the layout.
    #[test]
    fn a_top_level_field_is_found_as_a_parse_finds_it() {
        let docs = [
            r#"{"to":"010","n":1,"o":{"to":"inner"},"a":[{"to":2}, "x"]}"#,
            "{ \"to\" :\t\"a b\" ,\n \"n\" : -1.5e3 }",
            r#"{"t\u006f":"escaped name","s":"q\"uote \\ {[","to2":true}"#,
            r#"{"x":"}\"]","to":false}"#,
            r#"{"to":null}"#,
            r#"{}"#,
            r#"{"éé":"ü","to":"日本"}"#,
        ];
        for doc in docs {
            let parsed: Map<String, Value> = serde_json::from_str(doc).expect("a valid test doc");
            for field in ["to", "n", "o", "a", "s", "x", "to2", "absent", "éé"] {
                let skimmed = top_level_field(doc, field).map(|raw| {
                    serde_json::from_str::<Value>(raw).expect("the skim's value is a JSON value")
                });
                assert_eq!(skimmed.as_ref(), parsed.get(field), "{field} in {doc}");
            }
        }
        // Names are never repeated in what ingest stores; were one, the first would count.
        assert_eq!(top_level_field(r#"{"to":1,"to":2}"#, "to"), Some("1"));
        // The member `"` is written `"\""`: its text is the name `\"`, which is the next member
        // (found by the property test below; the skim used to answer the first).
        let quotes = r#"{"\"":null,"\\\"":false}"#;
        assert_eq!(top_level_field(quotes, r#"\""#), Some("false"));
        assert_eq!(top_level_field(quotes, "\""), Some("null"));
        for not_an_object in [
            "[1]",
            "\"to\"",
            "1",
            "",
            "{\"to\": ",
            "{\"to\" 1}",
            "{\"to\":\"1",
        ] {
            assert_eq!(
                top_level_field(not_an_object, "to"),
                None,
                "{not_an_object}"
            );
        }
    }

    /// Any JSON value without floats (a float's text need not parse back to the same bits,
    /// and the skim treats every number as a scalar anyway), with strings and member names
    /// full of what the skim must step over: quotes, backslashes, brackets, braces, commas,
    /// colons, control characters and non-ASCII text.
    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let text = r#"[a-z"\\{}\[\],: \n\té日😀]{0,8}"#;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            text.prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 32, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map(text, inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// The skim against serde_json on generated objects, compact (as ingest stores hooks)
        /// and pretty-printed: every member's value is the text serde_json writes for it, and
        /// a name that is not a member (only nested, or only inside a string) is not found.
        #[test]
        fn the_skim_finds_every_member_a_parse_finds(
            members in proptest::collection::btree_map(r#"[a-z"\\é]{0,4}"#, json_value(), 0..8),
            probe in r#"[a-z"\\é]{0,4}"#,
        ) {
            let object: Map<String, Value> = members.into_iter().collect();
            let compact = serde_json::to_string(&object).expect("a value serializes");
            let pretty = serde_json::to_string_pretty(&object).expect("a value serializes");
            for name in object.keys().chain(std::iter::once(&probe)) {
                let expected = object.get(name);
                let found = top_level_field(&compact, name);
                let written = expected.map(|v| serde_json::to_string(v).expect("serializes"));
                proptest::prop_assert_eq!(found, written.as_deref(), "{} in {}", name, compact);
                let found = top_level_field(&pretty, name)
                    .map(|raw| serde_json::from_str::<Value>(raw).expect("the skim's value is JSON"));
                proptest::prop_assert_eq!(found.as_ref(), expected, "{} in {}", name, pretty);
            }
        }
    }

    /// Both evaluators, on a parsed hook and on its text, must agree.
    trait Both {
        fn both(&self, hook: Value) -> bool;
    }

    impl Both for Filter {
        fn both(&self, hook: Value) -> bool {
            let parsed = self.matches(&hook);
            assert_eq!(parsed, self.matches_json(&hook.to_string()), "{hook}");
            parsed
        }
    }

    fn f(v: Value) -> Filter {
        match Filter::parse(&v) {
            Ok(Some(f)) => f,
            other => panic!("{v}: {other:?}"),
        }
    }

    fn parse_err(v: Value) -> String {
        match Filter::parse(&v) {
            Err(e) => e.to_string(),
            Ok(other) => panic!("{v} parsed: {other:?}"),
        }
    }

    #[test]
    fn the_documented_example() {
        let filter =
            f(json!({"messageStatus": {"$in": ["FAILED", "FAILED_AD"]}, "sendNo": "15446859"}));
        assert!(filter.both(json!({"messageStatus": "FAILED", "sendNo": "15446859"})));
        assert!(filter.both(json!({"messageStatus": "FAILED_AD", "sendNo": "15446859"})));
        assert!(!filter.both(json!({"messageStatus": "COMPLETED", "sendNo": "15446859"})));
        assert!(!filter.both(json!({"messageStatus": "FAILED", "sendNo": "1"})));
        assert!(!filter.both(json!({"sendNo": "15446859"})));
    }

    #[test]
    fn paths_look_into_objects_and_arrays() {
        let filter = f(json!({"comments.status": "REJECTED"}));
        assert!(filter.both(json!({"comments": [{"status": "OK"}, {"status": "REJECTED"}]})));
        assert!(!filter.both(json!({"comments": [{"status": "OK"}]})));
        assert!(!filter.both(json!({"comments": []})));
        let nested = f(json!({"_links.self.href": {"$prefix": "https://"}}));
        assert!(nested.both(json!({"_links": {"self": {"href": "https://x"}}})));
        assert!(!nested.both(json!({"_links": {"self": {"href": "http://x"}}})));
        // An array value: any element.
        let tags = f(json!({"tags": "b"}));
        assert!(tags.both(json!({"tags": ["a", "b"]})));
    }

    #[test]
    fn negative_tests_hold_for_missing_fields_and_exists_sees_null() {
        assert!(f(json!({"x": {"$ne": 1}})).both(json!({})));
        assert!(f(json!({"x": {"$nin": [1, 2]}})).both(json!({"x": 3})));
        assert!(!f(json!({"x": {"$nin": [1, 2]}})).both(json!({"x": 2})));
        assert!(f(json!({"x": {"$exists": true}})).both(json!({"x": null})));
        assert!(f(json!({"x": {"$exists": false}})).both(json!({"y": 1})));
        assert!(f(json!({"x": null})).both(json!({"x": null})));
        assert!(!f(json!({"x": null})).both(json!({})));
    }

    #[test]
    fn comparisons_only_between_the_same_types() {
        let gt = f(json!({"n": {"$gt": 5}}));
        assert!(gt.both(json!({"n": 6})));
        assert!(gt.both(json!({"n": 5.5})));
        assert!(!gt.both(json!({"n": 5})));
        assert!(!gt.both(json!({"n": "6"})));
        // ... so a negated comparison holds for another type.
        assert!(f(json!({"$not": {"n": {"$gt": 5}}})).both(json!({"n": "6"})));
        let s = f(json!({"d": {"$gte": "2026-01-01", "$lt": "2027"}}));
        assert!(s.both(json!({"d": "2026-06-01 10:00:00"})));
        assert!(!s.both(json!({"d": "2025-12-31"})));
        assert!(f(json!({"n": 1})).both(json!({"n": 1.0})));
        assert!(!f(json!({"n": 1})).both(json!({"n": "1"})));
        assert!(!f(json!({"b": true})).both(json!({"b": "true"})));
    }

    #[test]
    fn and_or_not() {
        let filter = f(json!({"$or": [{"a": 1}, {"$and": [{"b": 2}, {"$not": {"c": 3}}]}]}));
        assert!(filter.both(json!({"a": 1})));
        assert!(filter.both(json!({"b": 2, "c": 4})));
        assert!(!filter.both(json!({"b": 2, "c": 3})));
        assert!(!filter.both(json!({})));
    }

    #[test]
    fn errors_name_their_path() {
        assert_eq!(
            parse_err(json!({"messageStatus": {"$within": ["A"]}})),
            "messageStatus.$within: unknown operator (expected $eq, $ne, $in, $nin, $gt, $gte, \
             $lt, $lte, $exists or $prefix)"
        );
        assert_eq!(
            parse_err(json!({"$and": [{"a": 1}, {"b": {"$in": 3}}]})),
            "$and[1].b.$in: must be an array of values"
        );
        assert_eq!(
            parse_err(json!({"$or": []})),
            "$or: must be a non-empty array of filters"
        );
        assert_eq!(
            parse_err(json!({"a": [1]})),
            "a: must be a string, number, boolean or null (or an object of operators)"
        );
        assert_eq!(
            parse_err(json!({"a": {"$gt": true}})),
            "a.$gt: must be a number or a string"
        );
        assert_eq!(
            parse_err(json!({"a..b": 1})),
            "a..b: a field path is names joined by dots, none of them empty"
        );
        assert_eq!(
            parse_err(json!("x")),
            ": must be an object of field paths and conditions"
        );
        assert!(parse_err(json!({"$where": 1})).starts_with("$where: unknown operator here"));
        let many: Map<String, Value> = (0..=MAX_CONDITIONS)
            .map(|i| (format!("f{i}"), json!(i)))
            .collect();
        assert!(parse_err(Value::Object(many)).contains("at most 64 conditions"));
        let mut deep = json!({"a": 1});
        for _ in 0..=MAX_DEPTH {
            deep = json!({ "$not": deep });
        }
        assert!(parse_err(deep).contains("nest at most"));
    }

    #[test]
    fn escaped_names_and_strings_and_repeated_names() {
        assert!(f(json!({"s": "a\"b\n"})).both(json!({"s": "a\"b\n"})));
        assert!(f(json!({"k\"ey.x": 1})).both(json!({"k\"ey": {"x": 1}})));
        // Escapes in the text: unescaped before comparing.
        assert!(
            f(json!({"a.b": {"$prefix": "é"}})).matches_json(r#"{"a":[{"b":"\u00e9t\u00e9"}]}"#)
        );
        assert!(f(json!({"s": "a\"b"})).matches_json(r#"{"s":"a\"b"}"#));
        // A repeated name: the last one counts in both evaluators.
        let filter = f(json!({"n": 2}));
        assert!(filter.matches_json(r#"{"n":1,"n":2}"#));
        assert!(!filter.matches_json(r#"{"n":2,"n":1}"#));
        assert!(f(json!({"o.n": 2})).matches_json(r#"{"o":{"n":1,"n":2}}"#));
    }

    #[test]
    fn an_empty_object_is_no_filter() {
        assert_eq!(Filter::parse(&json!({})), Ok(None));
    }

    #[test]
    fn jsonpath_text() {
        let filter = f(json!({
            "messageStatus": {"$in": ["FAILED", "FAILED_AD"]},
            "n": {"$gte": -2.5, "$ne": null},
            "$not": {"a.b": {"$exists": false}},
            "k\"ey": {"$prefix": "x\\y"}
        }));
        assert_eq!(
            filter.jsonpath(),
            "(exists($.\"messageStatus\" ? (@ == \"FAILED\" || @ == \"FAILED_AD\")) \
             && exists($.\"n\" ? (@ >= (-2.5))) && !exists($.\"n\" ? (@ == null)) \
             && !(!exists($.\"a\".\"b\")) && exists($.\"k\\\"ey\" ? (@ starts with \"x\\\\y\")))"
        );
    }

    #[test]
    fn stored_text_round_trips() {
        let filter = f(json!({"a": {"$in": [1, "x"]}}));
        let again = Filter::from_stored(&filter.to_stored());
        assert_eq!(again, Ok(Some(filter)));
    }
}
