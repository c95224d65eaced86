//! `ExecutionStatus`: the legacy status names, PascalCase on the wire.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum ExecutionStatus {
    Pending,
    Running,
    Success,
    Failed,
    Timeout,
    CompletedWithErrors,
    Cancelling,
    Cancelled,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown execution status {0:?}")]
pub struct StatusError(pub String);

impl ExecutionStatus {
    pub const ALL: [ExecutionStatus; 8] = [
        ExecutionStatus::Pending,
        ExecutionStatus::Running,
        ExecutionStatus::Success,
        ExecutionStatus::Failed,
        ExecutionStatus::Timeout,
        ExecutionStatus::CompletedWithErrors,
        ExecutionStatus::Cancelling,
        ExecutionStatus::Cancelled,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ExecutionStatus::Pending => "Pending",
            ExecutionStatus::Running => "Running",
            ExecutionStatus::Success => "Success",
            ExecutionStatus::Failed => "Failed",
            ExecutionStatus::Timeout => "Timeout",
            ExecutionStatus::CompletedWithErrors => "CompletedWithErrors",
            ExecutionStatus::Cancelling => "Cancelling",
            ExecutionStatus::Cancelled => "Cancelled",
        }
    }

    /// Terminal statuses end an execution and are what daily metrics count.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            ExecutionStatus::Success
                | ExecutionStatus::Failed
                | ExecutionStatus::Timeout
                | ExecutionStatus::CompletedWithErrors
                | ExecutionStatus::Cancelled
        )
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExecutionStatus {
    type Err = StatusError;
    /// Exact stored names only; the query API maps the legacy lowercase filter words itself.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ExecutionStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| StatusError(s.chars().take(64).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for status in ExecutionStatus::ALL {
            assert_eq!(status.as_str().parse::<ExecutionStatus>().unwrap(), status);
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert!("success".parse::<ExecutionStatus>().is_err());
    }

    #[test]
    fn terminal_set_matches_design() {
        let terminal: Vec<_> = ExecutionStatus::ALL
            .into_iter()
            .filter(ExecutionStatus::is_terminal)
            .collect();
        assert_eq!(terminal.len(), 5);
        assert!(!ExecutionStatus::Cancelling.is_terminal());
        assert!(!ExecutionStatus::Running.is_terminal());
    }
}
