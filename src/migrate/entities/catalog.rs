//! Every legacy row kind outside the executions, and what becomes of it: the kind of document
//! it makes or feeds, or why it is not migrated. docs/migration.md lists the same.

use super::oauth::{generation1_part, Part};
use super::row::{text, Row};
use crate::model::EntityKind;

/// The tables the entity migration reads.
pub const ENTITIES: &str = "Entities";
pub const CONFIG: &str = "Config";
pub const RELATIONSHIPS: &str = "Relationships";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowKind {
    Organization,
    User,
    /// `userperm:{email}:{orgId}` → `user.orgScopes`.
    Membership,
    /// `userrole:{email}:{roleId}` → `user.roleIds`.
    UserRole,
    Role,
    Form,
    /// `formrole:{formId}:{roleId}` → `form.roleIds`.
    FormRole,
    Config,
    Integration,
    Github,
    OauthConnection,
    OauthGeneration1 {
        name: String,
        part: Part,
    },
    Branding,
    /// A kind that is deliberately not migrated: its RowKey pattern and why.
    NotMigrated {
        pattern: &'static str,
        why: &'static str,
    },
    Unknown,
}

impl RowKind {
    /// The document kind the row makes or feeds (`None`: not migrated).
    pub fn entity_kind(&self) -> Option<EntityKind> {
        Some(match self {
            RowKind::Organization => EntityKind::Organization,
            RowKind::User | RowKind::Membership | RowKind::UserRole => EntityKind::User,
            RowKind::Role => EntityKind::Role,
            RowKind::Form | RowKind::FormRole => EntityKind::Form,
            RowKind::Config | RowKind::Integration | RowKind::Github => EntityKind::Config,
            RowKind::OauthConnection | RowKind::OauthGeneration1 { .. } => {
                EntityKind::OauthConnection
            }
            RowKind::Branding => EntityKind::Branding,
            RowKind::NotMigrated { .. } | RowKind::Unknown => return None,
        })
    }
}

const fn not_migrated(pattern: &'static str, why: &'static str) -> RowKind {
    RowKind::NotMigrated { pattern, why }
}

/// The kind of a row of `table`.
pub fn classify(table: &str, row: &Row) -> RowKind {
    let row_key = text(row, "RowKey").unwrap_or_default();
    let key = row_key.as_str();
    let starts = |prefix: &str| key.starts_with(prefix);
    match table {
        ENTITIES if starts("org:") => RowKind::Organization,
        ENTITIES if starts("user:") => RowKind::User,
        ENTITIES if starts("role:") => RowKind::Role,
        ENTITIES if starts("form:") => RowKind::Form,
        ENTITIES if starts("execution:") => not_migrated(
            "execution:*",
            "executions are migrated with their logs, results and variables",
        ),
        CONFIG => {
            if let Some((name, part)) = generation1_part(key) {
                return RowKind::OauthGeneration1 { name, part };
            }
            match key {
                "github" => RowKind::Github,
                "branding" => RowKind::Branding,
                _ if starts("config:") => RowKind::Config,
                _ if starts("integration:") => RowKind::Integration,
                _ if starts("oauth:") => RowKind::OauthConnection,
                _ if starts("jobstatus:") => not_migrated(
                    "jobstatus:*",
                    "the token refresh job's last run, rewritten by its next run",
                ),
                _ if starts("schedule:") => not_migrated(
                    "schedule:*",
                    "CRON schedules are workflow metadata, declared by the workflows",
                ),
                _ if starts("workflowkey:") || starts("systemconfig:globalkey:") => not_migrated(
                    "workflowkey:*, systemconfig:globalkey:*",
                    "workflow API keys: nothing here validates them (the rows hold only SHA-256 hashes)",
                ),
                _ if starts("system:") => not_migrated(
                    "system:*",
                    "development seed rows, written by no production code",
                ),
                _ => RowKind::Unknown,
            }
        }
        RELATIONSHIPS if starts("role:") => RowKind::Role,
        RELATIONSHIPS if starts("userperm:") => RowKind::Membership,
        RELATIONSHIPS if starts("userrole:") => RowKind::UserRole,
        RELATIONSHIPS if starts("formrole:") => RowKind::FormRole,
        RELATIONSHIPS if starts("orgperm:") => {
            not_migrated("orgperm:*", "the reverse copy of userperm (user.orgScopes)")
        }
        RELATIONSHIPS if starts("workflowform:") => {
            not_migrated("workflowform:*", "the reverse index of form.linkedWorkflow")
        }
        RELATIONSHIPS if starts("roleform:") || starts("assignedrole:") => not_migrated(
            "roleform:*, assignedrole:*",
            "reverse copies of role assignments (user.roleIds, form.roleIds)",
        ),
        RELATIONSHIPS
            if ["userexec:", "workflowexec:", "formexec:", "status:"]
                .iter()
                .any(|p| starts(p)) =>
        {
            not_migrated(
                "userexec:*, workflowexec:*, formexec:*, status:*",
                "execution indexes: the executions container is queried instead",
            )
        }
        _ => RowKind::Unknown,
    }
}

