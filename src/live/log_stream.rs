//! `LogStream`: the `execution_data` change feed → real-time messages for an execution's two
//! groups (`realtime::groups`).
//!
//! Per batch and execution: an `executionLogs` message per group with the logs sorted by
//! `sequence` (duplicates within the batch dropped; in the members' copy an admin-only line is a
//! placeholder that keeps its place), the highest `variables` version and the latest `state`
//! to the admins only, and a `result` notice to both. The browser dedupes by sequence across
//! batches, so a redelivered batch is harmless.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use super::publish;
use crate::model::rows::{self, Reader};
use crate::model::{ExecutionDataDoc, LogDoc, ResultDoc, StateDoc, VariablesDoc};
use crate::realtime::groups::{self, Audience};
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
        for (audience, reader) in [
            (Audience::Members, Reader::Member),
            (Audience::Admins, Reader::Admin),
        ] {
            let group = groups::execution(audience, &execution_id);
            let message = |target: &str, argument: Value| HubMessage {
                group: group.clone(),
                target: target.to_owned(),
                arguments: vec![argument],
            };
            for logs in chunk_logs(found.logs.values(), reader) {
                messages.push(message(
                    TARGET_LOGS,
                    json!({ "executionId": execution_id, "logs": logs }),
                ));
            }
            // Variables and state are admin-only, as on the query API.
            if audience == Audience::Admins {
                if let Some(v) = &found.variables {
                    messages.push(message(
                        TARGET_VARIABLES,
                        json!({ "executionId": execution_id, "version": v.version, "variables": v.variables }),
                    ));
                }
                if let Some(s) = &found.state {
                    messages.push(message(
                        TARGET_STATE,
                        json!({ "executionId": execution_id, "version": s.version, "state": s.state, "timestamp": s.timestamp }),
                    ));
                }
            }
            if let Some(r) = &found.result {
                messages.push(message(
                    TARGET_RESULT,
                    json!({
                        "executionId": execution_id, "resultType": r.result_type, "resultSize": r.result_size,
                        "inBlob": r.blob_ref.is_some(), "timestamp": r.timestamp,
                    }),
                ));
            }
        }
    }
    (messages, skipped)
}

