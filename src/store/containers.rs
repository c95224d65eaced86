//! The containers, their partition keys and TTLs: one table that Bicep, function.json and the
//! stores all agree with.

use crate::model::EXECUTION_TTL_SECONDS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Container {
    Executions,
    ExecutionData,
    Entities,
    /// Change-feed checkpoints of serve mode (in Azure the Functions host owns its own leases here).
    Leases,
    /// Batches that failed every retry, kept so nothing is lost.
    DeadLetters,
}

impl Container {
    pub const ALL: [Container; 5] = [
        Container::Executions,
        Container::ExecutionData,
        Container::Entities,
        Container::Leases,
        Container::DeadLetters,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Container::Executions => "executions",
            Container::ExecutionData => "execution_data",
            Container::Entities => "entities",
            Container::Leases => "leases",
            Container::DeadLetters => "deadletters",
        }
    }

    /// The document field holding the partition key (the path without its `/`).
    pub fn partition_key_field(&self) -> &'static str {
        match self {
            Container::Executions | Container::Entities => "scope",
            Container::ExecutionData => "executionId",
            Container::Leases => "id",
            Container::DeadLetters => "functionName",
        }
    }

    pub fn partition_key_path(&self) -> String {
        format!("/{}", self.partition_key_field())
    }

    /// Container default TTL in seconds (`None`: documents live until deleted). A document's own
    /// `ttl` overrides it; `ttl: -1` means never expire.
    pub fn default_ttl(&self) -> Option<i64> {
        match self {
            Container::Executions | Container::ExecutionData => Some(EXECUTION_TTL_SECONDS),
            Container::Entities | Container::Leases | Container::DeadLetters => None,
        }
    }

    pub fn from_name(name: &str) -> Option<Container> {
        Container::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl std::fmt::Display for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
