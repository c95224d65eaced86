//! `ExecutionUpdates`: the `executions` change feed → `executionUpdate` for both groups of the
//! execution (the detail page; a status is for members and admins alike) and
//! `executionHistoryUpdate` for `history:{scope}` (the list page, the list API's row).
//!
//! The change feed delivers the latest version of each document; if a batch still holds several
//! versions of one execution, only the last (newest) is sent. A redelivered batch re-sends the
//! same state, which the UI applies idempotently.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::publish;
use crate::model::{rows, ExecutionDoc};
use crate::realtime::groups::{self, Audience};
use crate::realtime::HubMessage;
use crate::runtime::{AppContext, Batch, BatchHandler, Delivered, FunctionError};

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
pub fn messages_for_batch(
    batch: &Batch<'_>,
) -> Result<(Vec<HubMessage>, Vec<String>), FunctionError> {
    let mut latest: BTreeMap<String, ExecutionDoc> = BTreeMap::new();
    let mut skipped = Vec::new();
    for delivered in batch.read::<Delivered<ExecutionDoc>>(&mut skipped)? {
        match delivered.document {
            // Later in the batch = newer: replace.
            Ok(doc) => {
                latest.insert(doc.id.clone(), doc);
            }
            Err(e) => {
                let id = delivered.id.as_deref().unwrap_or("<no id>");
                skipped.push(format!("{id}: {e}"));
            }
        }
    }
    let mut messages = Vec::with_capacity(latest.len() * 3);
    for doc in latest.values() {
        for audience in [Audience::Members, Audience::Admins] {
            messages.push(HubMessage::new(
                groups::execution(audience, &doc.id),
                TARGET_UPDATE,
                &status_update(doc),
            ));
        }
        messages.push(HubMessage::new(
            groups::history(&doc.scope),
            TARGET_HISTORY_UPDATE,
            &rows::execution_row(doc),
        ));
    }
    Ok((messages, skipped))
}

pub struct ExecutionUpdates;

#[async_trait]
impl BatchHandler for ExecutionUpdates {
    async fn handle(
        &self,
        ctx: &AppContext,
        batch: &Batch<'_>,
    ) -> Result<Vec<String>, FunctionError> {
        let messages = messages_for_batch(batch)?;
        publish(ctx, "ExecutionUpdates", batch.len(), messages).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RawDocument;
    use serde::Deserialize;

    fn messages_for(documents: &[Value]) -> (Vec<HubMessage>, Vec<String>) {
        let texts: Vec<String> = documents.iter().map(Value::to_string).collect();
        let raw: Vec<RawDocument> = texts.iter().map(|t| RawDocument::new(t)).collect();
        messages_for_batch(&Batch::new(&raw, 0)).unwrap()
    }

    fn execution(id: &str, scope: &str, status: &str) -> Value {
        json!({"id": id, "type": "execution", "scope": scope, "executionId": id,
               "workflowName": "wf", "executedBy": "ann@x.com", "executedByName": "",
               "status": status, "startedAt": "2025-01-26T10:00:00Z", "_lsn": 3,
               "inputData": {"secret": 1}})
    }

    const ORG: &str = "org-0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01";

    #[test]
    fn each_execution_gets_a_status_and_a_history_message() {
        let (messages, skipped) = messages_for(&[
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
        assert_eq!(messages[0].argument_values()[0]["isComplete"], false);
        assert_eq!(messages[0].arguments.get(), messages[1].arguments.get());
        assert_eq!(messages[3].argument_values()[0]["isComplete"], true);
        let row = &messages[5].argument_values()[0];
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
        let (messages, _) = messages_for(&[
            execution("a", "GLOBAL", "Running"),
            execution("a", "GLOBAL", "Success"),
        ]);
        assert_eq!(messages.len(), 3);
        for message in &messages {
            assert_eq!(message.argument_values()[0]["status"], "Success");
        }
    }

    #[test]
    fn unreadable_documents_are_reported_not_fatal() {
        let (messages, skipped) = messages_for(&[
            json!({"id": "x", "type": "execution"}),
            execution("a", "GLOBAL", "Pending"),
        ]);
        assert_eq!(messages.len(), 3);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].starts_with("x:"));
    }
}
