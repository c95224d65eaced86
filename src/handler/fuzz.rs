//! Property-based fuzzing of the host-payload decoder (bounded case counts, so it runs in CI):
//! whatever bytes the host (or anything else) posts, decoding never panics, and every input it
//! refuses gets a message to put in the invocation's `error` reply.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::protocol::{decode_documents, decode_http, decode_timer, Invocation};

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,24}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A host payload whose bindings hold anything: the right names with the wrong shapes, JSON
/// text inside strings, or nothing at all.
fn host_payload() -> impl Strategy<Value = Value> {
    let binding = prop_oneof![
        any_json(),
        any_json().prop_map(|v| Value::String(v.to_string())),
        any_json().prop_map(|v| Value::String(Value::String(v.to_string()).to_string())),
    ];
    (binding, any_json(), prop::bool::ANY).prop_map(|(binding, metadata, lower_case)| {
        let (data, meta) = if lower_case {
            ("data", "metadata")
        } else {
            ("Data", "Metadata")
        };
        json!({ data: { "documents": binding.clone(), "timer": binding.clone(), "req": binding }, meta: metadata })
    })
}

/// Decodes with every decoder; each answer is a value or a refusal that says why.
fn decode_all(body: &[u8]) {
    match Invocation::parse(body) {
        Err(e) => assert!(!e.to_string().is_empty()),
        Ok(invocation) => {
            let _ = invocation.retry_context();
            if let Err(e) = decode_documents(&invocation, "documents") {
                assert!(!e.to_string().is_empty());
            }
            if let Ok(documents) = decode_documents(&invocation, "documents") {
                assert!(documents.iter().all(Value::is_object), "{documents:?}");
            }
            if let Err(e) = decode_timer(&invocation, "timer") {
                assert!(!e.to_string().is_empty());
            }
            if let Err(e) = decode_http(&invocation, "req") {
                assert!(!e.to_string().is_empty());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_decoder_never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&body);
    }

    #[test]
    fn fuzz_decoder_never_panics_on_malformed_host_payloads(payload in host_payload()) {
        decode_all(payload.to_string().as_bytes());
    }

    #[test]
    fn fuzz_decoder_refuses_every_batch_that_is_not_an_array_of_objects(items in prop::collection::vec(any_json(), 1..6)) {
        let body = json!({"Data": {"documents": items.clone()}, "Metadata": {}});
        let invocation = Invocation::parse(body.to_string().as_bytes()).expect("an object");
        let decoded = decode_documents(&invocation, "documents");
        if items.iter().all(Value::is_object) {
            prop_assert_eq!(decoded.expect("an array of objects"), items);
        } else {
            let error = decoded.expect_err("not all objects").to_string();
            prop_assert!(error.contains("not an object"), "{}", error);
        }
    }
}