/// The server-side filters the entity migration reads with: everything in `Entities` but the
/// executions, all of `Config`, and the `Relationships` kinds it embeds (the execution indexes
/// there are most of the table and are not needed).
pub fn source_queries() -> [(&'static str, String); 6] {
    let prefix = |p: &str| {
        let end: String = p[..p.len() - 1].to_owned() + ";";
        format!("PartitionKey eq 'GLOBAL' and RowKey ge '{p}' and RowKey lt '{end}'")
    };
    [
        (
            ENTITIES,
            "RowKey lt 'execution:' or RowKey ge 'execution;'".to_owned(),
        ),
        (CONFIG, "PartitionKey ne ''".to_owned()),
        (RELATIONSHIPS, prefix("role:")),
        (RELATIONSHIPS, prefix("userperm:")),
        (RELATIONSHIPS, prefix("userrole:")),
        (RELATIONSHIPS, prefix("formrole:")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::entities::row::row;
    use serde_json::json;

    fn kind(table: &str, key: &str) -> RowKind {
        classify(
            table,
            &row(json!({"PartitionKey": "GLOBAL", "RowKey": key})),
        )
    }

    #[test]
    fn every_row_kind_has_a_fate() {
        assert_eq!(kind(ENTITIES, "org:1"), RowKind::Organization);
        assert_eq!(kind(ENTITIES, "user:a@b"), RowKind::User);
        assert_eq!(kind(ENTITIES, "form:f"), RowKind::Form);
        assert_eq!(kind(RELATIONSHIPS, "role:r"), RowKind::Role);
        assert_eq!(kind(CONFIG, "config:halo_url"), RowKind::Config);
        assert_eq!(
            kind(CONFIG, "config:oauth_graph_metadata"),
            RowKind::OauthGeneration1 {
                name: "graph".into(),
                part: Part::Metadata
            }
        );
        assert_eq!(kind(CONFIG, "oauth:graph"), RowKind::OauthConnection);
        assert_eq!(kind(CONFIG, "github"), RowKind::Github);
        assert_eq!(kind(CONFIG, "branding"), RowKind::Branding);
        for (table, key) in [
            (CONFIG, "jobstatus:TokenRefreshJob"),
            (CONFIG, "schedule:daily"),
            (CONFIG, "workflowkey:k"),
            (CONFIG, "systemconfig:globalkey:k"),
            (CONFIG, "system:maintenance"),
            (RELATIONSHIPS, "orgperm:o:a@b"),
            (RELATIONSHIPS, "workflowform:w:f"),
            (RELATIONSHIPS, "userexec:u:e"),
        ] {
            assert!(
                matches!(kind(table, key), RowKind::NotMigrated { .. }),
                "{table} {key}"
            );
            assert_eq!(kind(table, key).entity_kind(), None);
        }
        assert_eq!(kind(ENTITIES, "widget:1"), RowKind::Unknown);
        assert_eq!(kind(CONFIG, "mystery"), RowKind::Unknown);
        assert_eq!(
            kind(RELATIONSHIPS, "formrole:f:r").entity_kind(),
            Some(EntityKind::Form)
        );
    }

    #[test]
    fn the_relationships_queries_are_prefix_ranges() {
        let queries = source_queries();
        assert_eq!(
            queries[3].1,
            "PartitionKey eq 'GLOBAL' and RowKey ge 'userperm:' and RowKey lt 'userperm;'"
        );
    }
}
