//! The event catalogue: which products exist, which events each emits, and each event's hook schema,
//! aliases, example and description. It is data: the built-in part is `catalogue/builtin.json`
//! (compiled into the binary), and an operator may add products and events from files of the same
//! shape ([`Catalogue::with_files`]). Each event's schema is compiled once, when the catalogue is
//! built; ingest validation, samples, the typed models' checks, the server's lists and its
//! published `GET /v1/catalogue` all read from here.

use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::schema::{self, Schema};

/// The built-in catalogue, as published (without `ingestible`, which defaults to true).
const BUILTIN: &str = include_str!("catalogue/builtin.json");
/// How the built-in catalogue is named in errors.
const BUILTIN_NAME: &str = "the built-in catalogue";

/// A product (service) of the messaging platform that emits webhook events: one of the
/// catalogue's products, held by its canonical name.
///
/// Serialised as its wire name (`"SMS"`, `"KakaoTalk Bizmessage"`); deserialised ASCII
/// case-insensitively, like [`Product::parse`], because producers send `"Sms"` too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Product(&'static str);

#[allow(non_upper_case_globals)]
impl Product {
    /// The SMS service (`"SMS"`).
    pub const Sms: Product = Product("SMS");
    /// The KakaoTalk Bizmessage service (`"KakaoTalk Bizmessage"`).
    pub const KakaoTalkBizmessage: Product = Product("KakaoTalk Bizmessage");
    /// The Email service (`"Email"`).
    pub const Email: Product = Product("Email");
    /// hookline's own operational events about an app key's webhook configs (`"hookline"`):
    /// produced by hookline, never ingested.
    pub const Hookline: Product = Product("hookline");

    /// The built-in products that have typed models in this crate, in the catalogue's order.
    /// Every product, operators' included: [`Product::all`].
    pub const ALL: [Product; 4] = [
        Product::Sms,
        Product::KakaoTalkBizmessage,
        Product::Email,
        Product::Hookline,
    ];

    /// Every product of the installed catalogue, in its order.
    pub fn all() -> impl Iterator<Item = Product> {
        catalogue().products.iter().map(|p| p.product)
    }

    /// The canonical wire name, e.g. `"SMS"` or `"KakaoTalk Bizmessage"`.
    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// Parses a product name in any ASCII letter case (`"Sms"`, `"kakaotalk bizmessage"`).
    ///
    /// Surrounding whitespace is not trimmed: `" SMS"` is not a product name.
    pub fn parse(s: &str) -> Option<Product> {
        catalogue().product(s).map(|p| p.product)
    }

    /// The events this product emits, in the catalogue's order (empty for a product the installed
    /// catalogue does not have).
    pub fn events(self) -> &'static [Event] {
        match catalogue().product(self.0) {
            Some(p) => &p.event_names,
            None => &[],
        }
    }

    /// Whether producers may send this product's events to ingest.
    pub fn is_ingestible(self) -> bool {
        catalogue().product(self.0).is_some_and(|p| p.ingestible)
    }
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Product {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Product {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Borrowing would fail for strings with escapes, so take an owned-or-borrowed Cow.
        let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Product::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "unknown product {s:?} (expected {})",
                product_list()
            ))
        })
    }
}

/// The products' names for messages: `SMS or KakaoTalk Bizmessage or Email`.
pub fn product_list() -> String {
    let names: Vec<&str> = Product::all().map(Product::as_str).collect();
    names.join(" or ")
}

/// A webhook event name: one the catalogue has for at least one product. Which products emit it:
/// [`Product::events`].
///
/// Serialised and deserialised as its exact wire name, e.g. `"MESSAGE_RESULT_UPDATE"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Event(&'static str);

