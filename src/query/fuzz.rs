//! Property-based fuzzing of the API's parameter parsers (bounded case counts, so it runs in
//! CI): the list filters from a query string or a body, `afterSequence`, page sizes, execution
//! ids and the client principal. Whatever a caller sends, parsing never panics, and every
//! refusal is a 4xx with a message (400 for parameters, 401 for a principal).

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::params::{parse_after_sequence, parse_list_body, parse_list_query, parse_status};
use crate::runtime::auth::{execution_id_param, parse_principal};
use crate::runtime::http::parse_limit;
use crate::runtime::ApiError;

const KEYS: [&str; 8] = [
    "startDate",
    "endDate",
    "workflowName",
    "status",
    "executedBy",
    "limit",
    "continuationToken",
    "somethingElse",
];

/// Values near the valid ones (dates, numbers, statuses, tokens) and anything at all.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})?)?",
        "-?[0-9]{0,25}",
        "(Running|Success|Failed|Pending|Cancelled|nope|,| ){0,5}",
        "[A-Za-z0-9+/=_-]{0,64}",
    ]
}

fn refused_with(error: &ApiError, status: u16) -> Result<(), TestCaseError> {
    prop_assert_eq!(error.status, status, "{}", error.message);
    prop_assert!(!error.message.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_list_query_is_parsed_or_refused_with_400(
        pairs in prop::collection::vec((prop::sample::select(KEYS.to_vec()), value()), 0..8)
    ) {
        let query: BTreeMap<String, String> =
            pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        match parse_list_query(&query) {
            Ok(filters) => prop_assert!(filters.limit >= 1),
            Err(error) => refused_with(&error, 400)?,
        }
    }

    #[test]
    fn fuzz_list_body_is_parsed_or_refused_with_400(
        body in prop_oneof![
            ".{0,80}",
            prop::collection::btree_map(prop::sample::select(KEYS.to_vec()), value(), 0..6)
                .prop_map(|m| serde_json::to_string(&m).unwrap_or_default()),
        ]
    ) {
        if let Err(error) = parse_list_body(Some(&body)) {
            refused_with(&error, 400)?;
        }
    }

    #[test]
    fn fuzz_scalar_parameters_are_parsed_or_refused_with_400(raw in value()) {
        if let Err(error) = parse_after_sequence(Some(&raw)) {
            refused_with(&error, 400)?;
        }
        match parse_limit("limit", Some(&raw), 50, 500) {
            Ok(limit) => prop_assert!((1..=500).contains(&limit)),
            Err(error) => refused_with(&error, 400)?,
        }
        if let Err(error) = parse_status(&raw) {
            refused_with(&error, 400)?;
        }
        match execution_id_param(Some(&raw)) {
            Ok(id) => prop_assert!(!id.is_empty() && id.len() <= 128),
            Err(error) => refused_with(&error, 400)?,
        }
    }

    #[test]
    fn fuzz_principal_header_is_parsed_or_refused_with_401(
        header in prop_oneof![
            ".{0,200}",
            "[A-Za-z0-9+/=]{0,200}",
            // Base64 of arbitrary JSON-ish text.
            ".{0,120}".prop_map(|text| base64_encode(text.as_bytes())),
            (".{0,12}", prop::collection::vec(".{0,8}", 0..4)).prop_map(|(user, roles)| {
                let claims = serde_json::json!({"userId": user, "userRoles": roles});
                base64_encode(claims.to_string().as_bytes())
            }),
        ]
    ) {
        if let Err(error) = parse_principal(&header) {
            refused_with(&error, 401)?;
        }
    }
}

/// Standard base64, as EasyAuth sends the principal header.
fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
