//! Ids, the catalogue, and sample hooks.

use std::collections::HashSet;

use hookline_wire::{
    Event, IngestLimits, Product, generate_id, is_generated_id, is_valid_hook_id, sample_hook,
    validate_hook, validate_ingest,
};
use serde_json::json;

#[test]
fn generated_ids_have_the_shape() {
    for _ in 0..1000 {
        let id = generate_id();
        assert_eq!(id.len(), 25, "{id}");
        assert!(id[..14].bytes().all(|b| b.is_ascii_digit()), "{id}");
        assert!(id[14..].bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
        assert!(
            id.starts_with("20"),
            "a UTC timestamp of this century: {id}"
        );
        assert!(is_generated_id(&id));
        assert!(is_valid_hook_id(&id));
    }
}

#[test]
fn generated_ids_are_unique_over_100k() {
    let ids: HashSet<String> = (0..100_000).map(|_| generate_id()).collect();
    assert_eq!(ids.len(), 100_000);
    // The random part alone is unique too, and it uses the whole base62 alphabet.
    let tails: HashSet<&str> = ids.iter().map(|id| &id[14..]).collect();
    assert_eq!(tails.len(), 100_000);
    let mut counts = std::collections::HashMap::<char, u32>::new();
    for c in ids.iter().flat_map(|id| id[14..].chars()) {
        *counts.entry(c).or_default() += 1;
    }
    assert_eq!(counts.len(), 62);
    // 1.1 million characters: a uniform pick leaves every count within a few percent of 17742;
    // a plain `byte % 62` would make eight characters 25 % more frequent than the rest.
    let (min, max) = (
        counts.values().min().unwrap(),
        counts.values().max().unwrap(),
    );
    assert!(
        f64::from(*max) / f64::from(*min) < 1.1,
        "min {min}, max {max}"
    );
}

#[test]
fn generated_id_shape_check() {
    assert!(is_generated_id("20240429205809GcSUXthVA00"));
    assert!(is_generated_id("202409251600118GSDDYTwzX0"));
    for bad in [
        "",
        "202007271010101010sadasdavas",
        "20240429205809GcSUXthVA0",
        "20240429205809GcSUXthVA000",
        "2024042920580xGcSUXthVA00",
        "20240429205809GcSUXth-A00",
        "20240429205809GcSUXthVA0é",
    ] {
        assert!(!is_generated_id(bad), "{bad}");
    }
}

#[test]
fn hook_id_rule() {
    for good in [
        "a",
        "A",
        "0",
        "a-b_c.d",
        &"z".repeat(64),
        "202007271010101010sadasdavas",
    ] {
        assert!(is_valid_hook_id(good), "{good}");
    }
    for bad in [
        "",
        &"z".repeat(65),
        "a b",
        "a/b",
        "a:b",
        "é",
        "a\n",
        "a+b",
        "%41",
    ] {
        assert!(!is_valid_hook_id(bad), "{bad}");
    }
}

#[test]
fn products() {
    assert_eq!(
        Product::ALL,
        [
            Product::Sms,
            Product::KakaoTalkBizmessage,
            Product::Email,
            Product::Hookline
        ]
    );
    assert!(!Product::Hookline.is_ingestible(), "operational events");
    assert!(Product::Email.is_ingestible());
    assert_eq!(Product::Sms.as_str(), "SMS");
    assert_eq!(
        Product::KakaoTalkBizmessage.as_str(),
        "KakaoTalk Bizmessage"
    );
    assert_eq!(Product::parse("Sms"), Some(Product::Sms));
    assert_eq!(
        Product::parse("kakaotalk bizmessage"),
        Some(Product::KakaoTalkBizmessage)
    );
    assert_eq!(Product::parse("KakaoTalk"), None);
    assert_eq!(Product::parse("SMS "), None);
    assert_eq!(
        Product::Sms.events(),
        [
            Event::Unsubscribe,
            Event::MessageResultUpdate,
            Event::ConversionBlock,
            Event::InternationalDeliveryReceipt
        ]
    );
    assert_eq!(
        Product::KakaoTalkBizmessage.events(),
        [Event::TemplateStatusUpdate, Event::MessageResultUpdate]
    );
    assert_eq!(
        serde_json::to_string(&Product::KakaoTalkBizmessage).unwrap(),
        "\"KakaoTalk Bizmessage\""
    );
    assert_eq!(
        serde_json::from_str::<Product>("\"sms\"").unwrap(),
        Product::Sms
    );
    assert!(serde_json::from_str::<Product>("\"LMS\"").is_err());
    assert_eq!(Product::Sms.to_string(), "SMS");
}

#[test]
fn events() {
    let names = [
        (Event::TemplateStatusUpdate, "TEMPLATE_STATUS_UPDATE"),
        (Event::MessageResultUpdate, "MESSAGE_RESULT_UPDATE"),
        (Event::Unsubscribe, "UNSUBSCRIBE"),
        (Event::ConversionBlock, "CONVERSION_BLOCK"),
        (
            Event::InternationalDeliveryReceipt,
            "INTERNATIONAL_DELIVERY_RECEIPT",
        ),
    ];
    for (event, name) in names {
        assert_eq!(event.as_str(), name);
        assert_eq!(Event::parse(name), Some(event));
        assert_eq!(Event::parse(&name.to_lowercase()), None);
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            format!("\"{name}\"")
        );
        assert_eq!(
            serde_json::from_str::<Event>(&format!("\"{name}\"")).unwrap(),
            event
        );
    }
    assert!(Event::MessageResultUpdate.is_valid_for(Product::Sms));
    assert!(Event::MessageResultUpdate.is_valid_for(Product::KakaoTalkBizmessage));
    assert!(Event::TemplateStatusUpdate.is_valid_for(Product::KakaoTalkBizmessage));
    assert!(!Event::TemplateStatusUpdate.is_valid_for(Product::Sms));
    for e in [
        Event::Unsubscribe,
        Event::ConversionBlock,
        Event::InternationalDeliveryReceipt,
    ] {
        assert!(e.is_valid_for(Product::Sms));
        assert!(!e.is_valid_for(Product::KakaoTalkBizmessage));
    }
}

