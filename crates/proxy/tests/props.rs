//! Property tests of what the hot path reads from callers and upstreams: request bodies and
//! Anthropic stream events. CI runs proptest's default number of cases; `fuzz/run.sh` runs the
//! same tests for minutes. A failing case proptest finds is kept under proptest-regressions/.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use serde_json::{json, Value};
use tollgate_proxy::body::RawBody;
use tollgate_proxy::providers::anthropic::StreamTranslator;

/// Any JSON value, a few levels deep, with strings that include escapes and non-ASCII text.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_bytes_are_parsed_or_refused_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = RawBody::parse(&bytes) {
            prop_assert_eq!(e.status.as_u16(), 400);
        }
    }

    #[test]
    fn json_objects_survive_the_round_trip(fields in prop::collection::btree_map("[a-z_]{1,10}", json_value(), 0..8)) {
        let text = serde_json::to_vec(&Value::Object(fields.into_iter().collect())).unwrap();
        let body = RawBody::parse(&text).unwrap();
        // Values pass through as the caller wrote them, numbers included.
        let sent: Value = serde_json::from_slice(&text).unwrap();
        let forwarded: Value = serde_json::from_slice(&body.to_json()).unwrap();
        prop_assert_eq!(forwarded, sent);
    }

    #[test]
    fn anthropic_events_never_panic(
        events in prop::collection::vec(
            (prop::option::of("[a-z_]{0,20}"), prop_oneof![json_value().prop_map(|v| v.to_string()), "\\PC{0,40}"]),
            0..12,
        )
    ) {
        let mut t = StreamTranslator::new("id", "m", 0, true);
        for (name, data) in &events {
            let _ = t.on_event(name.as_deref(), data);
        }
    }

    #[test]
    fn anthropic_text_is_counted_exactly(texts in prop::collection::vec("\\PC{0,30}", 0..10)) {
        let mut t = StreamTranslator::new("id", "m", 0, false);
        let start = json!({"type": "message_start", "message": {"usage": {"input_tokens": 3, "output_tokens": 1}}});
        t.on_event(Some("message_start"), &start.to_string()).unwrap();
        let block = json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}});
        t.on_event(Some("content_block_start"), &block.to_string()).unwrap();
        for text in &texts {
            let delta = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}});
            t.on_event(Some("content_block_delta"), &delta.to_string()).unwrap();
        }
        prop_assert_eq!(t.generated_bytes(), texts.iter().map(String::len).sum::<usize>());
    }
}