#[allow(non_upper_case_globals)]
impl Event {
    /// KakaoTalk Bizmessage: a template's status or inquiry changed.
    pub const TemplateStatusUpdate: Event = Event("TEMPLATE_STATUS_UPDATE");
    /// SMS, KakaoTalk Bizmessage and Email: a message's sending result changed.
    pub const MessageResultUpdate: Event = Event("MESSAGE_RESULT_UPDATE");
    /// SMS: a recipient number was registered for ad-message unsubscription; Email: an address.
    pub const Unsubscribe: Event = Event("UNSUBSCRIBE");
    /// SMS: a country was blocked because of its conversion rate.
    pub const ConversionBlock: Event = Event("CONVERSION_BLOCK");
    /// SMS: an international delivery receipt (DLR) arrived.
    pub const InternationalDeliveryReceipt: Event = Event("INTERNATIONAL_DELIVERY_RECEIPT");
    /// hookline: one of the app key's configs became FAILING.
    pub const WebhookConfigFailing: Event = Event("WEBHOOK_CONFIG_FAILING");
    /// hookline: one of the app key's configs became DISABLED.
    pub const WebhookConfigDisabled: Event = Event("WEBHOOK_CONFIG_DISABLED");
    /// hookline: a FAILING or DISABLED config of the app key is HEALTHY again.
    pub const WebhookConfigRecovered: Event = Event("WEBHOOK_CONFIG_RECOVERED");
    /// hookline: a delivery ended FAILED or EXPIRED.
    pub const DeliveryFailed: Event = Event("DELIVERY_FAILED");

    /// Every event name of the installed catalogue, each once, in the catalogue's order.
    pub fn all() -> &'static [Event] {
        &catalogue().event_names
    }

    /// The wire name, e.g. `"TEMPLATE_STATUS_UPDATE"`.
    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// Parses an exact wire name (event names are case-sensitive, unlike product names).
    pub fn parse(s: &str) -> Option<Event> {
        catalogue().event_names.iter().copied().find(|e| e.0 == s)
    }

    /// Whether product `p` emits this event.
    pub fn is_valid_for(self, p: Product) -> bool {
        p.events().contains(&self)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Event::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format_args!("unknown event {s:?}")))
    }
}

/// Most characters of a string field that holds an id, a code, a number, a name, a date or an
/// enumerated value (every built-in string field unless said otherwise).
pub const MAX_FIELD_CHARS: usize = 1024;
/// Most characters of a string field that holds a link or a file path (`_links.self.href`,
/// `comments[].attachment[].filePath`).
pub const MAX_LINK_CHARS: usize = 4096;

/// A catalogue: products, their events, each event's compiled schema.
#[derive(Debug)]
pub struct Catalogue {
    products: Vec<ProductEntry>,
    /// Every event name once, in order of first appearance.
    event_names: Vec<Event>,
}

/// One product of a catalogue.
#[derive(Debug)]
pub struct ProductEntry {
    product: Product,
    ingestible: bool,
    builtin: bool,
    events: Vec<EventEntry>,
    event_names: Vec<Event>,
}

/// One event of a product: its description, schema, aliases and example.
#[derive(Debug)]
pub struct EventEntry {
    event: Event,
    description: String,
    /// Accepted input name → delivered name (top-level fields).
    aliases: Vec<(String, String)>,
    /// The schema as written in the catalogue (the compiled form is `schema`).
    source_schema: Value,
    /// The schema as published: equivalent to what ingest applies (`schema::publish`).
    hook_schema: Value,
    example: Value,
    builtin: bool,
    pub(crate) schema: Schema,
}

impl ProductEntry {
    /// The product.
    pub fn product(&self) -> Product {
        self.product
    }
    /// Whether producers may send its events to ingest.
    pub fn ingestible(&self) -> bool {
        self.ingestible
    }
    /// Whether it is one of the built-in products.
    pub fn is_builtin(&self) -> bool {
        self.builtin
    }
    /// Its events, in the catalogue's order.
    pub fn events(&self) -> &[EventEntry] {
        &self.events
    }
}

impl EventEntry {
    /// The event name.
    pub fn event(&self) -> Event {
        self.event
    }
    /// What the event means, for people.
    pub fn description(&self) -> &str {
        &self.description
    }
    /// Each accepted input field name with the name it is delivered under.
    pub fn aliases(&self) -> &[(String, String)] {
        &self.aliases
    }
    /// The published JSON Schema (draft 2020-12) of one hook of this event.
    pub fn hook_schema(&self) -> &Value {
        &self.hook_schema
    }
    /// A hook of this event as delivered (valid against [`EventEntry::hook_schema`]).
    pub fn example(&self) -> &Value {
        &self.example
    }
    /// Whether the event is built in (not added by an operator's file).
    pub fn is_builtin(&self) -> bool {
        self.builtin
    }
    /// The published entry: `{"event", "description", "hookSchema", "aliases", "example"}`.
    pub fn to_json(&self) -> Value {
        let aliases: Map<String, Value> = self
            .aliases
            .iter()
            .map(|(from, to)| (from.clone(), Value::String(to.clone())))
            .collect();
        serde_json::json!({
            "event": self.event.as_str(),
            "description": self.description,
            "hookSchema": self.hook_schema,
            "aliases": aliases,
            "example": self.example,
        })
    }
    /// The schema as its file gave it.
    pub fn source_schema(&self) -> &Value {
        &self.source_schema
    }
}