#[test]
fn samples_are_valid_varied_and_fresh() {
    for product in Product::ALL {
        for &event in product.events() {
            let mut ids = HashSet::new();
            let mut request_ids = HashSet::new();
            for _ in 0..200 {
                let hook = sample_hook(product, event);
                let validated = validate_hook(product, event, hook.clone(), 0)
                    .unwrap_or_else(|e| panic!("{product} {event}: {e}\n{hook:#}"));
                assert!(!validated.id_generated, "samples carry their own hookId");
                assert!(is_generated_id(&validated.hook_id));
                assert_eq!(validated.json, serde_json::to_string(&hook).unwrap());
                ids.insert(validated.hook_id);
                if let Some(r) = hook.get("requestId") {
                    request_ids.insert(r.as_str().unwrap().to_owned());
                }
            }
            assert_eq!(ids.len(), 200, "{product} {event}");
            assert!(
                request_ids.is_empty() || request_ids.len() == 200,
                "{product} {event}"
            );
        }
    }
}

#[test]
fn samples_use_current_dates() {
    let today_kst = (chrono::Utc::now() + chrono::Duration::hours(9))
        .format("%Y-%m-%d")
        .to_string();
    let hook = sample_hook(Product::Sms, Event::Unsubscribe);
    let created = hook["createdDateTime"].as_str().unwrap();
    assert!(created.starts_with(&today_kst[..7]), "{created}");
    assert!(created.ends_with("+09:00"), "{created}");
    let hook = sample_hook(Product::Sms, Event::MessageResultUpdate);
    assert_eq!(
        hook["recipientSeq"].as_u64().map(|n| (1..=10).contains(&n)),
        Some(true)
    );
}

#[test]
fn samples_of_invalid_pairs_do_not_panic() {
    let hook = sample_hook(Product::KakaoTalkBizmessage, Event::Unsubscribe);
    assert!(validate_hook(Product::Sms, Event::Unsubscribe, hook, 0).is_ok());
    let hook = sample_hook(Product::Sms, Event::TemplateStatusUpdate);
    assert!(
        validate_hook(
            Product::KakaoTalkBizmessage,
            Event::TemplateStatusUpdate,
            hook,
            0
        )
        .is_ok()
    );
}

#[test]
fn a_full_batch_of_samples_ingests() {
    let hooks: Vec<_> = (0..1000)
        .map(|_| sample_hook(Product::KakaoTalkBizmessage, Event::MessageResultUpdate))
        .collect();
    let body = serde_json::to_vec(&json!({"productName": "KakaoTalk Bizmessage", "event": "MESSAGE_RESULT_UPDATE", "hooks": hooks})).unwrap();
    let batch = validate_ingest(&body, &IngestLimits::default()).unwrap();
    assert_eq!(batch.hooks.len(), 1000);
    assert_eq!(batch.input_ids.len(), 1000);
}
