//! A change-feed batch as a function receives it, in both modes: the documents as JSON text
//! (`RawDocument`), which each function decodes in one pass into its own typed view, and the
//! summary the logs and `GET /api/health` report (size, executions touched, newest write), taken
//! from those same views so no document is read twice.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::model::{is_syntax_error, RawDocument};

/// How many distinct execution ids a log line names before it only counts them.
const LOGGED_EXECUTION_IDS: usize = 20;

/// What a view knows for the batch summary.
pub trait DocumentFacts {
    /// `executionId`, or the `id` of an `execution` document.
    fn execution_id(&self) -> Option<&str>;
    /// `_ts`: epoch seconds of the document's last write.
    fn written_at(&self) -> Option<i64>;
}

/// What the logs and `GET /api/health` say about a batch: its size, the executions it touches and
/// the write time of its newest document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSummary {
    pub documents: usize,
    /// Distinct `executionId`s (or the `id` of `execution` documents), first seen first, at most
    /// `LOGGED_EXECUTION_IDS`.
    pub execution_ids: Vec<String>,
    pub distinct_executions: usize,
    /// Largest `_ts` (epoch seconds) in the batch.
    pub newest_write: Option<i64>,
}

impl BatchSummary {
    pub fn of<'f, F: DocumentFacts + ?Sized + 'f>(facts: impl IntoIterator<Item = &'f F>) -> Self {
        let mut seen = HashSet::new();
        let mut execution_ids = Vec::new();
        let mut newest_write: Option<i64> = None;
        let mut documents = 0;
        for fact in facts {
            documents += 1;
            if let Some(id) = fact.execution_id() {
                if !seen.contains(id) {
                    seen.insert(id.to_owned());
                    if execution_ids.len() < LOGGED_EXECUTION_IDS {
                        execution_ids.push(id.to_owned());
                    }
                }
            }
            if let Some(ts) = fact.written_at() {
                newest_write = Some(newest_write.map_or(ts, |cur| cur.max(ts)));
            }
        }
        BatchSummary {
            documents,
            execution_ids,
            distinct_executions: seen.len(),
            newest_write,
        }
    }

    /// Seconds from the newest write to `now` (epoch seconds), never negative.
    pub fn lag_seconds(&self, now: i64) -> Option<i64> {
        self.newest_write.map(|ts| (now - ts).max(0))
    }
}

/// The summary facts of any document, read leniently (a field of another type counts as absent).
/// Only used for documents a function's own view could not read.
#[derive(Debug, Default, Deserialize)]
struct AnyFacts<'a> {
    #[serde(rename = "executionId", borrow, default)]
    execution_id: Option<&'a RawValue>,
    #[serde(rename = "type", borrow, default)]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(rename = "_ts", borrow, default)]
    ts: Option<&'a RawValue>,
    #[serde(rename = "_lsn", borrow, default)]
    lsn: Option<&'a RawValue>,
}

/// `AnyFacts` resolved: owned, since lenient strings may need unescaping.
#[derive(Debug, Default)]
struct OwnedFacts {
    execution_id: Option<String>,
    ts: Option<i64>,
}

impl DocumentFacts for OwnedFacts {
    fn execution_id(&self) -> Option<&str> {
        self.execution_id.as_deref()
    }
    fn written_at(&self) -> Option<i64> {
        self.ts
    }
}

fn lenient_str(raw: Option<&RawValue>) -> Option<String> {
    raw.and_then(|r| serde_json::from_str::<Cow<str>>(r.get()).ok())
        .map(Cow::into_owned)
}

fn facts_of(document: &RawDocument<'_>) -> OwnedFacts {
    let Ok(facts) = document.decode::<AnyFacts>() else {
        return OwnedFacts::default();
    };
    let execution_id = lenient_str(facts.execution_id).or_else(|| {
        (lenient_str(facts.kind).as_deref() == Some("execution"))
            .then(|| lenient_str(facts.id))
            .flatten()
    });
    OwnedFacts {
        execution_id,
        ts: lenient_i64(facts.ts),
    }
}

/// A document read for what every function may need of it (type, ids, feed position; leniently:
/// a member of another type counts as absent) and as `T`, which may fail without failing the
/// batch: for functions whose views are owned documents (`ExecutionDoc`).
#[derive(Debug)]
pub struct Delivered<T> {
    pub kind: Option<String>,
    pub id: Option<String>,
    execution_id: Option<String>,
    /// `_lsn`: the change-feed position, where the backend has it.
    pub lsn: Option<i64>,
    /// `_ts`: epoch seconds of the last write.
    pub ts: Option<i64>,
    pub document: Result<T, String>,
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Delivered<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Reading the text as a raw value checks it is JSON; both reads below then only decide
        // shapes.
        let raw = <&'de RawValue>::deserialize(deserializer)?;
        let any: AnyFacts = serde_json::from_str(raw.get()).map_err(serde::de::Error::custom)?;
        let kind = lenient_str(any.kind);
        let id = lenient_str(any.id);
        let execution_id = lenient_str(any.execution_id).or_else(|| {
            (kind.as_deref() == Some("execution"))
                .then(|| id.clone())
                .flatten()
        });
        Ok(Delivered {
            kind,
            id,
            execution_id,
            lsn: lenient_i64(any.lsn),
            ts: lenient_i64(any.ts),
            document: serde_json::from_str(raw.get()).map_err(|e: serde_json::Error| e.to_string()),
        })
    }
}

