//! Ingest's fast path: one pass over the body's bytes validates a request whose hooks serde_json
//! would store exactly as they were written, and copies each hook's text instead of building a
//! `Value` and writing it out again.
//!
//! "Exactly as written" means: integers only (serde_json rewrites `1.50`, `1e2`, `-0`), strings
//! escaped the way serde_json escapes them, no key repeated in an object (serde_json keeps the
//! last value). Whitespace is dropped, a misspelled alias renamed in place and a missing hookId
//! added at the end or in place of its `null`, as the full path does.
//!
//! It only ever answers "valid, and this is what to store" or "not sure": every error, and
//! whatever it does not handle (floats, other escapes, an alias beside its field, deep nesting, a
//! hook over the size limit), goes to the full path in `validate.rs`, which decides and words
//! every error. So results and messages are the full path's by construction; the tests below run
//! both paths on the same inputs and compare what they store.

use std::collections::HashSet;

use crate::catalogue::{Event, EventEntry, Product, catalogue};
use crate::dates;
use crate::ids::{generate_id, is_valid_hook_id};
use crate::schema::{Schema, Types};
use crate::validate::{IngestLimits, ValidatedBatch, ValidatedHook};

/// Deeper documents go to the full path (serde_json's own limit is 128).
const MAX_DEPTH: u32 = 64;
/// Objects with more keys go to the full path: repeated keys are looked for pair by pair.
const MAX_KEYS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    /// An integer written as serde_json writes it, within `i64`.
    Int,
    /// A string without escapes: its text is its value.
    Str,
    /// A string whose every escape is one serde_json writes the same way.
    EscapedStr,
    Array,
    Object,
}

/// One value of the body, in document order (a "tape"): an object's members follow it as a key
/// (a `Str`) and its value each; `next` is the index just past the value's last descendant.
#[derive(Debug, Clone, Copy)]
struct Node {
    kind: Kind,
    /// Where the value's text is in the body, quotes and brackets included.
    start: usize,
    end: usize,
    next: usize,
    /// No whitespace between the tokens of the value (always true of scalars).
    compact: bool,
}

/// The tape of a body and the body's text.
struct Doc<'a> {
    text: &'a str,
    tape: Vec<Node>,
}

/// Tapes above this many values are not kept for the next body.
const MAX_KEPT_TAPE: usize = 16 * 1024;

thread_local! {
    /// The tape of the last body checked on this thread, for the next one: allocating a few
    /// kilobytes per request showed in profiles (glibc tidies its free lists before every
    /// allocation that large).
    static SPARE_TAPE: std::cell::Cell<Vec<Node>> = const { std::cell::Cell::new(Vec::new()) };
}

impl Drop for Doc<'_> {
    fn drop(&mut self) {
        let mut tape = std::mem::take(&mut self.tape);
        if tape.capacity() <= MAX_KEPT_TAPE {
            tape.clear();
            SPARE_TAPE.set(tape);
        }
    }
}

/// An object's members on the tape, looked up by key.
struct Members<'d> {
    bytes: &'d [u8],
    tape: &'d [Node],
    /// The tape index of the first key, and the index just past the object.
    first: usize,
    end: usize,
    /// Where the next lookup starts: just after the last match, since producers mostly send
    /// fields in the catalogue's order, so that most lookups match at their first comparison.
    next: usize,
}

impl Members<'_> {
    /// The tape index of the value of `name`, if present.
    fn get(&mut self, name: &str) -> Option<usize> {
        let name = name.as_bytes();
        let found = self
            .find(self.next, self.end, name)
            .or_else(|| self.find(self.first, self.next, name))?;
        self.next = self.tape[found + 1].next;
        Some(found + 1)
    }

    /// The tape index of the key `name` among the keys from `from` to `to`.
    fn find(&self, from: usize, to: usize, name: &[u8]) -> Option<usize> {
        let mut i = from;
        while i < to {
            let key = &self.tape[i];
            if key.end - key.start == name.len() + 2
                && &self.bytes[key.start + 1..key.end - 1] == name
            {
                return Some(i);
            }
            i = self.tape[i + 1].next;
        }
        None
    }

    /// The tape indexes of the keys, in order.
    fn keys(&self) -> impl Iterator<Item = usize> + '_ {
        let mut i = self.first;
        std::iter::from_fn(move || {
            if i >= self.end {
                return None;
            }
            let key = i;
            i = self.tape[i + 1].next;
            Some(key)
        })
    }
}