/// A catalogue file that cannot be used: which file, where in it (a JSON path such as
/// `$.products[0].events[1].hookSchema.properties.code.oneOf`, or a line and column for a file
/// that does not parse) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {path}: {message}")]
pub struct CatalogueError {
    /// The file's name as given.
    pub file: String,
    /// Where in the file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl Catalogue {
    /// The built-in catalogue alone.
    pub fn builtin() -> Catalogue {
        match Catalogue::with_files(&[]) {
            Ok(c) => c,
            // The built-in data is compiled in and every test loads it: this cannot fail in a
            // released binary, and a catalogue without its built-in events would be no service.
            Err(e) => panic!("the built-in catalogue does not load: {e}"),
        }
    }

    /// The built-in catalogue plus the products and events of `files` (each `(name, text)`, the
    /// text in the published shape without `ingestible`). A file may add products or add events to
    /// an existing product; it may not redefine an event that exists already.
    pub fn with_files(files: &[(String, String)]) -> Result<Catalogue, CatalogueError> {
        let mut catalogue = Catalogue {
            products: Vec::new(),
            event_names: Vec::new(),
        };
        catalogue.add_file(BUILTIN_NAME, BUILTIN, true)?;
        for (name, text) in files {
            catalogue.add_file(name, text, false)?;
        }
        Ok(catalogue)
    }

    /// The products, in order.
    pub fn products(&self) -> &[ProductEntry] {
        &self.products
    }

    /// A product by its name in any ASCII letter case.
    pub fn product(&self, name: &str) -> Option<&ProductEntry> {
        self.products
            .iter()
            .find(|p| p.product.0.eq_ignore_ascii_case(name))
    }

    /// The entry of `event` as `product` emits it.
    pub fn event(&self, product: Product, event: Event) -> Option<&EventEntry> {
        self.product(product.0)?
            .events
            .iter()
            .find(|e| e.event == event)
    }

