//! Keyset continuation tokens, shared by every backend: a page ends at a position (its last
//! row's order-by values and id), and the token carries that position tied to the query that
//! produced it, so a token from another query, partition or backend build is refused.

use base64::Engine;
use serde_json::Value;

use super::error::StoreError;

/// Bumped when the token format changes, so old tokens fail cleanly.
const TOKEN_VERSION: u64 = 1;

/// FNV-1a: stable across builds and processes, unlike `std`'s hasher; this only needs to tell
/// queries apart, not resist forgery (a forged token can only select rows the query allows).
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.iter().chain(&[0xff]) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// The token for the position after a page's last row: its order-by values and id.
pub fn encode(fingerprint: &str, keys: Vec<Value>, id: &str) -> String {
    let token = serde_json::json!({ "v": TOKEN_VERSION, "q": fingerprint, "k": keys, "id": id });
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

/// The order-by values (scalars, never null) and id to continue after, or `BadContinuation`
/// for any token this query did not issue.
pub fn decode(
    token: &str,
    fingerprint: &str,
    key_count: usize,
) -> Result<(Vec<Value>, String), StoreError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| StoreError::BadContinuation)?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| StoreError::BadContinuation)?;
    if value.get("v").and_then(Value::as_u64) != Some(TOKEN_VERSION)
        || value.get("q").and_then(Value::as_str) != Some(fingerprint)
    {
        return Err(StoreError::BadContinuation);
    }
    let keys = value
        .get("k")
        .and_then(Value::as_array)
        .filter(|keys| keys.len() == key_count)
        .filter(|keys| {
            // Order keys are never null (rows without them are excluded) nor structured.
            keys.iter()
                .all(|k| matches!(k, Value::Bool(_) | Value::Number(_) | Value::String(_)))
        })
        .ok_or(StoreError::BadContinuation)?;
    let id = value
        .get("id")
        .and_then(Value::as_str)
        .ok_or(StoreError::BadContinuation)?;
    Ok((keys.clone(), id.to_owned()))
}