/// Validates `body` if it is canonical and valid; `None` sends it to the full path.
pub(crate) fn validate_canonical(body: &[u8], limits: &IngestLimits) -> Option<ValidatedBatch> {
    let text = std::str::from_utf8(body).ok()?;
    let doc = Doc {
        text,
        tape: Scanner::scan(body, SPARE_TAPE.take())?,
    };
    if doc.tape[0].kind != Kind::Object {
        return None;
    }
    let mut top = doc.members(0);
    let product = Product::parse(doc.plain_str(top.get("productName")?)?)?;
    let event = Event::parse(doc.plain_str(top.get("event")?)?)?;
    let entry = catalogue().event(product, event)?;
    if !entry.schema.fast || !product.is_ingestible() {
        return None;
    }
    let hooks = top.get("hooks")?;
    if doc.tape[hooks].kind != Kind::Array {
        return None;
    }
    let mut validated = Vec::new();
    for hook in doc.elements(hooks) {
        if validated.len() == limits.max_hooks {
            return None;
        }
        validated.push(doc.hook(hook, entry, limits)?);
    }
    if validated.is_empty() {
        return None;
    }
    let input_ids: Vec<String> = validated.iter().map(|h| h.hook_id.clone()).collect();
    // The same hookId twice in one request is one hook: the first occurrence is kept.
    if validated.len() > 1 {
        let mut seen: HashSet<&str> = HashSet::with_capacity(input_ids.len());
        let first: Vec<bool> = input_ids.iter().map(|id| seen.insert(id)).collect();
        validated = validated
            .into_iter()
            .zip(first)
            .filter_map(|(hook, first)| first.then_some(hook))
            .collect();
    }
    Some(ValidatedBatch {
        product,
        event,
        hooks: validated,
        input_ids,
    })
}

