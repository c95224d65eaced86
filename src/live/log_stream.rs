//! `LogStream`: the `execution_data` change feed → real-time messages for `execution:{id}`.
//!
//! Per batch and execution: one `executionLogs` message with the logs sorted by `sequence`
//! (duplicates within the batch dropped), the highest `variables` version only, and a notice per
//! `state`/`result` document. The browser dedupes by sequence across batches, so a redelivered
//! batch is harmless.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{execution_group, publish};
use crate::model::{rows, ExecutionDataDoc, LogDoc, ResultDoc, StateDoc, VariablesDoc};
use crate::realtime::HubMessage;
use crate::runtime::{AppContext, BatchHandler, FunctionError};

pub const TARGET_LOGS: &str = "executionLogs";
pub const TARGET_VARIABLES: &str = "executionVariables";
pub const TARGET_STATE: &str = "executionState";
pub const TARGET_RESULT: &str = "executionResult";

/// Serialized logs per `executionLogs` message. The SignalR REST API refuses bodies over 1 MB, so
/// a batch whose logs are bigger is split into several messages, still in sequence order.
pub const MAX_LOGS_BYTES_PER_MESSAGE: usize = 512 * 1024;
/// A single log bigger than the message budget is sent without `data` and with its message cut
/// to this many characters, marked `truncated: true` (the query API has it whole).
const TRUNCATED_MESSAGE_CHARS: usize = 16 * 1024;

#[derive(Default)]
struct PerExecution {
    logs: BTreeMap<u64, LogDoc>,
    variables: Option<VariablesDoc>,
    state: Option<StateDoc>,
    result: Option<ResultDoc>,
}

/// The pure part: documents in, messages out, plus the documents it could not read.
pub fn messages_for_batch(documents: &[Value]) -> (Vec<HubMessage>, Vec<String>) {
    let mut executions: BTreeMap<String, PerExecution> = BTreeMap::new();
    let mut skipped = Vec::new();
    for raw in documents {
        let doc = match ExecutionDataDoc::deserialize(raw) {
            Ok(doc) => doc,
            Err(e) => {
                let id = raw.get("id").and_then(Value::as_str).unwrap_or("<no id>");
                skipped.push(format!("{id}: {e}"));
                continue;
            }
        };
        let entry = executions.entry(doc.execution_id().to_owned()).or_default();
        match doc {
            ExecutionDataDoc::Log(log) => {
                entry.logs.insert(log.sequence, log);
            }
            ExecutionDataDoc::Variables(v) => {
                if entry
                    .variables
                    .as_ref()
                    .is_none_or(|cur| v.version > cur.version)
                {
                    entry.variables = Some(v);
                }
            }
            ExecutionDataDoc::State(s) => {
                if entry
                    .state
                    .as_ref()
                    .is_none_or(|cur| s.version >= cur.version)
                {
                    entry.state = Some(s);
                }
            }
            ExecutionDataDoc::Result(r) => entry.result = Some(r),
        }
    }

    let mut messages = Vec::new();
    for (execution_id, found) in executions {
        let group = execution_group(&execution_id);
        let message = |target: &str, argument: Value| HubMessage {
            group: group.clone(),
            target: target.to_owned(),
            arguments: vec![argument],
        };
        for logs in chunk_logs(found.logs.values()) {
            messages.push(message(
                TARGET_LOGS,
                json!({ "executionId": execution_id, "logs": logs }),
            ));
        }
        if let Some(v) = found.variables {
            messages.push(message(
                TARGET_VARIABLES,
                json!({ "executionId": execution_id, "version": v.version, "variables": v.variables }),
            ));
        }
        if let Some(s) = found.state {
            messages.push(message(
                TARGET_STATE,
                json!({ "executionId": execution_id, "version": s.version, "state": s.state, "timestamp": s.timestamp }),
            ));
        }
        if let Some(r) = found.result {
            messages.push(message(
                TARGET_RESULT,
                json!({
                    "executionId": execution_id, "resultType": r.result_type, "resultSize": r.result_size,
                    "inBlob": r.blob_ref.is_some(), "timestamp": r.timestamp,
                }),
            ));
        }
    }
    (messages, skipped)
}