    /// The published catalogue: `{"products": [{"productName", "ingestible", "events": [..]}]}`.
    pub fn to_json(&self) -> Value {
        let products: Vec<Value> = self
            .products
            .iter()
            .map(|p| {
                serde_json::json!({
                    "productName": p.product.as_str(),
                    "ingestible": p.ingestible,
                    "events": p.events.iter().map(EventEntry::to_json).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::json!({ "products": products })
    }

    fn add_file(&mut self, file: &str, text: &str, builtin: bool) -> Result<(), CatalogueError> {
        let err = |path: String, message: String| CatalogueError {
            file: file.to_owned(),
            path,
            message,
        };
        let root: Value = serde_json::from_str(text).map_err(|e| {
            err(
                format!("line {} column {}", e.line(), e.column()),
                format!("not valid JSON: {e}"),
            )
        })?;
        let Value::Object(root) = root else {
            return Err(err(
                "$".into(),
                "expected an object with \"products\"".into(),
            ));
        };
        only_keys(&root, &["products"], "$").map_err(|(p, m)| err(p, m))?;
        let Some(Value::Array(products)) = root.get("products") else {
            return Err(err(
                "$.products".into(),
                "expected an array of products".into(),
            ));
        };
        for (pi, product) in products.iter().enumerate() {
            let at = format!("$.products[{pi}]");
            self.add_product(product, &at, builtin)
                .map_err(|(p, m)| err(p, m))?;
        }
        Ok(())
    }

    fn add_product(&mut self, v: &Value, at: &str, builtin: bool) -> Result<(), (String, String)> {
        let Value::Object(map) = v else {
            return Err((at.to_owned(), "expected a product object".into()));
        };
        let allowed: &[&str] = if builtin {
            &["productName", "ingestible", "events"]
        } else {
            &["productName", "events"]
        };
        only_keys(map, allowed, at)?;
        let name = non_empty_str(map.get("productName"), &format!("{at}.productName"))?;
        let ingestible = match map.get("ingestible") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err((format!("{at}.ingestible"), "expected true or false".into())),
        };
        let Some(Value::Array(events)) = map.get("events") else {
            return Err((format!("{at}.events"), "expected an array of events".into()));
        };
        let index = match self
            .products
            .iter()
            .position(|p| p.product.0.eq_ignore_ascii_case(name))
        {
            Some(i) => i,
            None => {
                self.products.push(ProductEntry {
                    product: Product(leak(name)),
                    ingestible,
                    builtin,
                    events: Vec::new(),
                    event_names: Vec::new(),
                });
                self.products.len() - 1
            }
        };
        for (ei, event) in events.iter().enumerate() {
            let at = format!("{at}.events[{ei}]");
            let entry = compile_event(event, &at, builtin)?;
            let product = &mut self.products[index];
            if product.event_names.contains(&entry.event) {
                let what = if product
                    .events
                    .iter()
                    .any(|e| e.event == entry.event && e.builtin)
                {
                    "a built-in event"
                } else {
                    "an event defined already"
                };
                return Err((
                    format!("{at}.event"),
                    format!(
                        "{} of {} is {what}: a catalogue file may add events, not redefine them",
                        entry.event, product.product
                    ),
                ));
            }
            let event = entry.event;
            product.event_names.push(event);
            product.events.push(entry);
            if !self.event_names.contains(&event) {
                self.event_names.push(event);
            }
        }
        Ok(())
    }
}

fn compile_event(v: &Value, at: &str, builtin: bool) -> Result<EventEntry, (String, String)> {
    let Value::Object(map) = v else {
        return Err((at.to_owned(), "expected an event object".into()));
    };
    only_keys(
        map,
        &["event", "description", "hookSchema", "aliases", "example"],
        at,
    )?;
    let name = non_empty_str(map.get("event"), &format!("{at}.event"))?;
    let existing = Event::builtin_name(name);
    let event = Event(existing.unwrap_or_else(|| leak(name)));
    let description = match map.get("description") {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err((format!("{at}.description"), "expected a string".into())),
    };
    let schema_at = format!("{at}.hookSchema");
    let Some(source_schema) = map.get("hookSchema") else {
        return Err((schema_at, "every event needs a hookSchema".into()));
    };
    let mut compiled =
        schema::compile(source_schema, &schema_at).map_err(|e| (e.path, e.message))?;
    if compiled.types != schema::Types::OBJECT {
        return Err((
            format!("{schema_at}.type"),
            "a hook schema's type must be \"object\"".into(),
        ));
    }
    let mut aliases = Vec::new();
    match map.get("aliases") {
        None => {}
        Some(Value::Object(pairs)) => {
            for (from, to) in pairs {
                let alias_at = format!("{at}.aliases.{from}");
                let Value::String(to) = to else {
                    return Err((alias_at, "expected the delivered field name".into()));
                };
                let Some(property) = compiled.properties.iter_mut().find(|p| p.name == *to) else {
                    return Err((
                        alias_at,
                        format!("{to:?} is not a property of the hook schema"),
                    ));
                };
                property.aliases.push(from.clone());
                aliases.push((from.clone(), to.clone()));
            }
        }
        Some(_) => {
            return Err((
                format!("{at}.aliases"),
                "expected an object of accepted name to delivered name".into(),
            ));
        }
    }
    let example = match map.get("example") {
        Some(example @ Value::Object(_)) => example.clone(),
        _ => {
            return Err((
                format!("{at}.example"),
                "every event needs an example hook (an object)".into(),
            ));
        }
    };
    let Value::Object(example_map) = &example else {
        return Err((format!("{at}.example"), "expected an object".into()));
    };
    let mut path = "hooks[0]".to_owned();
    schema::validate_object(example_map, &compiled, &mut path).map_err(|e| {
        (
            format!("{at}.example"),
            format!("the example is not a valid hook of its own schema: {e}"),
        )
    })?;
    let hook_schema = schema::publish(source_schema, &aliases);
    Ok(EventEntry {
        event,
        description,
        aliases,
        source_schema: source_schema.clone(),
        hook_schema,
        example,
        builtin,
        schema: compiled,
    })
}

impl Event {
    /// The constant of a built-in name, so that built-in names are not leaked.
    fn builtin_name(name: &str) -> Option<&'static str> {
        [
            Event::TemplateStatusUpdate,
            Event::MessageResultUpdate,
            Event::Unsubscribe,
            Event::ConversionBlock,
            Event::InternationalDeliveryReceipt,
            Event::WebhookConfigFailing,
            Event::WebhookConfigDisabled,
            Event::WebhookConfigRecovered,
            Event::DeliveryFailed,
        ]
        .into_iter()
        .map(|e| e.0)
        .find(|n| *n == name)
    }
}

/// Names live as long as the process: a catalogue is built once at start (tests build a few).
fn leak(name: &str) -> &'static str {
    match Product::ALL.iter().map(|p| p.0).find(|n| *n == name) {
        Some(n) => n,
        None => Box::leak(name.to_owned().into_boxed_str()),
    }
}

fn only_keys(map: &Map<String, Value>, allowed: &[&str], at: &str) -> Result<(), (String, String)> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(key) => Err((
            format!("{at}.{key}"),
            format!("unknown key {key:?} (expected {})", allowed.join(", ")),
        )),
    }
}

