//! The demo's sink: each message as readable lines on stdout, so `serve --demo` shows logs
//! streaming through the change feed without a browser. It shows the full stream once: the
//! admins' copy of each execution message (the members' copy has the same place, redacted).

use std::io::Write;

use async_trait::async_trait;
use serde_json::Value;

use super::{HubMessage, MessageSink, SinkError};

#[derive(Debug, Default)]
pub struct ConsoleSink;

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// One line per log, one line for any other message.
pub fn render(message: &HubMessage) -> Vec<String> {
    let argument = message
        .argument_values()
        .into_iter()
        .next()
        .unwrap_or(Value::Null);
    let execution = argument["executionId"].as_str().unwrap_or("?");
    match argument["logs"].as_array() {
        Some(logs) => logs
            .iter()
            .map(|log| {
                format!(
                    "[{}] #{:<4} {:<7} {}",
                    short(execution),
                    log["sequence"].as_u64().unwrap_or(0),
                    log["level"].as_str().unwrap_or(""),
                    log["message"].as_str().unwrap_or("")
                )
            })
            .collect(),
        None => vec![format!(
            "[{}] {} {}",
            short(execution),
            message.target,
            argument
        )],
    }
}

#[async_trait]
impl MessageSink for ConsoleSink {
    fn name(&self) -> &'static str {
        "console"
    }

    async fn send(&self, messages: &[HubMessage]) -> Result<(), SinkError> {
        let mut out = std::io::stdout().lock();
        let full_stream = messages
            .iter()
            .filter(|m| !super::groups::is_members_execution_group(&m.group));
        for line in full_stream.flat_map(render) {
            writeln!(out, "{line}").map_err(|e| SinkError::Send(format!("stdout: {e}")))?;
        }
        out.flush()
            .map_err(|e| SinkError::Send(format!("stdout: {e}")))
    }
}
