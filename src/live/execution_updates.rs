//! `ExecutionUpdates`: the `executions` change feed → `executionUpdate` for both groups of the
//! execution (the detail page; a status is for members and admins alike) and
//! `executionHistoryUpdate` for `history:{scope}` (the list page, the list API's row).
//!
//! The change feed delivers the latest version of each document; if a batch still holds several
//! versions of one execution, only the last (newest) is sent. A redelivered batch re-sends the
//! same state, which the UI applies idempotently.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use super::publish;
use crate::model::{rows, ExecutionDoc};
use crate::realtime::groups::{self, Audience};
use crate::realtime::HubMessage;
use crate::runtime::{AppContext, BatchHandler, FunctionError};

pub const TARGET_UPDATE: &str = "executionUpdate";
pub const TARGET_HISTORY_UPDATE: &str = "executionHistoryUpdate";

pub fn status_update(doc: &ExecutionDoc) -> Value {
    json!({
        "executionId": doc.id,
        "status": doc.status,
        "isComplete": doc.status.is_terminal(),
        "completedAt": doc.completed_at,
        "durationMs": doc.duration_ms,
        "errorMessage": doc.error_message,
    })
}

/// The pure part: documents in, messages out, plus the documents it could not read.
pub fn messages_for_batch(documents: &[Value]) -> (Vec<HubMessage>, Vec<String>) {
    let mut latest: BTreeMap<String, ExecutionDoc> = BTreeMap::new();
    let mut skipped = Vec::new();
    for raw in documents {
        match ExecutionDoc::deserialize(raw) {
            // Later in the batch = newer: replace.
            Ok(doc) => {
                latest.insert(doc.id.clone(), doc);
            }
            Err(e) => {
                let id = raw.get("id").and_then(Value::as_str).unwrap_or("<no id>");
                skipped.push(format!("{id}: {e}"));
            }
        }
    }
    let mut messages = Vec::with_capacity(latest.len() * 3);
    for doc in latest.values() {
        for audience in [Audience::Members, Audience::Admins] {
            messages.push(HubMessage {
                group: groups::execution(audience, &doc.id),
                target: TARGET_UPDATE.to_owned(),
                arguments: vec![status_update(doc)],
            });
        }
        messages.push(HubMessage {
            group: groups::history(&doc.scope),
            target: TARGET_HISTORY_UPDATE.to_owned(),
            arguments: vec![serde_json::to_value(rows::execution_row(doc)).unwrap_or_default()],
        });
    }
    (messages, skipped)
}

pub struct ExecutionUpdates;

#[async_trait]
impl BatchHandler for ExecutionUpdates {
    async fn handle(
        &self,
        ctx: &AppContext,
        documents: &[Value],
    ) -> Result<Vec<String>, FunctionError> {
        publish(
            ctx,
            "ExecutionUpdates",
            documents.len(),
            messages_for_batch(documents),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn execution(id: &str, scope: &str, status: &str) -> Value {
        json!({"id": id, "type": "execution", "scope": scope, "executionId": id,
               "workflowName": "wf", "executedBy": "ann@x.com", "executedByName": "",
               "status": status, "startedAt": "2025-01-26T10:00:00Z", "_lsn": 3,
               "inputData": {"secret": 1}})
    }

    const ORG: &str = "org-0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01";

    #[test]
    fn each_execution_gets_a_status_and_a_history_message() {
        let (messages, skipped) = messages_for_batch(&[
            execution("a", "GLOBAL", "Running"),
            execution("b", ORG, "Failed"),
        ]);
        assert!(skipped.is_empty());
        let routes: Vec<(&str, &str)> = messages
            .iter()
            .map(|m| (m.group.as_str(), m.target.as_str()))
            .collect();
        assert_eq!(
            routes,
            vec![
                ("execution:a", TARGET_UPDATE),
                ("execution-admin:a", TARGET_UPDATE),
                ("history:GLOBAL", TARGET_HISTORY_UPDATE),
                ("execution:b", TARGET_UPDATE),
                ("execution-admin:b", TARGET_UPDATE),
                (&*format!("history:{ORG}"), TARGET_HISTORY_UPDATE),
            ]
        );
        assert_eq!(messages[0].arguments[0]["isComplete"], false);
        assert_eq!(messages[0].arguments, messages[1].arguments);
        assert_eq!(messages[3].arguments[0]["isComplete"], true);
        let row = &messages[5].arguments[0];
        assert_eq!(row["orgId"], "0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01");
        assert_eq!(row["executedByName"], "ann@x.com");
        assert_eq!(
            serde_json::to_value(rows::execution_row(
                &ExecutionDoc::deserialize(&execution("b", ORG, "Failed")).unwrap()
            ))
            .unwrap(),
            *row,
            "the live row is the API's list row"
        );
    }

    #[test]
    fn only_the_last_version_in_a_batch_is_sent() {
        let (messages, _) = messages_for_batch(&[
            execution("a", "GLOBAL", "Running"),
            execution("a", "GLOBAL", "Success"),
        ]);
        assert_eq!(messages.len(), 3);
        for message in &messages {
            assert_eq!(message.arguments[0]["status"], "Success");
        }
    }

    #[test]
    fn unreadable_documents_are_reported_not_fatal() {
        let (messages, skipped) = messages_for_batch(&[
            json!({"id": "x", "type": "execution"}),
            execution("a", "GLOBAL", "Pending"),
        ]);
        assert_eq!(messages.len(), 3);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].starts_with("x:"));
    }
}
