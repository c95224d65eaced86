//! Dead letters: a batch that failed every attempt is written to the `deadletters` container so
//! the change feed can move on without losing it. Large payloads are split into parts that each
//! fit the 2 MB document limit.

use serde_json::{json, Value};

use crate::clock::Clock;
use crate::store::{Container, Store, StoreError};

/// Headroom under the 2 MB document limit for the envelope fields and escaping.
const PART_BUDGET_BYTES: usize = 1_500_000;

#[derive(Debug, Clone, PartialEq)]
pub enum DeadLetterPayload {
    /// Change-feed documents, each as its JSON text.
    Documents(Vec<String>),
    /// A request body that could not be decoded, kept verbatim.
    Raw(String),
}

#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    pub function: &'a str,
    pub invocation_id: &'a str,
    pub reason: &'a str,
    pub attempts: u64,
}

/// Splits the payload into part bodies of at most `PART_BUDGET_BYTES` each (one oversized
/// document becomes a raw part of its own text).
fn parts(payload: DeadLetterPayload) -> Vec<Value> {
    match payload {
        DeadLetterPayload::Documents(documents) => {
            let mut parts = Vec::new();
            let mut current: Vec<Value> = Vec::new();
            let mut size = 0;
            for text in documents {
                let doc_size = text.len();
                // A document too big for a part, or (never from a decoded batch) not JSON, is
                // kept as text.
                let doc = match serde_json::from_str::<Value>(&text) {
                    Ok(doc) if doc_size <= PART_BUDGET_BYTES => doc,
                    _ => {
                        parts.extend(raw_parts(&text));
                        continue;
                    }
                };
                if size + doc_size > PART_BUDGET_BYTES && !current.is_empty() {
                    parts.push(json!({ "documents": std::mem::take(&mut current) }));
                    size = 0;
                }
                size += doc_size;
                current.push(doc);
            }
            if !current.is_empty() || parts.is_empty() {
                parts.push(json!({ "documents": current }));
            }
            parts
        }
        DeadLetterPayload::Raw(text) => raw_parts(&text),
    }
}

fn raw_parts(text: &str) -> Vec<Value> {
    // JSON escaping can grow text up to 6x (\u00XX); budget for the worst case.
    let budget = PART_BUDGET_BYTES / 6;
    let mut parts = Vec::new();
    let mut start = 0;
    while start < text.len() || parts.is_empty() {
        let mut end = (start + budget).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        parts.push(json!({ "rawPayload": &text[start..end] }));
        start = end;
    }
    parts
}

/// Writes the dead letter; returns the ids of its part documents.
pub async fn record(
    store: &dyn Store,
    clock: &dyn Clock,
    letter: &DeadLetter<'_>,
    payload: DeadLetterPayload,
) -> Result<Vec<String>, StoreError> {
    let now = clock.now();
    let batch_id = uuid::Uuid::new_v4();
    let parts = parts(payload);
    let total = parts.len();
    let mut ids = Vec::with_capacity(total);
    for (index, mut part) in parts.into_iter().enumerate() {
        let id = format!("{}-{batch_id}-{}", letter.function, index + 1);
        if let Value::Object(fields) = &mut part {
            fields.insert("id".into(), json!(id));
            fields.insert("type".into(), json!("deadletter"));
            fields.insert("functionName".into(), json!(letter.function));
            fields.insert("batchId".into(), json!(batch_id.to_string()));
            fields.insert("invocationId".into(), json!(letter.invocation_id));
            fields.insert("reason".into(), json!(letter.reason));
            fields.insert("attempts".into(), json!(letter.attempts));
            fields.insert("part".into(), json!(index + 1));
            fields.insert("parts".into(), json!(total));
            fields.insert("createdAt".into(), json!(now));
        }
        store.upsert(Container::DeadLetters, part, None).await?;
        ids.push(id);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_batches_are_one_part() {
        let p = parts(DeadLetterPayload::Documents(vec![
            json!({"id": "a"}).to_string(),
            json!({"id": "b"}).to_string(),
        ]));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0]["documents"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn large_payloads_split_and_rejoin_exactly() {
        let text: String = "é{\"x\":1}".repeat(400_000);
        let p = parts(DeadLetterPayload::Raw(text.clone()));
        assert!(p.len() > 1);
        let joined: String = p
            .iter()
            .map(|v| v["rawPayload"].as_str().unwrap())
            .collect();
        assert_eq!(joined, text);
        for part in &p {
            assert!(part.to_string().len() < crate::model::MAX_DOCUMENT_BYTES);
        }
    }

    #[test]
    fn many_documents_split_into_parts_under_budget() {
        let doc = json!({"id": "x", "pad": "y".repeat(100_000)});
        let p = parts(DeadLetterPayload::Documents(vec![doc.to_string(); 40]));
        let count: usize = p
            .iter()
            .map(|v| v["documents"].as_array().unwrap().len())
            .sum();
        assert_eq!(count, 40);
        assert!(p.len() >= 3);
    }
}