/// The logs (already in sequence order) as message payloads of at most
/// `MAX_LOGS_BYTES_PER_MESSAGE` serialized bytes each; usually exactly one.
fn chunk_logs<'a>(logs: impl Iterator<Item = &'a LogDoc>) -> Vec<Vec<Value>> {
    let mut chunks: Vec<Vec<Value>> = Vec::new();
    let mut current: Vec<Value> = Vec::new();
    let mut current_bytes = 0;
    for log in logs {
        let mut entry = rows::stream_log_entry(log);
        let mut size = entry.to_string().len();
        if size > MAX_LOGS_BYTES_PER_MESSAGE {
            entry["data"] = Value::Null;
            entry["message"] = json!(log
                .message
                .chars()
                .take(TRUNCATED_MESSAGE_CHARS)
                .collect::<String>());
            entry["truncated"] = json!(true);
            size = entry.to_string().len();
        }
        if !current.is_empty() && current_bytes + size > MAX_LOGS_BYTES_PER_MESSAGE {
            chunks.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current_bytes += size + 1;
        current.push(entry);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

pub struct LogStream;

#[async_trait]
impl BatchHandler for LogStream {
    async fn handle(
        &self,
        ctx: &AppContext,
        documents: &[Value],
    ) -> Result<Vec<String>, FunctionError> {
        publish(
            ctx,
            "LogStream",
            documents.len(),
            messages_for_batch(documents),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(execution: &str, sequence: u64) -> Value {
        json!({"id": LogDoc::id_for(execution, sequence), "executionId": execution, "type": "log",
               "timestamp": "2025-01-01T00:00:00Z", "level": "info", "message": format!("m{sequence}"),
               "sequence": sequence, "_lsn": 1})
    }

    #[test]
    fn logs_group_per_execution_sorted_and_deduped() {
        let docs = vec![
            log("a", 3),
            log("b", 1),
            log("a", 1),
            log("a", 3),
            log("a", 2),
        ];
        let (messages, skipped) = messages_for_batch(&docs);
        assert!(skipped.is_empty());
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].group, "execution:a");
        assert_eq!(messages[0].target, TARGET_LOGS);
        let seqs: Vec<u64> = messages[0].arguments[0]["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["sequence"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        assert_eq!(messages[1].group, "execution:b");
    }

    #[test]
    fn big_batches_split_in_order_and_huge_logs_are_truncated() {
        let big = |sequence: u64, bytes: usize| {
            let mut doc = log("a", sequence);
            doc["data"] = json!("x".repeat(bytes));
            doc
        };
        let docs: Vec<Value> = (1..=5)
            .map(|s| big(s, 200 * 1024))
            .chain([big(6, 2_000_000)])
            .collect();
        let (messages, _) = messages_for_batch(&docs);
        assert!(messages.len() >= 3, "{} messages", messages.len());
        let mut seqs = Vec::new();
        for m in &messages {
            assert_eq!(m.target, TARGET_LOGS);
            assert!(m.arguments[0].to_string().len() < 1024 * 1024);
            for l in m.arguments[0]["logs"].as_array().unwrap() {
                seqs.push(l["sequence"].as_u64().unwrap());
            }
        }
        assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
        let logs = messages.last().unwrap().arguments[0]["logs"]
            .as_array()
            .unwrap()
            .clone();
        let last = logs.last().unwrap();
        assert_eq!(last["sequence"], 6);
        assert_eq!(last["truncated"], true);
        assert!(last["data"].is_null());
    }

    #[test]
    fn only_the_highest_variables_version_is_sent() {
        let vars = |v: u64| {
            json!({"id": VariablesDoc::id_for(v), "executionId": "a", "type": "variables",
                   "timestamp": "2025-01-01T00:00:00Z", "version": v, "variables": {"v": v}})
        };
        let (messages, _) = messages_for_batch(&[vars(2), vars(5), vars(3)]);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].target, TARGET_VARIABLES);
        assert_eq!(messages[0].arguments[0]["version"], 5);
        assert_eq!(messages[0].arguments[0]["variables"]["v"], 5);
    }

    #[test]
    fn unreadable_documents_are_reported_not_fatal() {
        let (messages, skipped) =
            messages_for_batch(&[json!({"id": "x", "type": "mystery"}), log("a", 1)]);
        assert_eq!(messages.len(), 1);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].starts_with("x:"));
    }
}
