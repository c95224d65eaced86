//! Dead letters: a batch that failed every attempt is written to the `deadletters` container so
//! the change feed can move on without losing it. Large payloads are split into parts that each
//! fit the 2 MB document limit. The reading side (`list`, `count`, `remove`) puts a batch's
//! parts back together, for the tools that show and replay them.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::clock::Clock;
use crate::store::{query_all, string_field, Container, FilterOp, Query, Store, StoreError};

/// The `type` of every dead-letter part document.
pub const DEAD_LETTER_TYPE: &str = "deadletter";
/// Parts read per query page: each may hold up to ~1.5 MB, so few at a time.
const PAGE: usize = 20;

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
                        // Keep the batch's order: what came before goes first.
                        if !current.is_empty() {
                            parts.push(json!({ "documents": std::mem::take(&mut current) }));
                            size = 0;
                        }
                        parts.extend(document_parts(&text));
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

/// One document too big for a part, as raw text parts marked as a document's (so a reader tells
/// them from the parts of an undecodable payload).
fn document_parts(text: &str) -> Vec<Value> {
    let mut parts = raw_parts(text);
    for part in &mut parts {
        part["rawDocument"] = json!(true);
    }
    parts
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
    let documents = match &payload {
        DeadLetterPayload::Documents(documents) => Some(documents.len()),
        DeadLetterPayload::Raw(_) => None,
    };
    let parts = parts(payload);
    let total = parts.len();
    let mut ids = Vec::with_capacity(total);
    for (index, mut part) in parts.into_iter().enumerate() {
        let id = format!("{}-{batch_id}-{}", letter.function, index + 1);
        if let Value::Object(fields) = &mut part {
            fields.insert("id".into(), json!(id));
            fields.insert("type".into(), json!(DEAD_LETTER_TYPE));
            fields.insert("functionName".into(), json!(letter.function));
            fields.insert("batchId".into(), json!(batch_id.to_string()));
            fields.insert("invocationId".into(), json!(letter.invocation_id));
            fields.insert("reason".into(), json!(letter.reason));
            fields.insert("attempts".into(), json!(letter.attempts));
            fields.insert("part".into(), json!(index + 1));
            fields.insert("parts".into(), json!(total));
            fields.insert("createdAt".into(), json!(now));
            if let Some(count) = documents {
                fields.insert("documentCount".into(), json!(count));
            }
        }
        store.upsert(Container::DeadLetters, part, None).await?;
        ids.push(id);
    }
    Ok(ids)
}

/// One dead-lettered batch as written: its parts put back together.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterRecord {
    /// `{function}-{batchId}`: the ids of its parts without the `-{part}` suffix.
    pub id: String,
    pub function: String,
    pub batch_id: String,
    pub invocation_id: String,
    pub reason: String,
    pub attempts: u64,
    pub created_at: Option<String>,
    /// The ids of the part documents found, in part order.
    pub part_ids: Vec<String>,
    /// How many parts the record was written with (more than `part_ids` when some are missing).
    pub parts: usize,
    pub payload: DeadLetterPayload,
}

impl DeadLetterRecord {
    /// Whether every part was found (a record missing one cannot be replayed whole).
    pub fn is_complete(&self) -> bool {
        self.part_ids.len() == self.parts
    }

    /// The number of documents, when the payload is decoded documents.
    pub fn documents(&self) -> Option<usize> {
        match &self.payload {
            DeadLetterPayload::Documents(documents) => Some(documents.len()),
            DeadLetterPayload::Raw(_) => None,
        }
    }

    /// Whether `wanted` names this record: its id, its batch id, or one of its parts' ids.
    pub fn is_named(&self, wanted: &str) -> bool {
        self.id == wanted || self.batch_id == wanted || self.part_ids.iter().any(|p| p == wanted)
    }
}

fn text(doc: &Value, field: &str) -> String {
    string_field(doc, field).unwrap_or_default().to_owned()
}