fn non_empty_str<'a>(v: Option<&'a Value>, at: &str) -> Result<&'a str, (String, String)> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        _ => Err((at.to_owned(), "expected a non-empty string".into())),
    }
}

static INSTALLED: OnceLock<Catalogue> = OnceLock::new();

/// The catalogue in force: the one [`install_catalogue`] installed, else the built-in one.
pub fn catalogue() -> &'static Catalogue {
    INSTALLED.get_or_init(Catalogue::builtin)
}

/// Makes `catalogue` the one in force for the rest of the process. Call it once at start, before
/// anything validates or lists events; afterwards the catalogue in force cannot change, and this
/// returns the catalogue back.
pub fn install_catalogue(catalogue: Catalogue) -> Result<(), Box<Catalogue>> {
    INSTALLED.set(catalogue).map_err(Box::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Result<Catalogue, CatalogueError> {
        Catalogue::with_files(&[("extra.json".to_owned(), text.to_owned())])
    }

    #[test]
    fn the_builtin_catalogue_loads_with_its_products_in_order() {
        let c = Catalogue::builtin();
        let names: Vec<&str> = c.products().iter().map(|p| p.product().as_str()).collect();
        assert_eq!(names, ["SMS", "KakaoTalk Bizmessage", "Email", "hookline"]);
        let ingestible: Vec<bool> = c.products().iter().map(|p| p.ingestible()).collect();
        assert_eq!(ingestible, [true, true, true, false]);
    }

    #[test]
    fn operator_files_add_products_and_events() {
        let c = file(
            r#"{"products": [{"productName": "Push", "events": [{"event": "OPENED",
                "hookSchema": {"type": "object", "required": ["token"],
                  "properties": {"token": {"type": "string", "maxLength": 10}}},
                "example": {"hookId": "h1", "token": "abc"}}]},
              {"productName": "sms", "events": [{"event": "OPENED",
                "hookSchema": {"type": "object"}, "example": {}}]}]}"#,
        )
        .unwrap();
        let push = c.product("push").unwrap();
        assert_eq!(push.product().as_str(), "Push");
        assert!(!push.is_builtin());
        assert_eq!(c.product("SMS").unwrap().events().len(), 5);
    }

    #[test]
    fn bad_files_name_the_file_and_path() {
        let e = file("{\"products\": [").unwrap_err();
        assert_eq!(e.file, "extra.json");
        assert!(e.path.starts_with("line 1"), "{e}");
        let e = file(
            r#"{"products": [{"productName": "SMS", "events": [{"event": "UNSUBSCRIBE",
                "hookSchema": {"type": "object"}, "example": {}}]}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.path, "$.products[0].events[0].event");
        assert!(e.message.contains("built-in"), "{e}");
        let e = file(
            r#"{"products": [{"productName": "X", "events": [{"event": "E",
                "hookSchema": {"type": "object", "properties": {"a": {"anyOf": []}}},
                "example": {}}]}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.path,
            "$.products[0].events[0].hookSchema.properties.a.anyOf"
        );
        let e = file(
            r#"{"products": [{"productName": "X", "events": [{"event": "E",
                "hookSchema": {"type": "object", "required": ["a"]}, "example": {}}]}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.path, "$.products[0].events[0].example");
    }
}
