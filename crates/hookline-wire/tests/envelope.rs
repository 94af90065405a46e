//! Writing envelopes, parsing them back, and the typed hook models.

mod common;

use common::specs;
use hookline_wire::{
    CommentId, DlrStatus, Envelope, EnvelopeError, Event, Hook, KakaoCommentStatus,
    KakaoTemplateStatus, Product, SmsMessageStatus, sample_hook, validate_hook, write_envelope,
};
use serde_json::{Value, json};

#[test]
fn write_envelope_is_exact_and_splices_hooks_verbatim() {
    // Non-canonical but valid JSON texts: spliced as they are, not re-encoded.
    let h1 = r#"{"hookId":"a","text":"caf\u00e9 \/ ok"}"#;
    let h2 = r#"{"hookId":"b", "n": 1.50}"#;
    let mut out = b"PREFIX".to_vec();
    write_envelope(
        &mut out,
        "20240429205810Xw3kPq9LmZ01",
        "20240101000000AbCdEfGhIjK",
        Product::KakaoTalkBizmessage,
        "appkey-1",
        Event::MessageResultUpdate,
        &[h1, h2],
    );
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        concat!(
            "PREFIX",
            r#"{"hooksId":"20240429205810Xw3kPq9LmZ01","webhookConfigId":"20240101000000AbCdEfGhIjK","#,
            r#""productName":"KakaoTalk Bizmessage","appKey":"appkey-1","event":"MESSAGE_RESULT_UPDATE","#,
            r#""hooks":["#,
            r#"{"hookId":"a","text":"caf\u00e9 \/ ok"}"#,
            ",",
            r#"{"hookId":"b", "n": 1.50}"#,
            "]}"
        )
    );
    let body = &out[b"PREFIX".len()..];
    let parsed: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(parsed["hooks"][0]["text"], "café / ok");
    assert!(body.windows(h1.len()).any(|w| w == h1.as_bytes()));
    assert!(body.windows(h2.len()).any(|w| w == h2.as_bytes()));
}

#[test]
fn write_envelope_escapes_its_string_fields() {
    let tricky = "a\"b\\c\nd\u{1}e/한글";
    let mut out = Vec::new();
    write_envelope(
        &mut out,
        tricky,
        tricky,
        Product::Sms,
        tricky,
        Event::Unsubscribe,
        &[r#"{"hookId":"x"}"#],
    );
    let parsed: Value = serde_json::from_slice(&out).unwrap();
    for key in ["hooksId", "webhookConfigId", "appKey"] {
        assert_eq!(parsed[key], tricky, "{key}");
    }
    assert_eq!(parsed["productName"], "SMS");
    assert_eq!(parsed["event"], "UNSUBSCRIBE");
    let keys: Vec<&String> = parsed.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "hooksId",
            "webhookConfigId",
            "productName",
            "appKey",
            "event",
            "hooks"
        ]
    );
}

#[test]
fn validated_hooks_round_trip_through_envelopes_for_every_event() {
    for spec in specs() {
        let validated = validate_hook(spec.product, spec.event, spec.full.clone(), 0).unwrap();
        let sample = validate_hook(
            spec.product,
            spec.event,
            sample_hook(spec.product, spec.event),
            1,
        )
        .unwrap();
        let mut out = Vec::new();
        write_envelope(
            &mut out,
            "hooks-1",
            "config-1",
            spec.product,
            "app",
            spec.event,
            &[&validated.json, &sample.json],
        );
        let envelope = Envelope::parse(&out).unwrap();
        assert_eq!(envelope.hooks_id, "hooks-1");
        assert_eq!(envelope.webhook_config_id, "config-1");
        assert_eq!(envelope.app_key, "app");
        assert_eq!(envelope.product().unwrap(), spec.product);
        assert_eq!(envelope.event().unwrap(), spec.event);
        assert_eq!(envelope.hooks[0], spec.full);
        // Re-serialising the untyped hooks gives the stored bytes back (order kept).
        assert_eq!(
            serde_json::to_string(&envelope.hooks[1]).unwrap(),
            sample.json
        );

        let typed = envelope.typed_hooks().unwrap();
        assert_eq!(typed.len(), 2);
        assert_eq!(typed[0].hook_id(), validated.hook_id);
        assert_eq!(typed[1].hook_id(), sample.hook_id);
        let variant_ok = matches!(
            (&typed[0], spec.product, spec.event),
            (
                Hook::KakaoTemplateStatusUpdate(_),
                Product::KakaoTalkBizmessage,
                Event::TemplateStatusUpdate,
            ) | (
                Hook::KakaoMessageResultUpdate(_),
                Product::KakaoTalkBizmessage,
                Event::MessageResultUpdate,
            ) | (Hook::SmsUnsubscribe(_), Product::Sms, Event::Unsubscribe)
                | (
                    Hook::SmsMessageResultUpdate(_),
                    Product::Sms,
                    Event::MessageResultUpdate
                )
                | (
                    Hook::SmsConversionBlock(_),
                    Product::Sms,
                    Event::ConversionBlock
                )
                | (
                    Hook::SmsInternationalDeliveryReceipt(_),
                    Product::Sms,
                    Event::InternationalDeliveryReceipt,
                )
        );
        assert!(
            variant_ok,
            "{} {}: {:?}",
            spec.product, spec.event, typed[0]
        );
        // A typed hook of a full catalogue hook re-serialises to the same JSON.
        assert_eq!(
            serde_json::to_value(&typed[0]).unwrap(),
            spec.full,
            "{} {}",
            spec.product,
            spec.event
        );
    }
}

