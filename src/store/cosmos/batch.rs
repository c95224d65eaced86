//! Translating the store's one-partition batch to a Cosmos transactional batch and its
//! sub-results back to outcomes (pure, apart from the SDK's batch builder). The error of a
//! failed sub-result is `errors::batch_failure`.

use azure_data_cosmos::models::TransactionalBatch;
use azure_data_cosmos::options::{
    BatchDeleteOptions, BatchReplaceOptions, BatchUpsertOptions, Precondition,
};
use serde_json::Value;

use crate::store::validate::validate_in_partition;
use crate::store::{
    check_batch_size, BatchOperation, BatchOutcome, Container, ETag, StoreError, StoredDocument,
};

/// A validated batch operation.
pub enum Prepared {
    Create {
        id: String,
        doc: Value,
    },
    Upsert {
        id: String,
        doc: Value,
        if_match: Option<ETag>,
    },
    Replace {
        id: String,
        doc: Value,
        if_match: Option<ETag>,
    },
    Delete {
        id: String,
        if_match: Option<ETag>,
    },
}

impl Prepared {
    pub fn id(&self) -> &str {
        match self {
            Prepared::Create { id, .. }
            | Prepared::Upsert { id, .. }
            | Prepared::Replace { id, .. }
            | Prepared::Delete { id, .. } => id,
        }
    }

    pub fn add_to(
        &self,
        batch: TransactionalBatch,
    ) -> azure_data_cosmos::Result<TransactionalBatch> {
        let condition =
            |etag: &Option<ETag>| etag.as_ref().map(|e| Precondition::if_match(e.0.clone()));
        Ok(match self {
            Prepared::Create { doc, .. } => batch.create_item(doc)?,
            // A conditional upsert can only match an existing version: a conditional replace
            // (as for single writes).
            Prepared::Upsert {
                id,
                doc,
                if_match: Some(etag),
            } => batch.replace_item(
                id.clone(),
                doc,
                Some(
                    BatchReplaceOptions::default()
                        .with_precondition(Precondition::if_match(etag.0.clone())),
                ),
            )?,
            Prepared::Upsert {
                doc,
                if_match: None,
                ..
            } => batch.upsert_item(doc, None::<BatchUpsertOptions>)?,
            Prepared::Replace { id, doc, if_match } => {
                let mut options = BatchReplaceOptions::default();
                if let Some(condition) = condition(if_match) {
                    options = options.with_precondition(condition);
                }
                batch.replace_item(id.clone(), doc, Some(options))?
            }
            Prepared::Delete { id, if_match } => {
                let mut options = BatchDeleteOptions::default();
                if let Some(condition) = condition(if_match) {
                    options = options.with_precondition(condition);
                }
                batch.delete_item(id.clone(), Some(options))
            }
        })
    }
}

/// Validates every operation before anything is sent: all in `partition_key`, 1 to 100.
pub fn prepare(
    container: Container,
    partition_key: &str,
    operations: Vec<BatchOperation>,
) -> Result<Vec<Prepared>, StoreError> {
    check_batch_size(operations.len())?;
    let checked = |doc: Value| {
        validate_in_partition(container, partition_key, doc).map(|valid| (valid.id, valid.doc))
    };
    operations
        .into_iter()
        .map(|op| {
            Ok(match op {
                BatchOperation::Create(doc) => {
                    let (id, doc) = checked(doc)?;
                    Prepared::Create { id, doc }
                }
                BatchOperation::Upsert { doc, if_match } => {
                    let (id, doc) = checked(doc)?;
                    Prepared::Upsert { id, doc, if_match }
                }
                BatchOperation::Replace { doc, if_match } => {
                    let (id, doc) = checked(doc)?;
                    Prepared::Replace { id, doc, if_match }
                }
                BatchOperation::Delete { id, if_match } => Prepared::Delete { id, if_match },
            })
        })
        .collect()
}

/// The outcomes in the caller's order: `written` holds, for each operation that ran (those not
/// in `absent`), its document (`None` for a delete); deletes in `absent` found nothing.
pub fn outcomes(
    prepared: &[Prepared],
    absent: &[usize],
    written: Vec<Option<StoredDocument>>,
) -> Vec<BatchOutcome> {
    let mut written = written.into_iter();
    prepared
        .iter()
        .enumerate()
        .map(|(index, op)| {
            if absent.contains(&index) {
                return BatchOutcome::Deleted(false);
            }
            match (op, written.next().flatten()) {
                (Prepared::Delete { .. }, _) => BatchOutcome::Deleted(true),
                (_, Some(doc)) => BatchOutcome::Written(doc),
                // `written` has a document for every write that ran.
                (_, None) => BatchOutcome::Deleted(false),
            }
        })
        .collect()
}
