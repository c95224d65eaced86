//! Progress of one migration, per source partition, kept in the target store (`leases`
//! container) so a killed run resumes where it stopped (`--resume`).
//!
//! Pages are committed in (PartitionKey, RowKey) order, so every partition before the newest one
//! in the map is complete and resuming is a server-side filter: rows after the last committed one.
//! The (scope, day) pairs whose executions were written are recorded *before* the writes, so the
//! metrics backfill covers them even when the run dies between writing and checkpointing.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{Scope, Timestamp};
use crate::store::{Container, Store, StoreError};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionProgress {
    /// The last `Entities` RowKey whose execution is fully migrated.
    pub last_row_key: String,
    pub done: bool,
    pub executions: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    pub id: String,
    #[serde(rename = "type")]
    pub doc_type: String,
    /// What was being migrated (account and filters), for humans reading the document.
    pub source: String,
    /// Legacy partition key (org uuid or `GLOBAL`) → progress.
    pub partitions: BTreeMap<String, PartitionProgress>,
    /// Scope → UTC days (`YYYY-MM-DD`) whose daily metrics must be rebuilt.
    #[serde(default)]
    pub pending_metrics_days: BTreeMap<String, BTreeSet<String>>,
    /// The entity documents (organizations, users, …) are migrated. A checkpoint from before
    /// they were has no such field, so its resume migrates them.
    #[serde(default)]
    pub entities_done: bool,
    pub updated_at: Timestamp,
}

impl Checkpoint {
    pub const TYPE: &'static str = "migrateCheckpoint";

    /// One checkpoint per source account and filter set: a `--scope` run never resumes an
    /// unfiltered one.
    pub fn id_for(account: &str, scope: Option<&Scope>, since: Option<&Timestamp>) -> String {
        let filters = format!(
            "{account}|scope={}|since={}",
            scope.map(|s| s.to_string()).unwrap_or_default(),
            since.map(|t| t.canonical()).unwrap_or_default()
        );
        let digest = Sha256::digest(filters.as_bytes());
        let short: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("migrate-checkpoint-{short}")
    }

    pub fn new(id: String, source: String, now: Timestamp) -> Self {
        Checkpoint {
            id,
            doc_type: Self::TYPE.to_owned(),
            source,
            partitions: BTreeMap::new(),
            pending_metrics_days: BTreeMap::new(),
            entities_done: false,
            updated_at: now,
        }
    }

    /// OData filter for rows not yet migrated (`None`: start from the beginning).
    pub fn resume_filter(&self) -> Option<String> {
        let (partition, progress) = self.partitions.iter().next_back()?;
        let pk = odata_string(partition);
        Some(if progress.done {
            format!("PartitionKey gt {pk}")
        } else {
            format!(
                "(PartitionKey gt {pk} or (PartitionKey eq {pk} and RowKey gt {}))",
                odata_string(&progress.last_row_key)
            )
        })
    }

    /// Records a committed page: `rows` are (PartitionKey, RowKey) in scan order; every
    /// partition before the page's last one is complete.
    pub fn commit_page(&mut self, rows: &[(String, String)], now: Timestamp) {
        for (partition, row_key) in rows {
            let progress = self.partitions.entry(partition.clone()).or_default();
            progress.last_row_key = row_key.clone();
            progress.executions += 1;
        }
        if let Some((last_partition, _)) = rows.last() {
            for (partition, progress) in self.partitions.iter_mut() {
                if partition < last_partition {
                    progress.done = true;
                }
            }
        }
        self.updated_at = now;
    }

    pub fn finish_executions(&mut self, now: Timestamp) {
        for progress in self.partitions.values_mut() {
            progress.done = true;
        }
        self.updated_at = now;
    }

    pub fn executions_done(&self) -> bool {
        !self.partitions.is_empty() && self.partitions.values().all(|p| p.done)
    }

    pub async fn load(store: &dyn Store, id: &str) -> Result<Option<Checkpoint>, StoreError> {
        let Some(stored) = store.read(Container::Leases, id, id).await? else {
            return Ok(None);
        };
        serde_json::from_value(stored.body)
            .map(Some)
            .map_err(|e| StoreError::InvalidDocument {
                container: "leases",
                reason: format!("checkpoint {id}: {e}"),
            })
    }

    pub async fn save(&self, store: &dyn Store) -> Result<(), StoreError> {
        let body = serde_json::to_value(self).map_err(|e| StoreError::InvalidDocument {
            container: "leases",
            reason: e.to_string(),
        })?;
        store
            .upsert(Container::Leases, body, None)
            .await
            .map(|_| ())
    }
}

/// An OData string literal (`'` doubled).
pub fn odata_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse("2025-11-20T00:00:00Z").unwrap()
    }

    #[test]
    fn ids_depend_on_the_filters() {
        let all = Checkpoint::id_for("acct", None, None);
        assert_eq!(all, Checkpoint::id_for("acct", None, None));
        assert_ne!(all, Checkpoint::id_for("acct", Some(&Scope::Global), None));
        assert_ne!(all, Checkpoint::id_for("other", None, None));
        assert!(all.starts_with("migrate-checkpoint-"));
    }

    #[test]
    fn resume_continues_after_the_last_committed_row() {
        let mut cp = Checkpoint::new("c".into(), "s".into(), now());
        assert_eq!(cp.resume_filter(), None);
        cp.commit_page(
            &[
                ("0f4a".into(), "execution:1_a".into()),
                ("GLOBAL".into(), "execution:1_b".into()),
                ("GLOBAL".into(), "execution:2_o'c".into()),
            ],
            now(),
        );
        assert!(cp.partitions["0f4a"].done);
        assert!(!cp.partitions["GLOBAL"].done);
        assert_eq!(cp.partitions["GLOBAL"].executions, 2);
        assert_eq!(
            cp.resume_filter().unwrap(),
            "(PartitionKey gt 'GLOBAL' or (PartitionKey eq 'GLOBAL' and RowKey gt 'execution:2_o''c'))"
        );
        assert!(!cp.executions_done());
        cp.finish_executions(now());
        assert!(cp.executions_done());
        assert_eq!(cp.resume_filter().unwrap(), "PartitionKey gt 'GLOBAL'");
    }
}