#[test]
fn typed_fields_are_filled() {
    let s = specs();
    let get = |i: usize| {
        let mut out = Vec::new();
        let json = serde_json::to_string(&s[i].full).unwrap();
        write_envelope(&mut out, "h", "c", s[i].product, "a", s[i].event, &[&json]);
        Envelope::parse(&out)
            .unwrap()
            .typed_hooks()
            .unwrap()
            .remove(0)
    };
    let Hook::KakaoTemplateStatusUpdate(t) = get(0) else {
        panic!()
    };
    assert_eq!(t.status, KakaoTemplateStatus::Approved);
    let comments = t.comments.unwrap();
    assert_eq!(comments[0].id, Some(CommentId::Integer(1)));
    assert_eq!(comments[1].id, Some(CommentId::String("c-2".into())));
    assert_eq!(comments[0].status, Some(KakaoCommentStatus::Approved));
    assert_eq!(comments[1].status, Some(KakaoCommentStatus::Replied));
    assert_eq!(
        comments[0].attachment.as_ref().unwrap()[0]
            .file_path
            .as_deref(),
        Some("/files/a.png")
    );

    let Hook::KakaoMessageResultUpdate(k) = get(1) else {
        panic!()
    };
    assert_eq!(k.is_added_channel, Some(true));
    assert_eq!(k.receive_date.as_deref(), Some("2023-06-01"));

    let Hook::SmsMessageResultUpdate(m) = get(3) else {
        panic!()
    };
    assert_eq!(m.message_status, SmsMessageStatus::Completed);
    assert_eq!(m.message_count, Some(1));
    assert_eq!(m.recipient_seq, 1);

    let Hook::SmsConversionBlock(b) = get(4) else {
        panic!()
    };
    assert_eq!(b.country_code, "1");

    let Hook::SmsInternationalDeliveryReceipt(d) = get(5) else {
        panic!()
    };
    assert_eq!(d.dlr_status, DlrStatus::Accepted);
    assert_eq!(d.network_code.as_deref(), Some("US-VIRTUAL-BANDWIDTH"));
}

#[test]
fn typed_hooks_keep_unknown_fields_in_order() {
    let body = br#"{"hooksId":"h","webhookConfigId":"c","productName":"SMS","appKey":"a","event":"CONVERSION_BLOCK",
        "hooks":[{"zeta":1,"hookId":"x","alpha":{"b":2,"a":1},"countryCode":"82","mid":null}]}"#;
    let hooks = Envelope::parse(body).unwrap().typed_hooks().unwrap();
    let Hook::SmsConversionBlock(h) = &hooks[0] else {
        panic!()
    };
    let keys: Vec<&String> = h.extra.keys().collect();
    assert_eq!(keys, ["zeta", "alpha", "mid"]);
    assert_eq!(h.extra["alpha"], json!({"b": 2, "a": 1}));
}

