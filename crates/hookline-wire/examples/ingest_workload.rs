//! A fixed ingest-validation workload for instruction counts (`valgrind --tool=callgrind`):
//! `ingest_workload <hooks per request> <requests>` validates the same SMS `MESSAGE_RESULT_UPDATE`
//! request (compact JSON, as producers send it, each hook with its own hookId) that many times.
//! Run it once with `<requests>` 0 and once with N: the difference over N is the cost of one
//! request, start-up (and the catalogue's one-time compilation) excluded. BENCHMARKS.md has the
//! numbers and the commands.

use std::hint::black_box;

use hookline_wire::{IngestLimits, validate_ingest};

fn body(hooks: usize) -> Vec<u8> {
    let hooks: Vec<serde_json::Value> = (0..hooks)
        .map(|i| {
            serde_json::json!({
                "hookId": format!("20240429205809GcSUXth{i:04}"),
                "senderType": "NORMAL_SMS",
                "requestId": "20240429205802y0Tl7Gbz0e0",
                "recipientSeq": i + 1,
                "requestDate": "2024-04-29T20:58:02",
                "receiveDate": "2024-04-29T20:58:04",
                "sendNo": "15446859",
                "recipientNo": "01012341234",
                "messageStatus": "COMPLETED",
                "recipientGroupingKey": "RecipientGroupingKey",
                "senderGroupingKey": "SenderGroupingKey",
                "resultCode": "1000",
                "messageCount": 1,
                "_links": {"self": {"href": format!(
                    "https://api-sms.cloud.toast.com/sms/v2.4/appKeys/k/sender/sms/20240429205802y0Tl7Gbz0e0?recipientSeq={}", i + 1)}}
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "productName": "SMS", "event": "MESSAGE_RESULT_UPDATE", "hooks": hooks
    }))
    .unwrap_or_default()
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap_or(0))
        .collect();
    let (hooks, requests) = (
        args.first().copied().unwrap_or(100),
        args.get(1).copied().unwrap_or(0),
    );
    let body = body(hooks);
    let limits = IngestLimits::default();
    // Outside the measured loop: the catalogue is loaded and compiled on first use.
    let _ = validate_ingest(&body, &limits);
    let mut stored = 0;
    for _ in 0..requests {
        match validate_ingest(black_box(&body), &limits) {
            Ok(batch) => stored += batch.hooks.len(),
            Err(e) => panic!("the workload's body must be valid: {e}"),
        }
    }
    println!("{stored} hooks validated");
}