impl<'a> Doc<'a> {
    fn raw(&self, index: usize) -> &'a str {
        let node = &self.tape[index];
        &self.text[node.start..node.end]
    }

    /// A string's text between its quotes: its value when it has no escapes (keys never have).
    fn inner(&self, index: usize) -> &'a str {
        let raw = self.raw(index);
        &raw[1..raw.len() - 1]
    }

    /// A string's value, if it has no escapes.
    fn plain_str(&self, index: usize) -> Option<&'a str> {
        (self.tape[index].kind == Kind::Str).then(|| self.inner(index))
    }

    /// An object's members, to look up by key.
    fn members(&self, object: usize) -> Members<'_> {
        Members {
            bytes: self.text.as_bytes(),
            tape: &self.tape,
            first: object + 1,
            end: self.tape[object].next,
            next: object + 1,
        }
    }

    /// The indexes of an array's elements.
    fn elements(&self, array: usize) -> impl Iterator<Item = usize> + '_ {
        let end = self.tape[array].next;
        let mut i = array + 1;
        std::iter::from_fn(move || {
            if i >= end {
                return None;
            }
            let element = i;
            i = self.tape[i].next;
            Some(element)
        })
    }

    /// One hook: checked against its event's schema, normalised, its stored JSON.
    fn hook(
        &self,
        hook: usize,
        entry: &EventEntry,
        limits: &IngestLimits,
    ) -> Option<ValidatedHook> {
        if self.tape[hook].kind != Kind::Object {
            return None;
        }
        let mut members = self.members(hook);
        let id_value = members.get("hookId");
        let given = match id_value.map(|v| self.tape[v].kind) {
            None | Some(Kind::Null) => None,
            Some(Kind::Str) => Some(self.inner(id_value?)).filter(|id| is_valid_hook_id(id)),
            Some(_) => return None,
        };
        if given.is_none() && id_value.is_some_and(|v| self.tape[v].kind != Kind::Null) {
            return None;
        }
        self.check_members(&mut members, &entry.schema)?;
        // Aliases are renamed where they stand; an alias beside its field goes to the full path.
        let mut renames: Vec<(usize, &str)> = Vec::new();
        for (alias, name) in entry.aliases() {
            if let Some(value) = members.get(alias) {
                if renames.iter().any(|(_, n)| n == name) || members.get(name).is_some() {
                    return None;
                }
                renames.push((value - 1, name));
            }
        }
        let (hook_id, id_generated) = match given {
            Some(id) => (id.to_owned(), false),
            None => (generate_id(), true),
        };
        let json = if given.is_some() && renames.is_empty() && self.tape[hook].compact {
            self.raw(hook).to_owned()
        } else {
            self.write_hook(hook, &members, &hook_id, id_value, &renames)
        };
        if json.len() > limits.max_hook_bytes {
            return None;
        }
        Some(ValidatedHook {
            hook_id,
            json,
            id_generated,
        })
    }

    /// A hook's compact JSON with its aliases renamed and its generated id in place of a `null`
    /// or, when absent, last (where serde_json's map inserts it).
    fn write_hook(
        &self,
        hook: usize,
        members: &Members<'_>,
        hook_id: &str,
        id_value: Option<usize>,
        renames: &[(usize, &str)],
    ) -> String {
        let node = self.tape[hook];
        let mut json = String::with_capacity(node.end - node.start + 48);
        json.push('{');
        let mut first = true;
        for key in members.keys() {
            let value = key + 1;
            if !first {
                json.push(',');
            }
            first = false;
            match renames.iter().find(|(k, _)| *k == key) {
                Some((_, name)) => {
                    json.push('"');
                    json.push_str(name);
                    json.push('"');
                }
                None => json.push_str(self.raw(key)),
            }
            json.push(':');
            if Some(value) == id_value && self.tape[value].kind == Kind::Null {
                // Generated ids are letters and digits: nothing to escape.
                json.push('"');
                json.push_str(hook_id);
                json.push('"');
            } else {
                push_compact(&mut json, self.raw(value), self.tape[value].compact);
            }
        }
        if id_value.is_none() {
            if !first {
                json.push(',');
            }
            json.push_str("\"hookId\":\"");
            json.push_str(hook_id);
            json.push('"');
        }
        json.push('}');
        json
    }

    /// Whether an object's known fields follow `schema` (the full path's `validate_object`).
    fn check_object(&self, object: usize, schema: &Schema) -> Option<()> {
        self.check_members(&mut self.members(object), schema)
    }

    fn check_members(&self, members: &mut Members<'_>, schema: &Schema) -> Option<()> {
        for property in &schema.properties {
            if property.name == "hookId" {
                continue;
            }
            let value = members
                .get(&property.name)
                .or_else(|| property.aliases.iter().find_map(|alias| members.get(alias)));
            match value {
                None => {
                    if property.required {
                        return None;
                    }
                }
                Some(v) if self.tape[v].kind == Kind::Null => {
                    if property.required || !property.schema.allows_null() {
                        return None;
                    }
                }
                Some(v) => self.check_value(v, &property.schema)?,
            }
        }
        Some(())
    }

    fn check_value(&self, value: usize, schema: &Schema) -> Option<()> {
        let kind = self.tape[value].kind;
        let types = schema.types;
        let ok = match kind {
            Kind::Str | Kind::EscapedStr => {
                types.has(Types::STRING) && self.string_ok(value, schema)
            }
            Kind::Int => types.has(Types::INTEGER),
            Kind::Bool => types.has(Types::BOOLEAN),
            Kind::Null => types.has(Types::NULL),
            Kind::Object => {
                return types
                    .has(Types::OBJECT)
                    .then_some(())
                    .and_then(|()| self.check_object(value, schema));
            }
            Kind::Array => {
                let items = schema.items.as_deref()?;
                if !types.has(Types::ARRAY) {
                    return None;
                }
                for item in self.elements(value) {
                    if self.tape[item].kind != Kind::Object {
                        return None;
                    }
                    self.check_object(item, items)?;
                }
                true
            }
        };
        ok.then_some(())
    }

    /// A string within the schema's length, list and date format. Escaped strings pass only where
    /// their raw length already proves the length and nothing else is checked.
    fn string_ok(&self, value: usize, schema: &Schema) -> bool {
        match self.tape[value].kind {
            Kind::Str => {
                let s = self.inner(value);
                if let Some(max) = schema.max_chars
                    && s.len() > max
                    && s.chars().count() > max
                {
                    return false;
                }
                schema
                    .str_values
                    .as_ref()
                    .is_none_or(|values| values.iter().any(|v| v == s))
                    && schema.date.is_none_or(|format| dates::matches(format, s))
            }
            Kind::EscapedStr => {
                // Each escape stands for one character, so the text is at most as long as its
                // escaped form.
                let escaped_len = self.raw(value).len() - 2;
                schema.str_values.is_none()
                    && schema.date.is_none()
                    && schema.max_chars.is_none_or(|max| escaped_len <= max)
            }
            _ => false,
        }
    }
}

