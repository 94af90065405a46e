//! Ingest validation, event by event and rule by rule.

mod common;

use common::{EventSpec, body, expect_err, get, ingest_one, remove, set, specs};
use hookline_wire::{
    Event, IngestLimits, Product, ValidationErrorKind as K, is_generated_id, validate_hook,
    validate_ingest,
};
use serde_json::{Value, json};

fn with_path(spec: &EventSpec, path: &str) -> String {
    format!("{} {}: {path}", spec.product, spec.event)
}

#[test]
fn full_hooks_round_trip_verbatim() {
    for spec in specs() {
        let batch = ingest_one(&spec, spec.full.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(batch.product, spec.product);
        assert_eq!(batch.event, spec.event);
        assert_eq!(batch.hooks.len(), 1);
        let hook = &batch.hooks[0];
        assert_eq!(hook.json, serde_json::to_string(&spec.full).unwrap());
        assert_eq!(hook.hook_id, spec.full["hookId"].as_str().unwrap());
        assert!(!hook.id_generated);
        assert_eq!(batch.input_ids, [hook.hook_id.as_str()]);
    }
}

#[test]
fn unknown_fields_are_kept_in_order_everywhere() {
    for spec in specs() {
        // Unknown fields first, in the middle and last, of several JSON types, plus nested ones.
        let Value::Object(full) = spec.full.clone() else {
            unreachable!()
        };
        let mut hook = serde_json::Map::new();
        hook.insert("zFirst".into(), json!({"nested": [1, 2.5, null, "x"]}));
        let half = full.len() / 2;
        for (i, (k, v)) in full.into_iter().enumerate() {
            if i == half {
                hook.insert("aMiddle".into(), json!(1.25));
            }
            hook.insert(k, v);
        }
        hook.insert("unicodeLast".into(), json!("한글 ✓ \"quoted\""));
        let mut hook = Value::Object(hook);
        for obj in spec.objects {
            set(&mut hook, &format!("{obj}.futureField"), json!(true));
        }
        let batch = ingest_one(&spec, hook.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            batch.hooks[0].json,
            serde_json::to_string(&hook).unwrap(),
            "{} {}",
            spec.product,
            spec.event
        );
        let keys: Vec<String> = serde_json::from_str::<Value>(&batch.hooks[0].json)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys.first().map(String::as_str), Some("zFirst"));
        assert_eq!(keys.last().map(String::as_str), Some("unicodeLast"));
    }
}

