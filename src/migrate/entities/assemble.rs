//! The whole source, mapped: every row of `Entities` (but the executions), `Config` and the
//! embedded `Relationships` kinds → the entity documents, one per (scope, id), and the
//! source side of the summary. Pure: the reading and writing are `migrate::entity_plan`'s.

use std::collections::{BTreeMap, BTreeSet};

use super::catalog::{classify, RowKind, CONFIG, ENTITIES, RELATIONSHIPS};
use super::document::{source_of, EntityDocument, Outcome};
use super::oauth::Part;
use super::row::{text, Row};
use super::summary::EntitySummary;
use super::{branding, config, forms, oauth, organizations, roles, users};
use crate::model::{EntityKind, Scope};

/// The rows read from the three tables.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub entities: Vec<Row>,
    pub config: Vec<Row>,
    pub relationships: Vec<Row>,
}

impl Source {
    pub fn table_mut(&mut self, table: &str) -> &mut Vec<Row> {
        match table {
            ENTITIES => &mut self.entities,
            CONFIG => &mut self.config,
            _ => &mut self.relationships,
        }
    }

    fn rows(&self) -> impl Iterator<Item = (&'static str, &Row)> {
        self.entities
            .iter()
            .map(|r| (ENTITIES, r))
            .chain(self.config.iter().map(|r| (CONFIG, r)))
            .chain(self.relationships.iter().map(|r| (RELATIONSHIPS, r)))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Mapping {
    /// One per (scope, id), ordered by kind, scope and id.
    pub documents: Vec<EntityDocument>,
    /// The source side: rows read, skipped, failed, redacted, dropped, not migrated.
    pub summary: EntitySummary,
}

pub fn map_source(source: &Source) -> Mapping {
    let mut summary = EntitySummary::default();
    let mut buckets: BTreeMap<&'static str, Vec<(&'static str, &Row)>> = BTreeMap::new();
    let mut generation1: BTreeMap<(String, String), BTreeMap<Part, &Row>> = BTreeMap::new();
    for (table, row) in source.rows() {
        let kind = classify(table, row);
        if let Some(entity_kind) = kind.entity_kind() {
            summary.tally(entity_kind).read += 1;
        }
        let bucket = match kind {
            RowKind::Organization => "org",
            RowKind::User => "user",
            RowKind::Membership => "userperm",
            RowKind::UserRole => "userrole",
            RowKind::Role => "role",
            RowKind::Form => "form",
            RowKind::FormRole => "formrole",
            RowKind::Config => "config",
            RowKind::Integration => "integration",
            RowKind::Github => "github",
            RowKind::OauthConnection => "oauth",
            RowKind::Branding => "branding",
            RowKind::OauthGeneration1 { name, part } => {
                let partition = text(row, "PartitionKey").unwrap_or_default();
                generation1
                    .entry((partition, name))
                    .or_default()
                    .insert(part, row);
                continue;
            }
            RowKind::NotMigrated { pattern, why } => {
                *summary
                    .not_migrated
                    .entry(format!("{table} {pattern}: {why}"))
                    .or_default() += 1;
                continue;
            }
            RowKind::Unknown => {
                summary.unknown.push(source_of(table, row));
                continue;
            }
        };
        buckets.entry(bucket).or_default().push((table, row));
    }
    let rows_of = |bucket: &str| -> Vec<(&'static str, &Row)> {
        buckets.get(bucket).cloned().unwrap_or_default()
    };
    let only_rows =
        |bucket: &str| -> Vec<&Row> { rows_of(bucket).into_iter().map(|(_, r)| r).collect() };

    let mut out = Outcome::default();
    for (_, row) in rows_of("org") {
        out.add(EntityKind::Organization, organizations::organization(row));
    }
    for (table, row) in rows_of("role") {
        out.add(EntityKind::Role, roles::role(table, row));
    }
    for (_, row) in rows_of("config") {
        out.add(EntityKind::Config, config::config(row));
    }
    for (_, row) in rows_of("integration") {
        out.add(EntityKind::Config, config::integration(row));
    }
    for (_, row) in rows_of("github") {
        out.add(EntityKind::Config, config::github(row));
    }
    for (_, row) in rows_of("branding") {
        out.add(EntityKind::Branding, branding::branding(row));
    }
    for (_, row) in rows_of("oauth") {
        out.add(EntityKind::OauthConnection, oauth::connection(row));
    }
    for ((_, name), parts) in &generation1 {
        match parts.get(&Part::Metadata) {
            Some(metadata) => out.add(
                EntityKind::OauthConnection,
                oauth::generation1(
                    name,
                    metadata,
                    parts.get(&Part::ClientSecret).copied(),
                    parts.get(&Part::OauthResponse).copied(),
                ),
            ),
            None => out.skip(
                EntityKind::OauthConnection,
                oauth::without_metadata(name, &parts.values().copied().collect::<Vec<_>>()),
            ),
        }
    }
    // Assignments of roles that exist in the source (in any scope, active or not).
    let role_ids: BTreeSet<String> = rows_of("role")
        .iter()
        .filter_map(|(_, row)| text(row, "RowKey"))
        .filter_map(|key| key.strip_prefix("role:").map(str::to_owned))
        .collect();
    forms::forms(
        &only_rows("form"),
        &only_rows("formrole"),
        &role_ids,
        &mut out,
    );
    users::users(
        &only_rows("user"),
        &only_rows("userperm"),
        &only_rows("userrole"),
        &role_ids,
        &mut out,
    );

    let documents = one_per_id(out.documents, &mut out.skipped);
    for (kind, reason) in out.skipped {
        summary.tally(kind).skipped += 1;
        summary.skipped.push(format!("{}: {reason}", kind.plural()));
    }
    for (kind, error) in out.failed {
        summary.tally(kind).failed += 1;
        summary.failed.push(error.to_string());
    }
    for doc in &documents {
        let tally = summary.tally(doc.kind);
        tally.documents += 1;
        if !doc.redacted.is_empty() {
            tally.redacted += 1;
            summary
                .redacted
                .push(format!("{}: {}", doc.name(), doc.redacted.join(", ")));
        }
        for property in &doc.dropped {
            *summary
                .dropped
                .entry(format!("{}: {property}", doc.kind.plural()))
                .or_default() += 1;
        }
    }
    Mapping { documents, summary }
}

/// Keeps one document per (scope, id): the highest rank, then the first read. The others are
/// reported as superseded.
fn one_per_id(
    documents: Vec<EntityDocument>,
    skipped: &mut Vec<(EntityKind, String)>,
) -> Vec<EntityDocument> {
    // Cosmos DB keys a document by (partition, id); the kind orders the result.
    let mut kept: BTreeMap<(EntityKind, Scope, String), EntityDocument> = BTreeMap::new();
    let mut kind_of: BTreeMap<(Scope, String), EntityKind> = BTreeMap::new();
    for doc in documents {
        let kind = *kind_of
            .entry((doc.scope.clone(), doc.id.clone()))
            .or_insert(doc.kind);
        let key = (kind, doc.scope.clone(), doc.id.clone());
        let (winner, loser) = match kept.remove(&key) {
            None => (doc, None),
            Some(current) if doc.rank > current.rank => (doc, Some(current)),
            Some(current) => (current, Some(doc)),
        };
        if let Some(loser) = loser {
            skipped.push((
                loser.kind,
                format!(
                    "{}: superseded by {} (both make {})",
                    loser.source,
                    winner.source,
                    winner.name()
                ),
            ));
        }
        kept.insert(key, winner);
    }
    kept.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::entities::row::row;
    use serde_json::json;

    const ORG: &str = "0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01";

    fn source() -> Source {
        let at = "2025-11-01T10:00:00";
        Source {
            entities: vec![
                row(
                    json!({"PartitionKey": "GLOBAL", "RowKey": format!("org:{ORG}"), "Name": "A", "IsActive": true}),
                ),
                row(
                    json!({"PartitionKey": ORG, "RowKey": format!("org:{ORG}"), "Name": "stale copy"}),
                ),
                row(
                    json!({"PartitionKey": "GLOBAL", "RowKey": "user:ada@x.com", "IsPlatformAdmin": true, "etag": "W/x"}),
                ),
                row(json!({"PartitionKey": ORG, "RowKey": "role:r1", "Name": "Ops"})),
                row(
                    json!({"PartitionKey": ORG, "RowKey": "form:f1", "FormSchema": "{\"fields\": []}"}),
                ),
                row(json!({"PartitionKey": "GLOBAL", "RowKey": "widget:1"})),
            ],
            config: vec![
                row(
                    json!({"PartitionKey": "GLOBAL", "RowKey": "config:smtp_password", "Type": "string", "Value": "hunter2"}),
                ),
                row(
                    json!({"PartitionKey": "GLOBAL", "RowKey": "config:halo_url", "Type": "string", "Value": "https://h"}),
                ),
                row(
                    json!({"PartitionKey": ORG, "RowKey": "oauth:halo", "TokenUrl": "https://t", "UpdatedAt": at}),
                ),
                row(
                    json!({"PartitionKey": ORG, "RowKey": "config:oauth_halo_metadata", "Type": "json",
                           "Value": "{\"client_id\": \"old\"}", "UpdatedAt": at}),
                ),
                row(
                    json!({"PartitionKey": "GLOBAL", "RowKey": "oauth_orphan_client_secret", "Type": "secret_ref",
                           "Value": "kv-name"}),
                ),
                row(
                    json!({"PartitionKey": "SYSTEM", "RowKey": "jobstatus:TokenRefreshJob", "DurationSeconds": 1.5}),
                ),
                row(json!({"PartitionKey": "GLOBAL", "RowKey": "schedule:a"})),
                row(json!({"PartitionKey": "GLOBAL", "RowKey": "schedule:b"})),
                row(
                    json!({"PartitionKey": "GLOBAL", "RowKey": "branding", "PrimaryColor": "#fff"}),
                ),
                row(
                    json!({"PartitionKey": "GLOBAL", "RowKey": "config:bad", "UpdatedAt": "when?"}),
                ),
            ],
            relationships: vec![
                row(
                    json!({"PartitionKey": "GLOBAL", "RowKey": format!("userperm:ada@x.com:{ORG}")}),
                ),
                row(json!({"PartitionKey": "GLOBAL", "RowKey": "userrole:ada@x.com:r1"})),
                row(json!({"PartitionKey": "GLOBAL", "RowKey": "formrole:f1:r1"})),
                row(json!({"PartitionKey": "GLOBAL", "RowKey": "formrole:f9:r1"})),
            ],
        }
    }

    #[test]
    fn the_whole_source_makes_one_document_per_id_and_a_summary() {
        let Mapping { documents, summary } = map_source(&source());
        let names: Vec<String> = documents.iter().map(EntityDocument::name).collect();
        assert_eq!(
            names,
            [
                format!("organization GLOBAL org-{ORG}"),
                "user GLOBAL user-ada@x.com".into(),
                format!("role org-{ORG} role-r1"),
                format!("form org-{ORG} form-f1"),
                "config GLOBAL config-halo_url".into(),
                "config GLOBAL config-smtp_password".into(),
                format!("oauth_connection org-{ORG} oauth-halo"),
                "branding GLOBAL branding".into(),
            ]
        );
        let body =
            |name: &str| &documents[names.iter().position(|n| n.ends_with(name)).unwrap()].body;
        assert_eq!(body(&format!("org-{ORG}"))["name"], "A");
        assert_eq!(body("user-ada@x.com")["roleIds"], json!(["r1"]));
        assert_eq!(
            body("user-ada@x.com")["orgScopes"],
            json!([format!("org-{ORG}")])
        );
        assert_eq!(body("form-f1")["roleIds"], json!(["r1"]));
        // Generation 2 wins over generation 1.
        assert_eq!(body("oauth-halo")["tokenUrl"], "https://t");
        assert!(!format!("{documents:?}").contains("hunter2"));

        let tally = |kind| summary.kinds.get(&kind).cloned().unwrap_or_default();
        assert_eq!(
            (
                tally(EntityKind::Organization).read,
                tally(EntityKind::Organization).skipped
            ),
            (2, 1)
        );
        assert_eq!(tally(EntityKind::User).read, 3);
        assert_eq!(
            (
                tally(EntityKind::Form).read,
                tally(EntityKind::Form).skipped
            ),
            (3, 1)
        );
        let config = tally(EntityKind::Config);
        assert_eq!(
            (
                config.read,
                config.documents,
                config.failed,
                config.redacted
            ),
            (3, 2, 1, 1)
        );
        let oauth = tally(EntityKind::OauthConnection);
        assert_eq!((oauth.read, oauth.documents, oauth.skipped), (3, 1, 2));
        assert_eq!(
            summary.redacted,
            ["config GLOBAL config-smtp_password: value"]
        );
        assert!(summary.skipped.iter().any(
            |s| s.contains("superseded by Config") && s.contains("config:oauth_halo_metadata")
        ));
        assert!(summary
            .skipped
            .iter()
            .any(|s| s.contains("without their _metadata row")));
        assert!(
            summary.failed[0].contains("config:bad") && summary.failed[0].contains("UpdatedAt")
        );
        assert_eq!(summary.unknown, ["Entities (\"GLOBAL\", \"widget:1\")"]);
        assert_eq!(summary.not_migrated.values().sum::<u64>(), 3);
        assert!(summary
            .not_migrated
            .keys()
            .any(|k| k.starts_with("Config schedule:*: CRON")));
        assert_eq!(summary.dropped.get("users: etag"), Some(&1));
        assert!(!summary.render(false).contains("hunter2"));
    }
}