/// Appends `raw` (valid JSON) without the whitespace between its tokens.
fn push_compact(out: &mut String, raw: &str, compact: bool) {
    if compact {
        out.push_str(raw);
        return;
    }
    let bytes = raw.as_bytes();
    let (mut in_string, mut escaped, mut from) = (false, false, 0);
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            // Cuts fall on ASCII bytes, so on character boundaries.
            out.push_str(&raw[from..i]);
            from = i + 1;
        }
    }
    out.push_str(&raw[from..]);
}

/// Builds the tape of a body, or gives up (`None`) on anything invalid or not canonical.
struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    tape: Vec<Node>,
    /// Whitespace bytes skipped so far: a container is compact if this did not move inside it.
    whitespace: usize,
    /// The keys of the objects being scanned, innermost last, to find a repeated one: their
    /// [`signature`] and their text.
    keys: Vec<(u64, &'a [u8])>,
}

impl<'a> Scanner<'a> {
    fn scan(bytes: &'a [u8], mut tape: Vec<Node>) -> Option<Vec<Node>> {
        tape.clear();
        // About one value per eight bytes of a typical hook.
        tape.reserve(bytes.len() / 8 + 16);
        let mut scanner = Scanner {
            bytes,
            pos: 0,
            tape,
            whitespace: 0,
            keys: Vec::with_capacity(16),
        };
        scanner.skip_whitespace();
        scanner.value(0)?;
        scanner.skip_whitespace();
        (scanner.pos == bytes.len()).then_some(scanner.tape)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
            self.whitespace += 1;
        }
    }

    fn push(&mut self, kind: Kind, start: usize) -> usize {
        let index = self.tape.len();
        self.tape.push(Node {
            kind,
            start,
            end: self.pos,
            next: index + 1,
            compact: true,
        });
        index
    }

    fn value(&mut self, depth: u32) -> Option<()> {
        let start = self.pos;
        match self.peek()? {
            b'{' | b'[' => return self.container(depth),
            b'"' => {
                let kind = self.string()?;
                self.push(kind, start);
            }
            b't' => self.literal(b"true", Kind::Bool)?,
            b'f' => self.literal(b"false", Kind::Bool)?,
            b'n' => self.literal(b"null", Kind::Null)?,
            b'-' | b'0'..=b'9' => self.integer()?,
            _ => return None,
        }
        Some(())
    }

    fn literal(&mut self, word: &[u8], kind: Kind) -> Option<()> {
        let start = self.pos;
        if !self.bytes[start..].starts_with(word) {
            return None;
        }
        self.pos += word.len();
        self.push(kind, start);
        Some(())
    }

    fn integer(&mut self) -> Option<()> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let digits = self.pos;
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => {
                while let Some(b'0'..=b'9') = self.peek() {
                    self.pos += 1;
                }
            }
            _ => return None,
        }
        // Fractions, exponents, leading zeros and -0 are written differently by serde_json (or
        // refused); 18 digits always fit an i64.
        if self.pos - digits > 18
            || matches!(self.peek(), Some(b'.' | b'e' | b'E' | b'0'..=b'9'))
            || &self.bytes[start..self.pos] == b"-0"
        {
            return None;
        }
        self.push(Kind::Int, start);
        Some(())
    }

    /// A string from its opening quote: `Str` without escapes, `EscapedStr` when every escape is
    /// one serde_json writes the same way (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, and `\u00xx`
    /// in lowercase for the other control characters).
    fn string(&mut self) -> Option<Kind> {
        self.pos += 1;
        let mut kind = Kind::Str;
        loop {
            // Eight bytes at a time, straight to the first one that needs a look.
            while let Some(chunk) = self.bytes.get(self.pos..self.pos + 8) {
                let found = needs_a_look(u64::from_le_bytes(chunk.try_into().ok()?));
                if found != 0 {
                    self.pos += (found.trailing_zeros() / 8) as usize;
                    break;
                }
                self.pos += 8;
            }
            let b = self.peek()?;
            self.pos += 1;
            match b {
                b'"' => return Some(kind),
                b'\\' => {
                    kind = Kind::EscapedStr;
                    let e = self.peek()?;
                    self.pos += 1;
                    match e {
                        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            let hex = self.bytes.get(self.pos..self.pos + 4)?;
                            self.pos += 4;
                            let control = hex[..2] == *b"00"
                                && matches!(hex[2], b'0' | b'1')
                                && matches!(hex[3], b'0'..=b'9' | b'a'..=b'f');
                            let short_form =
                                matches!(&hex[2..], b"08" | b"09" | b"0a" | b"0c" | b"0d");
                            if !control || short_form {
                                return None;
                            }
                        }
                        _ => return None,
                    }
                }
                // serde_json refuses raw control characters in strings.
                0x00..=0x1f => return None,
                _ => {}
            }
        }
    }

    fn container(&mut self, depth: u32) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        let start = self.pos;
        let whitespace_before = self.whitespace;
        let object = self.peek() == Some(b'{');
        let close = if object { b'}' } else { b']' };
        let index = self.push(if object { Kind::Object } else { Kind::Array }, start);
        self.pos += 1;
        self.skip_whitespace();
        let keys_before = self.keys.len();
        if self.peek() == Some(close) {
            self.pos += 1;
        } else {
            loop {
                if object {
                    // Keys with escapes could spell a known or a repeated key: full path.
                    let key_start = self.pos;
                    if self.peek() != Some(b'"') || self.string()? != Kind::Str {
                        return None;
                    }
                    self.push(Kind::Str, key_start);
                    let key = &self.bytes[key_start + 1..self.pos - 1];
                    let sig = signature(key);
                    let earlier = &self.keys[keys_before..];
                    if earlier.len() == MAX_KEYS
                        || earlier.iter().any(|&(s, k)| s == sig && k == key)
                    {
                        return None;
                    }
                    self.keys.push((sig, key));
                    self.skip_whitespace();
                    if self.peek() != Some(b':') {
                        return None;
                    }
                    self.pos += 1;
                    self.skip_whitespace();
                }
                self.value(depth + 1)?;
                self.skip_whitespace();
                match self.peek()? {
                    b',' => {
                        self.pos += 1;
                        self.skip_whitespace();
                    }
                    b if b == close => {
                        self.pos += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        let next = self.tape.len();
        let node = &mut self.tape[index];
        node.end = self.pos;
        node.next = next;
        node.compact = self.whitespace == whitespace_before;
        self.keys.truncate(keys_before);
        Some(())
    }
}

/// A key's length and its first and last eight bytes, mixed: equal keys have equal signatures,
/// and different keys of one object almost never do, so repeated keys are looked for by
/// comparing numbers.
fn signature(key: &[u8]) -> u64 {
    let word = |bytes: &[u8]| {
        let mut padded = [0u8; 8];
        padded[..bytes.len()].copy_from_slice(bytes);
        u64::from_le_bytes(padded)
    };
    let n = key.len().min(8);
    word(&key[..n]) ^ word(&key[key.len() - n..]).rotate_left(29) ^ key.len() as u64
}

/// Which of the eight bytes of `word` (little-endian) are a quote, a backslash or a control
/// character: zero if none; else the lowest set bit is the high bit of the first such byte (the
/// classic tests for a zero byte and for a byte below a bound: a borrow may also flag bytes after
/// the first match, never before it).
fn needs_a_look(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGHS;
    below(word ^ (ONES * u64::from(b'"')), 1)
        | below(word ^ (ONES * u64::from(b'\\')), 1)
        | below(word, 0x20)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::validate_parsed;
    use crate::{ValidationErrorKind, sample_hook};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    const LIMITS: IngestLimits = IngestLimits {
        max_hooks: 1000,
        max_hook_bytes: 64 * 1024,
    };

    /// Both paths on one body: whenever the fast path answers, the full path answers the same
    /// (generated ids aside). Returns whether the fast path answered.
    fn same_as_full_path(body: &[u8], limits: &IngestLimits) -> bool {
        let Some(fast) = validate_canonical(body, limits) else {
            return false;
        };
        let full = match validate_parsed(body, limits) {
            Ok(full) => full,
            Err(e) => panic!(
                "the fast path accepted what the full path refuses ({e}):\n{}",
                String::from_utf8_lossy(body)
            ),
        };
        assert_eq!(fast.product, full.product);
        assert_eq!(fast.event, full.event);
        assert_eq!(fast.input_ids.len(), full.input_ids.len());
        assert_eq!(fast.hooks.len(), full.hooks.len());
        for (f, s) in fast.hooks.iter().zip(&full.hooks) {
            assert_eq!(f.id_generated, s.id_generated);
            let json = if s.id_generated {
                s.json.replace(&s.hook_id, &f.hook_id)
            } else {
                assert_eq!(f.hook_id, s.hook_id);
                s.json.clone()
            };
            assert_eq!(f.json, json, "body: {}", String::from_utf8_lossy(body));
        }
        for (f, s) in fast.input_ids.iter().zip(&full.input_ids) {
            if !fast.hooks.iter().any(|h| h.id_generated && &h.hook_id == f) {
                assert_eq!(f, s);
            }
        }
        true
    }

    fn body(product: &str, event: &str, hooks: &[Value]) -> Vec<u8> {
        serde_json::to_vec(&json!({"productName": product, "event": event, "hooks": hooks}))
            .expect("serialise")
    }

    #[test]
    fn every_sample_takes_the_fast_path_compact_or_pretty() {
        // Operational events are never ingested: no ingest path to compare.
        for product in Product::ALL.into_iter().filter(|p| p.is_ingestible()) {
            for &event in product.events() {
                let hooks = vec![sample_hook(product, event), sample_hook(product, event)];
                let compact = body(product.as_str(), event.as_str(), &hooks);
                assert!(same_as_full_path(&compact, &LIMITS), "{product} {event}");
                let pretty = serde_json::to_vec_pretty(&json!({
                    "productName": product.as_str(), "event": event.as_str(), "hooks": hooks,
                }))
                .expect("serialise");
                assert!(
                    same_as_full_path(&pretty, &LIMITS),
                    "{product} {event} pretty"
                );
            }
        }
    }

    #[test]
    fn normalisations_match_the_full_path() {
        let cases: &[&[u8]] = &[
            // No hookId, a null hookId, an empty hook list's neighbour fields ignored.
            br#"{"productName":"sms","event":"UNSUBSCRIBE","hooks":[{"recipientNo":"1"},{"hookId":null,"recipientNo":"2"}],"x":[1,{"y":null}]}"#,
            // Aliases renamed in place, whitespace dropped, escapes kept.
            br#"{ "productName" : "SMS", "event": "MESSAGE_RESULT_UPDATE", "hooks": [ {"requestId": "r\"\\\n\u001f", "recipientSeq": -3, "messageStatus": "FAILED", "recipientGropuingKey": "k", "_link": {"self": {"href": "h"}}, "z": [ true, false, null, 0 ] } ] }"#,
            // Repeated hookIds keep the first.
            br#"{"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[{"hookId":"a","countryCode":"1"},{"hookId":"a","countryCode":"2"},{"countryCode":"3"}]}"#,
            // Unicode kept verbatim.
            "{\"productName\":\"SMS\",\"event\":\"CONVERSION_BLOCK\",\"hooks\":[{\"countryCode\":\"한국 🎉\",\"n\":\"\u{2028}\"}]}".as_bytes(),
        ];
        for body in cases {
            assert!(
                same_as_full_path(body, &LIMITS),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn what_serde_json_would_rewrite_goes_to_the_full_path() {
        let cases: &[&[u8]] = &[
            br#"{"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[{"countryCode":"1","n":1.0}]}"#,
            br#"{"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[{"countryCode":"1","n":-0}]}"#,
            br#"{"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[{"countryCode":"1","n":1e2}]}"#,
            br#"{"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[{"countryCode":"1","n":12345678901234567890}]}"#,
            br#"{"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[{"countryCode":"\/"}]}"#,
            br#"{"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[{"countryCode":"\u0041"}]}"#,
            br#"{"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[{"countryCode":"\u001F"}]}"#,
            br#"{"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[{"countryCode":"1","a":1,"a":2}]}"#,
            br#"{"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[{"countryCode":"1","h\u0069":1}]}"#,
            br#"{"productName":"SMS","event":"MESSAGE_RESULT_UPDATE","hooks":[{"requestId":"r","recipientSeq":1,"messageStatus":"FAILED","recipientGroupingKey":"k","recipientGropuingKey":"k2"}]}"#,
        ];
        for body in cases {
            assert!(
                validate_canonical(body, &LIMITS).is_none(),
                "{}",
                String::from_utf8_lossy(body)
            );
            assert!(
                validate_parsed(body, &LIMITS).is_ok(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn errors_and_limits_go_to_the_full_path() {
        let cases: &[&[u8]] = &[
            b"",
            b"[]",
            b"{\"productName\":\"SMS\"",
            br#"{"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[]}"#,
            br#"{"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[{}]}"#,
            br#"{"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[{"countryCode":1}]}"#,
            br#"{"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[{"countryCode":"1","hookId":"bad id"}]}"#,
            br#"{"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[{"countryCode":"1"}]} x"#,
            br#"{"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[{"countryCode":"1",}]}"#,
            br#"{"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[{"countryCode":"1","blockedDateTime":"2024"}]}"#,
            br#"{"productName":"SMS","event":"TEMPLATE_STATUS_UPDATE","hooks":[{"countryCode":"1"}]}"#,
            br#"{"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[{"countryCode":"1","x":01}]}"#,
            br#"{"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[{"countryCode":"a	b"}]}"#,
        ];
        for body in cases {
            assert!(
                validate_canonical(body, &LIMITS).is_none(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let two = br#"{"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[{"countryCode":"1"},{"countryCode":"2"}]}"#;
        let one_hook = IngestLimits {
            max_hooks: 1,
            ..LIMITS
        };
        assert!(validate_canonical(two, &one_hook).is_none());
        assert_eq!(
            validate_parsed(two, &one_hook)
                .map(|_| ())
                .unwrap_err()
                .kind,
            ValidationErrorKind::TooManyHooks
        );
        let tiny = IngestLimits {
            max_hook_bytes: 20,
            ..LIMITS
        };
        assert!(validate_canonical(two, &tiny).is_none());
    }

    /// A JSON scalar: mostly what the fast path takes, sometimes what serde_json would rewrite
    /// or refuse.
    fn arb_scalar() -> impl Strategy<Value = String> {
        let rare = prop_oneof![
            Just("-0"),
            Just("1.5"),
            Just("1e3"),
            Just("007"),
            Just(r#""\u0041""#),
            Just(r#""\/""#),
            Just(r#""\u001F""#),
            Just(r#""\x""#),
            Just("\"raw\ttab\""),
        ]
        .prop_map(str::to_owned);
        prop_oneof![
            2 => Just("null".to_owned()),
            2 => Just("true".to_owned()),
            1 => Just("false".to_owned()),
            3 => any::<i64>().prop_map(|n| n.to_string()),
            1 => any::<u64>().prop_map(|n| n.to_string()),
            6 => "[a-z\\\\\"/\t\u{1f}é한 ]{0,6}"
                .prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
            2 => prop_oneof![
                Just(r#""\u001f""#),
                Just(r#""\n\t\"""#),
                Just(r#""2024-04-29T20:58:02""#),
                Just(r#""COMPLETED""#),
            ]
            .prop_map(str::to_owned),
            1 => rare,
        ]
    }

    fn arb_json(depth: u32) -> BoxedStrategy<String> {
        if depth == 0 {
            return arb_scalar().boxed();
        }
        let key = prop_oneof![
            Just("self"),
            Just("href"),
            Just("hookId"),
            Just("x"),
            Just("y"),
            Just("z"),
        ];
        prop_oneof![
            4 => arb_scalar(),
            1 => prop::collection::vec(arb_json(depth - 1), 0..3)
                .prop_map(|v| format!("[{}]", v.join(","))),
            1 => prop::collection::vec((key, arb_json(depth - 1)), 0..3).prop_map(|members| {
                let members: Vec<String> =
                    members.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
        .boxed()
    }

    /// A hook of SMS MESSAGE_RESULT_UPDATE: mostly valid, with unknown fields of any shape.
    fn arb_hook() -> impl Strategy<Value = String> {
        let id = prop_oneof![
            4 => Just(None),
            2 => Just(Some("null".to_owned())),
            4 => Just(Some("\"h-1\"".to_owned())),
            2 => Just(Some("\"h-2\"".to_owned())),
            1 => Just(Some("\"bad id\"".to_owned())),
            1 => Just(Some("7".to_owned())),
        ];
        let status =
            prop_oneof![8 => Just("\"COMPLETED\""), 1 => Just("\"NOPE\""), 1 => Just("null")];
        let seq =
            prop_oneof![8 => Just("1"), 2 => Just("-1"), 1 => Just("1.0"), 1 => Just("\"1\"")];
        let date = prop_oneof![
            4 => Just(String::new()),
            4 => Just(r#","requestDate":"2024-04-29T20:58:02""#.to_owned()),
            1 => Just(r#","requestDate":"2024-04-29 20:58:02""#.to_owned()),
            1 => Just(r#","requestDate":null"#.to_owned()),
        ];
        let links = prop_oneof![
            4 => Just(String::new()),
            3 => Just(r#","_links":{"self":{"href":"https://x/y"}}"#.to_owned()),
            3 => Just(r#","_link":{"self":{"href":"https://x/y"}}"#.to_owned()),
            1 => Just(r#","_link":{"self":{"href":7}}"#.to_owned()),
            1 => Just(r#","_links":{"self":{"href":"a"}},"_link":{"self":{"href":"b"}}"#.to_owned()),
        ];
        let alias = prop_oneof![
            4 => Just(String::new()),
            3 => Just(r#","recipientGropuingKey":"k""#.to_owned()),
            1 => Just(r#","recipientGroupingKey":"g","recipientGropuingKey":"k""#.to_owned()),
            1 => Just(r#","recipientGropuingKey":5"#.to_owned()),
        ];
        let extra = prop::collection::vec(("[a-z]{1,2}", arb_json(2)), 0..3);
        (id, status, seq, date, links, alias, extra).prop_map(
            |(id, status, seq, date, links, alias, extra)| {
                let mut hook = format!(
                    r#"{{"requestId":"r","recipientSeq":{seq},"messageStatus":{status}{date}{links}{alias}"#
                );
                for (k, v) in extra {
                    hook.push_str(&format!(",\"{k}\":{v}"));
                }
                if let Some(id) = id {
                    hook.push_str(&format!(",\"hookId\":{id}"));
                }
                hook.push('}');
                hook
            },
        )
    }

    /// Whitespace between tokens (outside strings), to check compaction.
    fn spaced(json: &str) -> String {
        let mut out = String::new();
        let (mut in_string, mut escaped) = (false, false);
        for c in json.chars() {
            out.push(c);
            if in_string {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => in_string = false,
                    _ => {}
                }
            } else if c == '"' {
                in_string = true;
            } else if matches!(c, ',' | ':' | '{' | '[') {
                out.push_str(" \n");
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn the_fast_path_agrees_with_the_full_path(
            hooks in prop::collection::vec(arb_hook(), 1..3),
            pretty in any::<bool>(),
            product in prop_oneof![4 => Just("SMS"), 2 => Just("sms"), 1 => Just("KakaoTalk Bizmessage")],
        ) {
            let body = format!(
                r#"{{"productName":"{product}","event":"MESSAGE_RESULT_UPDATE","hooks":[{}]}}"#,
                hooks.join(",")
            );
            let body = if pretty { spaced(&body) } else { body };
            same_as_full_path(body.as_bytes(), &LIMITS);
        }
    }

    proptest! {
        #[test]
        fn the_word_scan_stops_where_the_byte_scan_does(bytes in any::<[u8; 8]>()) {
            let naive = bytes.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
            let found = needs_a_look(u64::from_le_bytes(bytes));
            let first = (found != 0).then(|| (found.trailing_zeros() / 8) as usize);
            prop_assert_eq!(first, naive);
        }
    }

    #[test]
    fn most_generated_requests_take_the_fast_path() {
        // Guards against a fast path that gives up on everything (and so proves nothing above).
        let body = br#"{"productName":"SMS","event":"MESSAGE_RESULT_UPDATE","hooks":[{"requestId":"r","recipientSeq":1,"messageStatus":"COMPLETED","x":[1,{"y":"z"}]}]}"#;
        assert!(same_as_full_path(body, &LIMITS));
    }
}