#[test]
fn envelope_parse_rejects_bad_shapes() {
    let ok = json!({"hooksId":"h","webhookConfigId":"c","productName":"SMS","appKey":"a","event":"UNSUBSCRIBE",
        "hooks":[{"hookId":"x","recipientNo":"1"}]});
    assert!(Envelope::parse(ok.to_string().as_bytes()).is_ok());

    for field in [
        "hooksId",
        "webhookConfigId",
        "productName",
        "appKey",
        "event",
        "hooks",
    ] {
        let mut v = ok.clone();
        v.as_object_mut().unwrap().shift_remove(field);
        let e = Envelope::parse(v.to_string().as_bytes()).unwrap_err();
        assert!(matches!(e, EnvelopeError::Json(_)), "{field}: {e:?}");
        assert!(e.to_string().contains(field), "{e}");
    }
    let with_hooks = |hooks: Value| {
        let mut v = ok.clone();
        v["hooks"] = hooks;
        Envelope::parse(v.to_string().as_bytes())
    };
    assert!(matches!(
        with_hooks(json!([])),
        Err(EnvelopeError::EmptyHooks)
    ));
    assert!(matches!(
        with_hooks(json!([{"hookId": "x"}, 5])),
        Err(EnvelopeError::HookNotAnObject { index: 1 })
    ));
    assert!(matches!(
        with_hooks(json!([{"recipientNo": "1"}])),
        Err(EnvelopeError::MissingHookId { index: 0 })
    ));
    assert!(matches!(
        with_hooks(json!([{"hookId": 5}])),
        Err(EnvelopeError::MissingHookId { index: 0 })
    ));
    assert!(matches!(
        with_hooks(json!({"hookId": "x"})),
        Err(EnvelopeError::Json(_))
    ));
    assert!(matches!(Envelope::parse(b"{"), Err(EnvelopeError::Json(_))));
}

#[test]
fn typed_hooks_errors() {
    let env = |product: &str, event: &str, hook: Value| Envelope {
        hooks_id: "h".into(),
        webhook_config_id: "c".into(),
        product_name: product.into(),
        app_key: "a".into(),
        event: event.into(),
        hooks: vec![hook],
    };
    let hook = json!({"hookId": "x", "countryCode": "1"});
    assert!(
        matches!(env("MMS", "CONVERSION_BLOCK", hook.clone()).typed_hooks(), Err(EnvelopeError::UnknownProduct(p)) if p == "MMS")
    );
    assert!(
        matches!(env("SMS", "NEW_EVENT", hook.clone()).typed_hooks(), Err(EnvelopeError::UnknownEvent(e)) if e == "NEW_EVENT")
    );
    assert!(matches!(
        env("SMS", "TEMPLATE_STATUS_UPDATE", hook.clone()).typed_hooks(),
        Err(EnvelopeError::EventNotForProduct {
            product: Product::Sms,
            event: Event::TemplateStatusUpdate
        })
    ));
    assert!(env("sms", "CONVERSION_BLOCK", hook).typed_hooks().is_ok());

    let bad = json!({"hookId": "x", "requestId": "r", "recipientSeq": 1, "dlrStatus": "LOST"});
    let e = env("SMS", "INTERNATIONAL_DELIVERY_RECEIPT", bad)
        .typed_hooks()
        .unwrap_err();
    assert!(
        matches!(
            e,
            EnvelopeError::InvalidHook {
                index: 0,
                event: Event::InternationalDeliveryReceipt,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("LOST"), "{e}");

    let missing = json!({"hookId": "x", "requestId": "r", "messageStatus": "FAILED"});
    let e = env("SMS", "MESSAGE_RESULT_UPDATE", missing)
        .typed_hooks()
        .unwrap_err();
    assert!(e.to_string().contains("recipientSeq"), "{e}");
}

#[test]
fn envelope_serialises_in_camel_case() {
    let envelope = Envelope {
        hooks_id: "h".into(),
        webhook_config_id: "c".into(),
        product_name: "SMS".into(),
        app_key: "a".into(),
        event: "UNSUBSCRIBE".into(),
        hooks: vec![json!({"hookId": "x"})],
    };
    let text = serde_json::to_string(&envelope).unwrap();
    assert_eq!(
        text,
        r#"{"hooksId":"h","webhookConfigId":"c","productName":"SMS","appKey":"a","event":"UNSUBSCRIBE","hooks":[{"hookId":"x"}]}"#
    );
    assert_eq!(Envelope::parse(text.as_bytes()).unwrap(), envelope);
}