/// The server reads members of stored hooks by the first of a name (`ValidatedHook::json`):
/// a repeated name must not reach it, at the top level or deeper.
#[test]
fn a_repeated_member_name_is_stored_once_with_its_last_value() {
    for spec in specs() {
        let Value::Object(mut hook) = spec.full.clone() else {
            unreachable!()
        };
        hook.insert("zDup".into(), json!(1));
        let text = String::from_utf8(body(
            spec.product.as_str(),
            spec.event.as_str(),
            vec![Value::Object(hook)],
        ))
        .expect("utf-8");
        let text = text.replace(
            r#""zDup":1"#,
            r#""zDup":1,"zNested":{"a":1,"a":2},"zDup":2"#,
        );
        let batch = validate_ingest(text.as_bytes(), &IngestLimits::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let stored = &batch.hooks[0].json;
        assert_eq!(stored.matches(r#""zDup":"#).count(), 1, "{stored}");
        assert!(stored.contains(r#""zNested":{"a":2}"#), "{stored}");
        let parsed: Value = serde_json::from_str(stored).expect("stored JSON");
        assert_eq!(parsed["zDup"], json!(2));
    }
}

#[test]
fn each_required_field_missing_or_null_is_rejected() {
    for spec in specs() {
        for field in spec.required {
            let mut hook = spec.full.clone();
            remove(&mut hook, field);
            let e = expect_err(
                ingest_one(&spec, hook),
                K::MissingField,
                &format!("hooks[0].{field}"),
            );
            assert_eq!(
                e.message,
                "required field is missing",
                "{}",
                with_path(&spec, field)
            );
            assert_eq!(
                e.to_string(),
                format!("hooks[0].{field}: required field is missing")
            );

            let mut hook = spec.full.clone();
            set(&mut hook, field, Value::Null);
            expect_err(
                ingest_one(&spec, hook),
                K::MissingField,
                &format!("hooks[0].{field}"),
            );
        }
    }
}

#[test]
fn only_required_fields_is_enough() {
    for spec in specs() {
        let mut hook = json!({});
        for field in spec.required {
            set(&mut hook, field, get(&spec.full, field).clone());
        }
        let batch = ingest_one(&spec, hook).unwrap_or_else(|e| panic!("{e}"));
        assert!(batch.hooks[0].id_generated);
    }
}

#[test]
fn optional_fields_may_be_null_and_stay_null() {
    for spec in specs() {
        let Value::Object(full) = &spec.full else {
            unreachable!()
        };
        let mut hook = spec.full.clone();
        for key in full.keys() {
            if !spec.required.contains(&key.as_str()) && key != "hookId" {
                set(&mut hook, key, Value::Null);
            }
        }
        let batch = ingest_one(&spec, hook.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(batch.hooks[0].json, serde_json::to_string(&hook).unwrap());
    }
}

#[test]
fn each_enum_accepts_its_values_and_rejects_others() {
    for spec in specs() {
        for (field, values) in spec.enums {
            for value in *values {
                let mut hook = spec.full.clone();
                set(&mut hook, field, json!(value));
                ingest_one(&spec, hook)
                    .unwrap_or_else(|e| panic!("{} {value}: {e}", with_path(&spec, field)));
            }
            for bad in [
                "DONE",
                "String",
                &values[0].to_lowercase(),
                &format!(" {}", values[0]),
                "",
            ] {
                let mut hook = spec.full.clone();
                set(&mut hook, field, json!(bad));
                let e = expect_err(
                    ingest_one(&spec, hook),
                    K::NotInEnum,
                    &format!("hooks[0].{field}"),
                );
                assert_eq!(
                    e.message,
                    format!("{} is not one of {}", json!(bad), values.join(", ")),
                );
            }
        }
    }
}

#[test]
fn the_documented_enum_message() {
    let spec = &specs()[3];
    let mut hooks = vec![spec.full.clone(); 4];
    for (i, h) in hooks.iter_mut().enumerate() {
        set(h, "hookId", json!(format!("h{i}")));
    }
    set(&mut hooks[3], "messageStatus", json!("DONE"));
    let e = validate_ingest(
        &body("SMS", "MESSAGE_RESULT_UPDATE", hooks),
        &IngestLimits::default(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "hooks[3].messageStatus: \"DONE\" is not one of COMPLETED, FAILED, CANCEL, DUPLICATED, FAILED_AD"
    );
    assert_eq!(e.kind, K::NotInEnum);
}

#[test]
fn integers_reject_floats_strings_and_others() {
    for spec in specs() {
        for field in spec.integers {
            // i64, what the typed models hold: every accepted hook can be read by a receiver.
            for good in [
                json!(0),
                json!(7),
                json!(-3),
                json!(i64::MAX),
                json!(i64::MIN),
            ] {
                let mut hook = spec.full.clone();
                set(&mut hook, field, good.clone());
                ingest_one(&spec, hook)
                    .unwrap_or_else(|e| panic!("{} {good}: {e}", with_path(&spec, field)));
            }
            for (bad, got) in [
                (json!(1.0), "the number 1.0"),
                (json!("1"), "the string \"1\""),
                (json!(1.5), "the number 1.5"),
                (json!(true), "the boolean true"),
                (json!([1]), "an array"),
                (json!({"n": 1}), "an object"),
                (
                    json!(u64::MAX),
                    "the number 18446744073709551615, beyond the signed 64-bit range (largest \
                     9223372036854775807)",
                ),
            ] {
                let mut hook = spec.full.clone();
                set(&mut hook, field, bad);
                let e = expect_err(
                    ingest_one(&spec, hook),
                    K::WrongType,
                    &format!("hooks[0].{field}"),
                );
                assert_eq!(e.message, format!("expected an integer, got {got}"));
            }
        }
    }
}

#[test]
fn integer_as_float_exponent_is_rejected_from_raw_json() {
    // Literally `1e0` and `1.0` in the text, not a Rust-made float.
    for literal in ["1.0", "1e0", "\"1\""] {
        let raw = format!(
            r#"{{"productName":"SMS","event":"INTERNATIONAL_DELIVERY_RECEIPT","hooks":[{{"requestId":"r","recipientSeq":{literal},"dlrStatus":"DELIVERED"}}]}}"#
        );
        let e = validate_ingest(raw.as_bytes(), &IngestLimits::default()).unwrap_err();
        assert_eq!(
            (e.kind, e.path.as_str()),
            (K::WrongType, "hooks[0].recipientSeq"),
            "{literal}"
        );
    }
    let e = validate_ingest(
        br#"{"productName":"SMS","event":"MESSAGE_RESULT_UPDATE","hooks":[{"requestId":"r","recipientSeq":"1","messageStatus":"FAILED"}]}"#,
        &IngestLimits::default(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "hooks[0].recipientSeq: expected an integer, got the string \"1\""
    );
}

#[test]
fn strings_reject_other_types() {
    for spec in specs() {
        for field in spec.strings {
            for (bad, got) in [
                (json!(5), "the number 5"),
                (json!(false), "the boolean false"),
                (json!(["x"]), "an array"),
                (json!({}), "an object"),
            ] {
                let mut hook = spec.full.clone();
                set(&mut hook, field, bad);
                let e = expect_err(
                    ingest_one(&spec, hook),
                    K::WrongType,
                    &format!("hooks[0].{field}"),
                );
                assert_eq!(
                    e.message,
                    format!("expected a string, got {got}"),
                    "{}",
                    with_path(&spec, field)
                );
            }
        }
    }
}

#[test]
fn objects_and_arrays_must_have_their_shape() {
    for spec in specs() {
        for path in spec.objects {
            let mut hook = spec.full.clone();
            set(&mut hook, path, json!("not an object"));
            let kind = if path.ends_with(']') {
                K::NotAnObject
            } else {
                K::WrongType
            };
            let e = expect_err(ingest_one(&spec, hook), kind, &format!("hooks[0].{path}"));
            assert!(e.message.contains("expected an object"), "{e}");
        }
        for path in spec.arrays {
            let mut hook = spec.full.clone();
            set(&mut hook, path, json!({"0": {}}));
            let e = expect_err(
                ingest_one(&spec, hook),
                K::WrongType,
                &format!("hooks[0].{path}"),
            );
            assert_eq!(e.message, "expected an array, got an object");
        }
    }
}

#[test]
fn date_formats_good_and_bad() {
    for spec in specs() {
        for (field, good, bad) in spec.dates {
            for value in *good {
                let mut hook = spec.full.clone();
                set(&mut hook, field, json!(value));
                ingest_one(&spec, hook)
                    .unwrap_or_else(|e| panic!("{} {value}: {e}", with_path(&spec, field)));
            }
            for value in *bad {
                let mut hook = spec.full.clone();
                set(&mut hook, field, json!(value));
                let e = expect_err(
                    ingest_one(&spec, hook),
                    K::BadFormat,
                    &format!("hooks[0].{field}"),
                );
                assert!(
                    e.message
                        .starts_with(&format!("{} does not match ", json!(value))),
                    "{e}"
                );
            }
        }
    }
}

#[test]
fn the_documented_date_message() {
    let e = validate_ingest(
        &body(
            "SMS",
            "UNSUBSCRIBE",
            vec![json!({"recipientNo": "01012341234", "createdDateTime": "2020-09-09 11:25"})],
        ),
        &IngestLimits::default(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "hooks[0].createdDateTime: \"2020-09-09 11:25\" does not match yyyy-MM-dd'T'HH:mm:ss.SSSXXX"
    );
}

#[test]
fn undated_kakao_request_and_create_dates_accept_any_string() {
    let spec = &specs()[1];
    let mut hook = spec.full.clone();
    set(&mut hook, "requestDate", json!("2023-06-01 12:00:00.000"));
    set(&mut hook, "createDate", json!("yesterday"));
    ingest_one(spec, hook).unwrap();
}

#[test]
fn nested_paths_name_the_exact_element() {
    let spec = &specs()[0];
    let mut hook = spec.full.clone();
    set(
        &mut hook,
        "comments[1].attachment",
        json!([{"filePath": "/ok"}, {"filePath": 3}]),
    );
    expect_err(
        ingest_one(spec, hook),
        K::WrongType,
        "hooks[0].comments[1].attachment[1].filePath",
    );

    let mut hook = spec.full.clone();
    set(&mut hook, "comments[1]", json!(null));
    let e = expect_err(
        ingest_one(spec, hook),
        K::NotAnObject,
        "hooks[0].comments[1]",
    );
    assert_eq!(e.message, "expected an object, got null");

    let sms = &specs()[3];
    let mut hooks = vec![sms.full.clone(), sms.full.clone(), sms.full.clone()];
    for (i, h) in hooks.iter_mut().enumerate() {
        set(h, "hookId", json!(format!("h{i}")));
    }
    set(&mut hooks[2], "_links.self.href", json!(12));
    let e = validate_ingest(
        &body("SMS", "MESSAGE_RESULT_UPDATE", hooks),
        &IngestLimits::default(),
    )
    .unwrap_err();
    assert_eq!(e.path, "hooks[2]._links.self.href");
    assert_eq!(e.message, "expected a string, got the number 12");
}

#[test]
fn comment_id_is_string_or_integer() {
    let spec = &specs()[0];
    for good in [json!(1), json!("1"), json!("Integer"), json!(-5)] {
        let mut hook = spec.full.clone();
        set(&mut hook, "comments[0].id", good.clone());
        let batch = ingest_one(spec, hook).unwrap();
        let stored: Value = serde_json::from_str(&batch.hooks[0].json).unwrap();
        assert_eq!(stored["comments"][0]["id"], good, "delivered as received");
    }
    for bad in [json!(1.5), json!(true), json!([1]), json!({})] {
        let mut hook = spec.full.clone();
        set(&mut hook, "comments[0].id", bad);
        let e = expect_err(
            ingest_one(spec, hook),
            K::WrongType,
            "hooks[0].comments[0].id",
        );
        assert!(
            e.message.starts_with("expected a string or an integer"),
            "{e}"
        );
    }
}

#[test]
fn is_added_channel_is_boolean_or_null() {
    let spec = &specs()[1];
    for good in [json!(true), json!(false), Value::Null] {
        let mut hook = spec.full.clone();
        set(&mut hook, "isAddedChannel", good);
        ingest_one(spec, hook).unwrap();
    }
    for bad in [json!("true"), json!(1), json!(0)] {
        let mut hook = spec.full.clone();
        set(&mut hook, "isAddedChannel", bad);
        expect_err(
            ingest_one(spec, hook),
            K::WrongType,
            "hooks[0].isAddedChannel",
        );
    }
}

// ----- aliases -----

#[test]
fn sms_result_aliases_are_normalised_in_place() {
    let spec = &specs()[3];
    let mut hook = spec.full.clone();
    let map = hook.as_object_mut().unwrap();
    // Rebuild with the misspelt names at the same positions.
    let renamed: serde_json::Map<String, Value> = map
        .iter()
        .map(|(k, v)| {
            let k = match k.as_str() {
                "recipientGroupingKey" => "recipientGropuingKey".to_owned(),
                "_links" => "_link".to_owned(),
                _ => k.clone(),
            };
            (k, v.clone())
        })
        .collect();
    *map = renamed;
    let batch = ingest_one(spec, hook).unwrap();
    assert_eq!(
        batch.hooks[0].json,
        serde_json::to_string(&spec.full).unwrap()
    );
}

#[test]
fn sms_result_correct_spelling_wins_over_alias() {
    let spec = &specs()[3];
    let mut hook = spec.full.clone();
    set(&mut hook, "recipientGropuingKey", json!(12345)); // would be a wrong type if it were used
    set(
        &mut hook,
        "_link",
        json!({"self": {"href": "https://old.example"}}),
    );
    let batch = ingest_one(spec, hook).unwrap();
    assert_eq!(
        batch.hooks[0].json,
        serde_json::to_string(&spec.full).unwrap()
    );
    assert!(!batch.hooks[0].json.contains("Gropuing"));
    assert!(!batch.hooks[0].json.contains("\"_link\""));
}

#[test]
fn alias_errors_name_the_field_as_sent() {
    let spec = &specs()[3];
    let mut hook = spec.full.clone();
    remove(&mut hook, "_links");
    set(&mut hook, "_link", json!({"self": {"href": false}}));
    expect_err(
        ingest_one(spec, hook),
        K::WrongType,
        "hooks[0]._link.self.href",
    );

    let mut hook = spec.full.clone();
    remove(&mut hook, "recipientGroupingKey");
    set(&mut hook, "recipientGropuingKey", json!(1));
    expect_err(
        ingest_one(spec, hook),
        K::WrongType,
        "hooks[0].recipientGropuingKey",
    );
}

#[test]
fn aliases_apply_to_sms_message_results_only() {
    // For Kakao results the misspelling is just an unknown field: kept as sent.
    let spec = &specs()[1];
    let mut hook = spec.full.clone();
    remove(&mut hook, "recipientGroupingKey");
    remove(&mut hook, "_links");
    set(&mut hook, "recipientGropuingKey", json!("k"));
    set(&mut hook, "_link", json!("whatever"));
    let batch = ingest_one(spec, hook.clone()).unwrap();
    assert_eq!(batch.hooks[0].json, serde_json::to_string(&hook).unwrap());
}

// ----- hookId -----

#[test]
fn given_hook_ids_are_kept() {
    let spec = &specs()[4];
    for id in [
        "a",
        "A-b_c.9",
        &"x".repeat(64),
        "202007271010101010sadasdavas",
    ] {
        let mut hook = spec.full.clone();
        set(&mut hook, "hookId", json!(id));
        let batch = ingest_one(spec, hook.clone()).unwrap();
        assert_eq!(batch.hooks[0].hook_id, id);
        assert!(!batch.hooks[0].id_generated);
        assert_eq!(batch.input_ids, [id]);
        assert_eq!(batch.hooks[0].json, serde_json::to_string(&hook).unwrap());
    }
}

#[test]
fn absent_or_null_hook_ids_are_generated() {
    let spec = &specs()[4];
    let mut absent = spec.full.clone();
    remove(&mut absent, "hookId");
    let mut null = spec.full.clone();
    set(&mut null, "hookId", Value::Null);

    let batch = ingest_one(spec, absent).unwrap();
    let hook = &batch.hooks[0];
    assert!(hook.id_generated);
    assert!(is_generated_id(&hook.hook_id), "{}", hook.hook_id);
    let stored: Value = serde_json::from_str(&hook.json).unwrap();
    assert_eq!(stored["hookId"], json!(hook.hook_id));
    assert_eq!(
        stored.as_object().unwrap().keys().next_back().unwrap(),
        "hookId"
    );

    let batch = ingest_one(spec, null).unwrap();
    let hook = &batch.hooks[0];
    assert!(hook.id_generated && is_generated_id(&hook.hook_id));
    let stored: Value = serde_json::from_str(&hook.json).unwrap();
    // A null hookId is replaced where it stood (first, in this hook).
    assert_eq!(stored.as_object().unwrap().keys().next().unwrap(), "hookId");
    assert_eq!(stored["hookId"], json!(hook.hook_id));
}

#[test]
fn generated_ids_differ_between_hooks() {
    let hooks: Vec<Value> = (0..50).map(|_| json!({"countryCode": "1"})).collect();
    let batch = validate_ingest(
        &body("SMS", "CONVERSION_BLOCK", hooks),
        &IngestLimits::default(),
    )
    .unwrap();
    assert_eq!(batch.hooks.len(), 50);
    let distinct: std::collections::HashSet<_> = batch.input_ids.iter().collect();
    assert_eq!(distinct.len(), 50);
}

#[test]
fn invalid_hook_ids_are_rejected() {
    let spec = &specs()[4];
    for bad in [
        json!(""),
        json!("x".repeat(65)),
        json!("has space"),
        json!("slash/"),
        json!("é"),
        json!(12),
        json!(["a"]),
    ] {
        let mut hook = spec.full.clone();
        set(&mut hook, "hookId", bad.clone());
        let e = expect_err(ingest_one(spec, hook), K::InvalidHookId, "hooks[0].hookId");
        assert!(e.message.contains("is not a valid hookId"), "{e}");
    }
}

#[test]
fn duplicate_hook_ids_keep_the_first_occurrence() {
    let hook = |id: &str, code: &str| json!({"hookId": id, "countryCode": code});
    let hooks = vec![
        hook("A", "1"),
        hook("B", "2"),
        hook("A", "3"),
        json!({"countryCode": "4"}),
        hook("B", "5"),
    ];
    let batch = validate_ingest(
        &body("SMS", "CONVERSION_BLOCK", hooks),
        &IngestLimits::default(),
    )
    .unwrap();
    assert_eq!(batch.input_ids.len(), 5);
    assert_eq!(&batch.input_ids[..3], ["A", "B", "A"]);
    assert_eq!(batch.input_ids[4], "B");
    assert!(is_generated_id(&batch.input_ids[3]));
    let kept: Vec<(&str, &str)> = batch
        .hooks
        .iter()
        .map(|h| (h.hook_id.as_str(), h.json.as_str()))
        .collect();
    assert_eq!(kept.len(), 3);
    assert_eq!(kept[0], ("A", r#"{"hookId":"A","countryCode":"1"}"#));
    assert_eq!(kept[1], ("B", r#"{"hookId":"B","countryCode":"2"}"#));
    assert_eq!(kept[2].0, batch.input_ids[3]);
}

#[test]
fn an_invalid_duplicate_still_fails_the_request() {
    let hooks = vec![
        json!({"hookId": "A", "countryCode": "1"}),
        json!({"hookId": "A", "countryCode": 1}),
    ];
    let e = validate_ingest(
        &body("SMS", "CONVERSION_BLOCK", hooks),
        &IngestLimits::default(),
    )
    .unwrap_err();
    assert_eq!(
        (e.kind, e.path.as_str()),
        (K::WrongType, "hooks[1].countryCode")
    );
}

// ----- the request as a whole -----

#[test]
fn first_error_in_input_order_wins() {
    let hooks = vec![
        json!({"countryCode": "1"}),
        json!({"countryCode": "1", "blockedDateTime": "yesterday"}),
        json!({}),
    ];
    let e = validate_ingest(
        &body("SMS", "CONVERSION_BLOCK", hooks),
        &IngestLimits::default(),
    )
    .unwrap_err();
    assert_eq!(
        (e.kind, e.path.as_str()),
        (K::BadFormat, "hooks[1].blockedDateTime")
    );
}

#[test]
fn empty_missing_and_malformed_hooks() {
    let limits = IngestLimits::default();
    let e = validate_ingest(&body("SMS", "UNSUBSCRIBE", vec![]), &limits).unwrap_err();
    assert_eq!((e.kind, e.path.as_str()), (K::EmptyHooks, "hooks"));

    let e =
        validate_ingest(br#"{"productName":"SMS","event":"UNSUBSCRIBE"}"#, &limits).unwrap_err();
    assert_eq!((e.kind, e.path.as_str()), (K::MissingField, "hooks"));

    let e = validate_ingest(
        br#"{"productName":"SMS","event":"UNSUBSCRIBE","hooks":{}}"#,
        &limits,
    )
    .unwrap_err();
    assert_eq!((e.kind, e.path.as_str()), (K::WrongType, "hooks"));

    let e = validate_ingest(
        br#"{"productName":"SMS","event":"UNSUBSCRIBE","hooks":[{"recipientNo":"1"},"x"]}"#,
        &limits,
    )
    .unwrap_err();
    assert_eq!((e.kind, e.path.as_str()), (K::NotAnObject, "hooks[1]"));
    assert_eq!(e.message, "expected a hook object, got the string \"x\"");
}

#[test]
fn too_many_hooks() {
    let limits = IngestLimits::default();
    assert_eq!(limits.max_hooks, 1000);
    let hooks = |n: usize| -> Vec<Value> { (0..n).map(|_| json!({"countryCode": "1"})).collect() };
    let batch = validate_ingest(&body("SMS", "CONVERSION_BLOCK", hooks(1000)), &limits).unwrap();
    assert_eq!(batch.hooks.len(), 1000);
    let e = validate_ingest(&body("SMS", "CONVERSION_BLOCK", hooks(1001)), &limits).unwrap_err();
    assert_eq!((e.kind, e.path.as_str()), (K::TooManyHooks, "hooks"));
    assert!(
        e.message.contains("1001") && e.message.contains("1000"),
        "{e}"
    );

    let small = IngestLimits {
        max_hooks: 2,
        ..limits
    };
    let e = validate_ingest(&body("SMS", "CONVERSION_BLOCK", hooks(3)), &small).unwrap_err();
    assert_eq!(e.kind, K::TooManyHooks);
}

#[test]
fn too_large_hook() {
    let limits = IngestLimits::default();
    assert_eq!(limits.max_hook_bytes, 65536);
    // {"hookId":"h","countryCode":"1","pad":"<n>"} is 41 bytes + n.
    let hook = |n: usize| json!({"hookId": "h", "countryCode": "1", "pad": "x".repeat(n)});
    assert_eq!(serde_json::to_string(&hook(0)).unwrap().len(), 41);
    let at_limit = hook(65536 - 41);
    let batch = validate_ingest(&body("SMS", "CONVERSION_BLOCK", vec![at_limit]), &limits).unwrap();
    assert_eq!(batch.hooks[0].json.len(), 65536);

    let over = hook(65536 - 40);
    let e = validate_ingest(
        &body(
            "SMS",
            "CONVERSION_BLOCK",
            vec![json!({"countryCode": "1"}), over],
        ),
        &limits,
    )
    .unwrap_err();
    assert_eq!((e.kind, e.path.as_str()), (K::HookTooLarge, "hooks[1]"));
    assert!(
        e.message.contains("65537") && e.message.contains("65536"),
        "{e}"
    );
}

#[test]
fn generated_id_counts_towards_the_size() {
    // 18 bytes + 25-char generated hookId and its key make it larger than 40.
    let limits = IngestLimits {
        max_hook_bytes: 40,
        ..IngestLimits::default()
    };
    let e = validate_ingest(
        &body("SMS", "CONVERSION_BLOCK", vec![json!({"countryCode": "1"})]),
        &limits,
    )
    .unwrap_err();
    assert_eq!(e.kind, K::HookTooLarge);
}

#[test]
fn unknown_product() {
    for name in ["LMS", "", "SMS ", "KakaoTalk"] {
        let e = validate_ingest(
            &body(name, "UNSUBSCRIBE", vec![json!({})]),
            &IngestLimits::default(),
        )
        .unwrap_err();
        assert_eq!(
            (e.kind, e.path.as_str()),
            (K::UnknownProduct, "productName"),
            "{name:?}"
        );
        assert!(e.message.contains("SMS or KakaoTalk Bizmessage"), "{e}");
    }
    let e = validate_ingest(
        br#"{"event":"UNSUBSCRIBE","hooks":[{}]}"#,
        &IngestLimits::default(),
    )
    .unwrap_err();
    assert_eq!((e.kind, e.path.as_str()), (K::MissingField, "productName"));
    let e = validate_ingest(
        br#"{"productName":1,"event":"UNSUBSCRIBE","hooks":[{}]}"#,
        &IngestLimits::default(),
    )
    .unwrap_err();
    assert_eq!((e.kind, e.path.as_str()), (K::WrongType, "productName"));
}

#[test]
fn unknown_event() {
    let e = validate_ingest(
        &body("SMS", "FOO", vec![json!({})]),
        &IngestLimits::default(),
    )
    .unwrap_err();
    assert_eq!((e.kind, e.path.as_str()), (K::UnknownEvent, "event"));
    assert_eq!(
        e.to_string(),
        "event: \"FOO\" is not an event of SMS (expected one of UNSUBSCRIBE, MESSAGE_RESULT_UPDATE, CONVERSION_BLOCK, INTERNATIONAL_DELIVERY_RECEIPT)"
    );
    // Event names are exact.
    let e = validate_ingest(
        &body("SMS", "unsubscribe", vec![json!({})]),
        &IngestLimits::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind, K::UnknownEvent);
    let e = validate_ingest(
        br#"{"productName":"SMS","hooks":[{}]}"#,
        &IngestLimits::default(),
    )
    .unwrap_err();
    assert_eq!((e.kind, e.path.as_str()), (K::MissingField, "event"));
    let e = validate_ingest(
        br#"{"productName":"SMS","event":null,"hooks":[{}]}"#,
        &IngestLimits::default(),
    )
    .unwrap_err();
    assert_eq!((e.kind, e.path.as_str()), (K::MissingField, "event"));
}

#[test]
fn event_of_the_other_product() {
    let e = validate_ingest(
        &body("SMS", "TEMPLATE_STATUS_UPDATE", vec![json!({})]),
        &IngestLimits::default(),
    )
    .unwrap_err();
    assert_eq!((e.kind, e.path.as_str()), (K::EventNotForProduct, "event"));
    let e = validate_ingest(
        &body("KakaoTalk Bizmessage", "UNSUBSCRIBE", vec![json!({})]),
        &IngestLimits::default(),
    )
    .unwrap_err();
    assert_eq!((e.kind, e.path.as_str()), (K::EventNotForProduct, "event"));
    assert_eq!(
        e.message,
        "\"UNSUBSCRIBE\" is not an event of KakaoTalk Bizmessage (expected one of TEMPLATE_STATUS_UPDATE, MESSAGE_RESULT_UPDATE)"
    );
    let e = validate_hook(Product::Sms, Event::TemplateStatusUpdate, json!({}), 0).unwrap_err();
    assert_eq!((e.kind, e.path.as_str()), (K::EventNotForProduct, "event"));
}

#[test]
fn product_names_in_any_case() {
    for (name, product) in [
        ("SMS", Product::Sms),
        ("Sms", Product::Sms),
        ("sms", Product::Sms),
        ("KakaoTalk Bizmessage", Product::KakaoTalkBizmessage),
        ("kakaotalk bizmessage", Product::KakaoTalkBizmessage),
        ("KAKAOTALK BIZMESSAGE", Product::KakaoTalkBizmessage),
    ] {
        let (event, hook) = match product {
            Product::Sms => ("CONVERSION_BLOCK", json!({"countryCode": "1"})),
            _ => (
                "TEMPLATE_STATUS_UPDATE",
                json!({"senderKey": "k", "templateCode": "t", "status": "TSC01"}),
            ),
        };
        let batch =
            validate_ingest(&body(name, event, vec![hook]), &IngestLimits::default()).unwrap();
        assert_eq!(batch.product, product, "{name}");
        assert_eq!(batch.product.as_str(), product.as_str());
    }
}

#[test]
fn unknown_top_level_fields_are_ignored() {
    let raw = br#"{"extra":{"x":[1]},"productName":"SMS","event":"CONVERSION_BLOCK","hooks":[{"hookId":"h","countryCode":"1"}],"appKey":"ignored"}"#;
    let batch = validate_ingest(raw, &IngestLimits::default()).unwrap();
    assert_eq!(batch.hooks[0].json, r#"{"hookId":"h","countryCode":"1"}"#);
}

#[test]
fn invalid_json_and_non_object_bodies() {
    for raw in [
        &b""[..],
        b"{",
        b"{\"productName\": \"SMS\",}",
        b"\xff\xfe",
        b"{} trailing",
    ] {
        let e = validate_ingest(raw, &IngestLimits::default()).unwrap_err();
        assert_eq!(
            (e.kind, e.path.as_str()),
            (K::InvalidJson, "body"),
            "{raw:?}"
        );
        assert!(
            e.message.contains("line") && e.message.contains("column"),
            "{e}"
        );
        assert_eq!(e.to_string(), format!("body: {}", e.message));
    }
    for raw in [&b"[]"[..], b"null", b"\"SMS\"", b"42"] {
        let e = validate_ingest(raw, &IngestLimits::default()).unwrap_err();
        assert_eq!(
            (e.kind, e.path.as_str()),
            (K::NotAnObject, "body"),
            "{raw:?}"
        );
    }
}

#[test]
fn validate_hook_uses_the_index_in_paths() {
    let e = validate_hook(
        Product::Sms,
        Event::ConversionBlock,
        json!({"countryCode": 1}),
        41,
    )
    .unwrap_err();
    assert_eq!(e.path, "hooks[41].countryCode");
    let e = validate_hook(Product::Sms, Event::ConversionBlock, json!([]), 7).unwrap_err();
    assert_eq!((e.kind, e.path.as_str()), (K::NotAnObject, "hooks[7]"));
}

#[test]
fn long_values_are_cut_in_messages() {
    let long = "Z".repeat(1000);
    let e = validate_hook(
        Product::Sms,
        Event::InternationalDeliveryReceipt,
        json!({"requestId": "r", "recipientSeq": 1, "dlrStatus": long}),
        0,
    )
    .unwrap_err();
    assert_eq!(e.kind, K::NotInEnum);
    assert!(e.message.len() < 300, "{}", e.message.len());
    assert!(e.message.contains("1000 characters"), "{e}");
}