impl<T> DocumentFacts for Delivered<T> {
    fn execution_id(&self) -> Option<&str> {
        self.execution_id.as_deref()
    }
    fn written_at(&self) -> Option<i64> {
        self.ts
    }
}

fn lenient_i64(raw: Option<&RawValue>) -> Option<i64> {
    raw.and_then(|r| r.get().parse().ok())
}

/// A document a function's view could not read: its id (or `<no id>`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub id: String,
    pub reason: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.id, self.reason)
    }
}

/// One document's outcome when decoded as `V`.
#[derive(Debug)]
pub enum Decoded<V> {
    Read(V),
    Skipped(Skipped),
}

/// A document that is not JSON: the batch cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("document {index} of the batch is not valid JSON: {reason}")]
pub struct UnreadableBatch {
    pub index: usize,
    pub reason: String,
}

/// The documents of one change-feed delivery.
#[derive(Debug)]
pub struct Batch<'a> {
    documents: &'a [RawDocument<'a>],
    /// 0 on the first delivery.
    retry_count: u64,
    summary: OnceLock<BatchSummary>,
}

impl<'a> Batch<'a> {
    pub fn new(documents: &'a [RawDocument<'a>], retry_count: u64) -> Self {
        Batch {
            documents,
            retry_count,
            summary: OnceLock::new(),
        }
    }

    pub fn documents(&self) -> &'a [RawDocument<'a>] {
        self.documents
    }

    pub fn len(&self) -> usize {
        self.documents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.documents.is_empty()
    }

    /// Every document as `V`, in order, each read once; a document `V` cannot read is skipped
    /// with its reason. Notes the batch summary from the same views (and logs `batch received`).
    /// A document that is not JSON at all makes the batch unreadable.
    pub fn decode<V>(&self) -> Result<Vec<Decoded<V>>, UnreadableBatch>
    where
        V: Deserialize<'a> + DocumentFacts,
    {
        let mut decoded = Vec::with_capacity(self.documents.len());
        let mut skipped_facts = Vec::new();
        for (index, document) in self.documents.iter().enumerate() {
            match document.decode::<V>() {
                Ok(view) => decoded.push(Decoded::Read(view)),
                Err(e) if is_syntax_error(&e) => {
                    return Err(UnreadableBatch {
                        index,
                        reason: e.to_string(),
                    })
                }
                Err(e) => {
                    // The view may stop at the first field it cannot read; the whole text must
                    // still be JSON for the document to count as merely of another shape.
                    let id = match document.decode::<AnyFacts>() {
                        Ok(any) => lenient_str(any.id).unwrap_or_else(|| "<no id>".to_owned()),
                        Err(syntax) => {
                            return Err(UnreadableBatch {
                                index,
                                reason: syntax.to_string(),
                            })
                        }
                    };
                    skipped_facts.push(facts_of(document));
                    decoded.push(Decoded::Skipped(Skipped {
                        id,
                        reason: e.to_string(),
                    }));
                }
            }
        }
        if self.summary.get().is_none() {
            let read = decoded.iter().filter_map(|d| match d {
                Decoded::Read(view) => Some(view as &dyn DocumentFacts),
                Decoded::Skipped(_) => None,
            });
            let others = skipped_facts.iter().map(|f| f as &dyn DocumentFacts);
            let facts: Vec<&dyn DocumentFacts> = read.chain(others).collect();
            self.note(BatchSummary::of(facts));
        }
        Ok(decoded)
    }

    /// `decode`, keeping the views read and noting each skipped document's reason in `skipped`
    /// (what a function reports back to the host).
    pub fn read<V>(&self, skipped: &mut Vec<String>) -> Result<Vec<V>, UnreadableBatch>
    where
        V: Deserialize<'a> + DocumentFacts,
    {
        let decoded = self.decode::<V>()?;
        let mut views = Vec::with_capacity(decoded.len());
        for item in decoded {
            match item {
                Decoded::Read(view) => views.push(view),
                Decoded::Skipped(skip) => skipped.push(skip.to_string()),
            }
        }
        Ok(views)
    }

    /// The summary, from the views a function decoded, or read from the documents themselves
    /// when it decoded none.
    pub fn summary(&self) -> &BatchSummary {
        self.summary.get_or_init(|| {
            let facts: Vec<OwnedFacts> = self.documents.iter().map(facts_of).collect();
            let summary = BatchSummary::of(&facts);
            log_received(&summary, self.retry_count);
            summary
        })
    }

    fn note(&self, summary: BatchSummary) {
        log_received(&summary, self.retry_count);
        let _ = self.summary.set(summary);
    }
}