/// The logs (already in sequence order) as `reader` gets them, in message payloads of at most
/// `MAX_LOGS_BYTES_PER_MESSAGE` serialized bytes each; usually exactly one.
fn chunk_logs<'a>(logs: impl Iterator<Item = &'a LogDoc>, reader: Reader) -> Vec<Vec<Value>> {
    let mut chunks: Vec<Vec<Value>> = Vec::new();
    let mut current: Vec<Value> = Vec::new();
    let mut current_bytes = 0;
    for log in logs {
        let (entry, size) = if reader.sees(log) {
            whole_entry(log)
        } else {
            let entry = serde_json::to_value(rows::redacted_log_entry(log)).unwrap_or_default();
            let size = entry.to_string().len();
            (entry, size)
        };
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

/// A line as the stream carries it whole, with its serialized size; one bigger than a message
/// loses its `data` and most of its message (marked `truncated`).
fn whole_entry(log: &LogDoc) -> (Value, usize) {
    let mut entry = rows::stream_log_entry(log);
    let size = entry.to_string().len();
    if size <= MAX_LOGS_BYTES_PER_MESSAGE {
        return (entry, size);
    }
    entry["data"] = Value::Null;
    entry["message"] = json!(log
        .message
        .chars()
        .take(TRUNCATED_MESSAGE_CHARS)
        .collect::<String>());
    entry["truncated"] = json!(true);
    let size = entry.to_string().len();
    (entry, size)
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
        let groups: Vec<&str> = messages.iter().map(|m| m.group.as_str()).collect();
        assert_eq!(
            groups,
            [
                "execution:a",
                "execution-admin:a",
                "execution:b",
                "execution-admin:b"
            ]
        );
        for message in &messages[..2] {
            assert_eq!(message.target, TARGET_LOGS);
            assert_eq!(sequences(message), vec![1, 2, 3]);
        }
    }

    fn sequences(message: &HubMessage) -> Vec<u64> {
        message.arguments[0]["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["sequence"].as_u64().unwrap())
            .collect()
    }

    #[test]
    fn members_get_placeholders_and_no_variables_or_state_admins_everything() {
        let mut debug = log("a", 2);
        debug["level"] = json!("DEBUG");
        debug["message"] = json!("apiKey=secret");
        debug["data"] = json!({"apiKey": "secret"});
        let mut traceback = log("a", 3);
        traceback["level"] = json!("Traceback");
        traceback["message"] = json!("secret in a stack");
        let variables = json!({"id": VariablesDoc::id_for(1), "executionId": "a", "type": "variables",
                               "timestamp": "2025-01-01T00:00:00Z", "version": 1,
                               "variables": {"apiKey": "secret"}});
        let state = json!({"id": "state", "executionId": "a", "type": "state", "version": 1,
                           "timestamp": "2025-01-01T00:00:00Z", "state": {"token": "secret"}});
        let result = json!({"id": "result", "executionId": "a", "type": "result",
                            "timestamp": "2025-01-01T00:00:00Z", "result": {"ok": true},
                            "resultType": "json", "resultSize": 11});
        let (messages, skipped) =
            messages_for_batch(&[log("a", 1), debug, traceback, variables, state, result]);
        assert!(skipped.is_empty(), "{skipped:?}");
        let members: Vec<&HubMessage> = messages
            .iter()
            .filter(|m| m.group == "execution:a")
            .collect();
        let admins: Vec<&HubMessage> = messages
            .iter()
            .filter(|m| m.group == "execution-admin:a")
            .collect();
        assert_eq!(members.len() + admins.len(), messages.len());

        let targets = |list: &[&HubMessage]| -> Vec<String> {
            list.iter().map(|m| m.target.clone()).collect()
        };
        assert_eq!(targets(&members), [TARGET_LOGS, TARGET_RESULT]);
        assert_eq!(
            targets(&admins),
            [TARGET_LOGS, TARGET_VARIABLES, TARGET_STATE, TARGET_RESULT]
        );
        // Every sequence present for members; the hidden ones as bare placeholders.
        assert_eq!(sequences(members[0]), vec![1, 2, 3]);
        let logs = members[0].arguments[0]["logs"].as_array().unwrap();
        assert_eq!(logs[0]["message"], "m1");
        for hidden in &logs[1..] {
            let keys: Vec<&String> = hidden.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["id", "sequence", "timestamp", "level", "redacted"]);
            assert_eq!(hidden["redacted"], true);
        }
        for message in &members {
            assert!(
                !message.arguments[0].to_string().contains("secret"),
                "{message:?}"
            );
        }
        let whole = admins[0].arguments[0]["logs"].as_array().unwrap();
        assert_eq!(whole[1]["message"], "apiKey=secret");
        assert_eq!(whole[1]["data"]["apiKey"], "secret");
        assert!(whole.iter().all(|l| l.get("redacted").is_none()));
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
        let messages: Vec<HubMessage> = messages
            .into_iter()
            .filter(|m| m.group == "execution-admin:a")
            .collect();
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
        assert_eq!(messages[0].group, "execution-admin:a");
        assert_eq!(messages[0].target, TARGET_VARIABLES);
        assert_eq!(messages[0].arguments[0]["version"], 5);
        assert_eq!(messages[0].arguments[0]["variables"]["v"], 5);
    }

    #[test]
    fn unreadable_documents_are_reported_not_fatal() {
        let (messages, skipped) =
            messages_for_batch(&[json!({"id": "x", "type": "mystery"}), log("a", 1)]);
        assert_eq!(messages.len(), 2);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].starts_with("x:"));
    }
}