/// Puts the parts of one batch (any order) back together.
fn assemble(mut parts: Vec<Value>) -> Option<DeadLetterRecord> {
    parts.sort_by_key(|p| p["part"].as_u64().unwrap_or(0));
    let first = parts.first()?.clone();
    let function = text(&first, "functionName");
    let batch_id = text(&first, "batchId");
    let mut documents: Vec<String> = Vec::new();
    let mut raw = String::new();
    // An oversized document's text, collected across its parts until it is whole.
    let mut pending_document = String::new();
    let mut any_documents = false;
    for part in &parts {
        if let Some(list) = part["documents"].as_array() {
            any_documents = true;
            documents.extend(list.iter().map(Value::to_string));
        } else if let Some(text) = part["rawPayload"].as_str() {
            if part["rawDocument"] == json!(true) {
                any_documents = true;
                pending_document.push_str(text);
                // Complete once it parses; its parts are consecutive.
                if serde_json::from_str::<serde::de::IgnoredAny>(&pending_document).is_ok() {
                    documents.push(std::mem::take(&mut pending_document));
                }
            } else {
                raw.push_str(text);
            }
        }
    }
    let payload = if any_documents || raw.is_empty() {
        DeadLetterPayload::Documents(documents)
    } else {
        DeadLetterPayload::Raw(raw)
    };
    Some(DeadLetterRecord {
        id: format!("{function}-{batch_id}"),
        function,
        batch_id,
        invocation_id: text(&first, "invocationId"),
        reason: text(&first, "reason"),
        attempts: first["attempts"].as_u64().unwrap_or(0),
        created_at: string_field(&first, "createdAt").map(str::to_owned),
        part_ids: parts.iter().map(|p| text(p, "id")).collect(),
        parts: first["parts"].as_u64().unwrap_or(1) as usize,
        payload,
    })
}

/// Every dead-lettered batch of `function`, oldest first.
pub async fn list(store: &dyn Store, function: &str) -> Result<Vec<DeadLetterRecord>, StoreError> {
    let query = Query::new(PAGE).filter("type", FilterOp::Eq(json!(DEAD_LETTER_TYPE)));
    let mut batches: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for part in query_all(store, Container::DeadLetters, function, query).await? {
        batches
            .entry(text(&part, "batchId"))
            .or_default()
            .push(part);
    }
    let mut records: Vec<DeadLetterRecord> = batches.into_values().filter_map(assemble).collect();
    records.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
    Ok(records)
}

/// How many batches of `function` are dead-lettered (one first part each).
pub async fn count(store: &dyn Store, function: &str) -> Result<u64, StoreError> {
    let query = Query::new(PAGE)
        .filter("type", FilterOp::Eq(json!(DEAD_LETTER_TYPE)))
        .filter("part", FilterOp::Eq(json!(1)));
    Ok(query_all(store, Container::DeadLetters, function, query)
        .await?
        .len() as u64)
}

/// Deletes every part of the record (a part already gone is fine: another replay removed it).
pub async fn remove(store: &dyn Store, record: &DeadLetterRecord) -> Result<(), StoreError> {
    for id in &record.part_ids {
        store
            .delete(Container::DeadLetters, &record.function, id, None)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::clock::{Clock, SystemClock};
    use std::sync::Arc;

    async fn sqlite(dir: &std::path::Path) -> Arc<dyn Store> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Arc::new(crate::store::sqlite::SqliteStore::open(&dir.join("d.db"), clock).unwrap())
    }

    fn letter<'a>(function: &'a str) -> DeadLetter<'a> {
        DeadLetter {
            function,
            invocation_id: "inv-1",
            reason: "store down",
            attempts: 6,
        }
    }

    #[tokio::test]
    async fn records_read_back_whole_and_go_away_when_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite(dir.path()).await;
        let huge = json!({"id": "big", "executionId": "e", "pad": "é".repeat(900_000)});
        let small = json!({"id": "s", "executionId": "e"});
        let documents: Vec<String> = [&small, &huge, &small].map(Value::to_string).into();
        let ids = record(
            store.as_ref(),
            &SystemClock,
            &letter("LogStream"),
            DeadLetterPayload::Documents(documents.clone()),
        )
        .await
        .unwrap();
        assert!(ids.len() > 2, "{ids:?}");
        record(
            store.as_ref(),
            &SystemClock,
            &letter("LogStream"),
            DeadLetterPayload::Raw("{not json".into()),
        )
        .await
        .unwrap();
        record(
            store.as_ref(),
            &SystemClock,
            &letter("MetricsAggregate"),
            DeadLetterPayload::Documents(vec![small.to_string()]),
        )
        .await
        .unwrap();

        let records = list(store.as_ref(), "LogStream").await.unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(count(store.as_ref(), "LogStream").await.unwrap(), 2);
        let whole = records
            .iter()
            .find(|r| r.documents().is_some())
            .expect("the documents record");
        assert!(whole.is_complete());
        assert_eq!(whole.payload, DeadLetterPayload::Documents(documents));
        assert_eq!((whole.reason.as_str(), whole.attempts), ("store down", 6));
        assert!(whole.is_named(&ids[1]) && whole.is_named(&whole.batch_id));
        let raw = records.iter().find(|r| r.documents().is_none()).unwrap();
        assert_eq!(raw.payload, DeadLetterPayload::Raw("{not json".into()));

        remove(store.as_ref(), whole).await.unwrap();
        remove(store.as_ref(), whole).await.unwrap();
        assert_eq!(count(store.as_ref(), "LogStream").await.unwrap(), 1);
        assert_eq!(count(store.as_ref(), "MetricsAggregate").await.unwrap(), 1);
    }

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
