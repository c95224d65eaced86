//! One mapped entity document, as every kind's mapping returns it: the JSON to write, where it
//! came from, and what its mapping left out (names only, never values).

use serde::Serialize;
use serde_json::Value;

use super::row::{text, unknown_properties, Row, RowError};
use crate::model::{EntityKind, Scope};

#[derive(Debug, Clone, PartialEq)]
pub struct EntityDocument {
    pub kind: EntityKind,
    pub scope: Scope,
    pub id: String,
    pub body: Value,
    /// The row it came from, for reports: `Config ("GLOBAL", "config:x")`.
    pub source: String,
    /// Which of two rows mapping to the same document wins: the higher rank (see `assemble`).
    pub rank: u8,
    /// What was not copied because it may be a plaintext secret: `value`, `settings.api_key`,
    /// `property AccessToken`.
    pub redacted: Vec<String>,
    /// Properties of the source row the mapping does not know (the stray `etag` among them).
    pub dropped: Vec<String>,
}

impl EntityDocument {
    /// A document from its typed form. `known` lists the row properties the mapping reads; the
    /// others are reported as dropped, and those with a sensitive name as redacted too.
    pub fn new<T: Serialize>(
        table: &'static str,
        row: &Row,
        known: &[&str],
        doc: &T,
    ) -> Result<EntityDocument, RowError> {
        let mut mapped = Self::built(doc, source_of(table, row))
            .map_err(|reason| RowError::new(table, row, reason))?;
        mapped.dropped = unknown_properties(row, known);
        mapped.redacted = mapped
            .dropped
            .iter()
            .filter(|name| super::secrets::is_sensitive_name(name))
            .map(|name| format!("property {name}"))
            .collect();
        Ok(mapped)
    }

    /// A document from its typed form and a description of its source.
    pub fn built<T: Serialize>(doc: &T, source: String) -> Result<EntityDocument, String> {
        let body = serde_json::to_value(doc).map_err(|e| format!("cannot serialize: {e}"))?;
        let field = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
        let (Some(id), Some(scope), Some(kind)) = (
            field("id"),
            field("scope").and_then(|s| Scope::parse(&s).ok()),
            field("type").and_then(|t| EntityKind::from_type(&t)),
        ) else {
            return Err("mapped without id, scope or type".into());
        };
        Ok(EntityDocument {
            kind,
            scope,
            id,
            body,
            source,
            rank: 0,
            redacted: Vec::new(),
            dropped: Vec::new(),
        })
    }

    pub fn ranked(mut self, rank: u8) -> Self {
        self.rank = rank;
        self
    }

    /// `kind scope id`, as reports name a document.
    pub fn name(&self) -> String {
        format!("{} {} {}", self.kind, self.scope, self.id)
    }
}

/// What mapping a group of rows gave: documents, rows skipped with the reason (orphans,
/// duplicates), rows that cannot be migrated.
#[derive(Debug, Default)]
pub struct Outcome {
    pub documents: Vec<EntityDocument>,
    pub skipped: Vec<(EntityKind, String)>,
    pub failed: Vec<(EntityKind, RowError)>,
}

impl Outcome {
    pub fn add(&mut self, kind: EntityKind, mapped: Result<EntityDocument, RowError>) {
        match mapped {
            Ok(doc) => self.documents.push(doc),
            Err(e) => self.failed.push((kind, e)),
        }
    }

    pub fn skip(&mut self, kind: EntityKind, reason: String) {
        self.skipped.push((kind, reason));
    }
}

/// `Table ("PartitionKey", "RowKey")`.
pub fn source_of(table: &str, row: &Row) -> String {
    format!(
        "{table} ({:?}, {:?})",
        text(row, "PartitionKey").unwrap_or_default(),
        text(row, "RowKey").unwrap_or_default()
    )
}