fn log_received(summary: &BatchSummary, retry_count: u64) {
    // The enclosing span (invocation or pump) names the function and the invocation.
    tracing::info!(
        documents = summary.documents,
        executions = summary.distinct_executions,
        execution_ids = ?summary.execution_ids,
        retry_count,
        "batch received"
    );
}

/// Joins documents back into one JSON array text (dead letters of an unreadable batch).
pub fn array_text(documents: &[RawDocument<'_>]) -> String {
    let mut text =
        String::with_capacity(documents.iter().map(|d| d.json().len() + 1).sum::<usize>() + 2);
    text.push('[');
    for (index, document) in documents.iter().enumerate() {
        if index > 0 {
            text.push(',');
        }
        text.push_str(document.json());
    }
    text.push(']');
    text
}

/// Documents held as text, for tests that start from values.
#[cfg(test)]
pub(crate) struct TestBatch {
    texts: Vec<String>,
}

#[cfg(test)]
impl TestBatch {
    pub fn of(values: &[serde_json::Value]) -> Self {
        TestBatch {
            texts: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    pub fn documents(&self) -> Vec<RawDocument<'_>> {
        self.texts.iter().map(|t| RawDocument::new(t)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(values: &[serde_json::Value]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    fn documents(texts: &[String]) -> Vec<RawDocument<'_>> {
        texts.iter().map(|t| RawDocument::new(t)).collect()
    }

    #[test]
    fn summary_names_each_execution_once_and_the_newest_write() {
        let texts = raw(&[
            json!({"id": "l1", "executionId": "e1", "_ts": 100}),
            json!({"id": "l2", "executionId": "e2", "_ts": 300}),
            json!({"id": "l3", "executionId": "e1", "_ts": 200}),
            json!({"id": "e3", "type": "execution", "scope": "GLOBAL"}),
            json!({"id": "other"}),
        ]);
        let docs = documents(&texts);
        let batch = Batch::new(&docs, 0);
        let summary = batch.summary();
        assert_eq!(summary.documents, 5);
        assert_eq!(summary.execution_ids, ["e1", "e2", "e3"]);
        assert_eq!(summary.distinct_executions, 3);
        assert_eq!(summary.newest_write, Some(300));
        assert_eq!(summary.lag_seconds(305), Some(5));
        assert_eq!(summary.lag_seconds(250), Some(0));
        assert_eq!(Batch::new(&[], 0).summary().lag_seconds(1), None);
    }

    #[test]
    fn summary_caps_the_logged_ids_but_counts_them_all() {
        let texts = raw(&(0..50)
            .map(|i| json!({"executionId": format!("e{i}")}))
            .collect::<Vec<_>>());
        let docs = documents(&texts);
        let summary = Batch::new(&docs, 0).summary().clone();
        assert_eq!(summary.execution_ids.len(), LOGGED_EXECUTION_IDS);
        assert_eq!(summary.distinct_executions, 50);
    }

    #[derive(Debug, Deserialize)]
    struct Seq<'a> {
        #[serde(rename = "executionId", borrow)]
        execution_id: Cow<'a, str>,
        n: u64,
    }

    impl DocumentFacts for Seq<'_> {
        fn execution_id(&self) -> Option<&str> {
            Some(&self.execution_id)
        }
        fn written_at(&self) -> Option<i64> {
            Some(self.n as i64)
        }
    }

    #[test]
    fn views_skip_what_they_cannot_read_and_syntax_errors_stop_the_batch() {
        let texts = vec![
            r#"{"id":"a","executionId":"e1","n":1}"#.to_owned(),
            r#"{"id":"b","executionId":"e2","n":"x","_ts":7}"#.to_owned(),
        ];
        let docs = documents(&texts);
        let batch = Batch::new(&docs, 0);
        let decoded = batch.decode::<Seq>().unwrap();
        assert!(matches!(&decoded[0], Decoded::Read(s) if s.n == 1));
        let Decoded::Skipped(skipped) = &decoded[1] else {
            panic!("b must be skipped")
        };
        assert_eq!(skipped.id, "b");
        assert!(
            skipped.to_string().starts_with("b: invalid type"),
            "{skipped}"
        );
        // The summary counts the skipped document's facts too.
        assert_eq!(batch.summary().execution_ids, ["e1", "e2"]);
        assert_eq!(batch.summary().newest_write, Some(7));

        let broken = vec![texts[0].clone(), r#"{"id":"c","n":"#.to_owned()];
        let docs = documents(&broken);
        let error = Batch::new(&docs, 0).decode::<Seq>().unwrap_err();
        assert_eq!(error.index, 1);
        assert_eq!(array_text(&docs), format!("[{},{}]", broken[0], broken[1]));
    }
}
