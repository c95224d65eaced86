//! What the entity migration did, per kind: rows read, documents written or unchanged, rows
//! skipped (with the reason) or failed, values redacted; and every row kind it left alone.
//! Only names, keys and scopes appear here, never a value.

use std::collections::BTreeMap;

use crate::model::EntityKind;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindTally {
    /// Source rows of the kind (for users: user, userperm and userrole rows).
    pub read: u64,
    /// Documents mapped from them.
    pub documents: u64,
    pub written: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Documents with something withheld as a possible secret.
    pub redacted: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntitySummary {
    pub kinds: BTreeMap<EntityKind, KindTally>,
    /// `kind: reason` per skipped row (orphans, duplicates).
    pub skipped: Vec<String>,
    /// Rows that cannot be migrated, with their keys and why.
    pub failed: Vec<String>,
    /// `kind scope id: what` per withheld value (names only).
    pub redacted: Vec<String>,
    /// Redacted documents an operator has since completed in the target: left as they are.
    pub resolved: Vec<String>,
    /// Administrator rights the target grants and the source does not: kept.
    pub kept: Vec<String>,
    /// `kind: property` → how many rows had it (dropped: not part of the document).
    pub dropped: BTreeMap<String, u64>,
    /// `Table pattern: why` → how many rows (kinds deliberately not migrated).
    pub not_migrated: BTreeMap<String, u64>,
    /// Rows of no known kind, with their keys.
    pub unknown: Vec<String>,
}

impl EntitySummary {
    pub fn tally(&mut self, kind: EntityKind) -> &mut KindTally {
        self.kinds.entry(kind).or_default()
    }

    pub fn documents_written(&self) -> u64 {
        self.kinds.values().map(|t| t.written).sum()
    }

    pub fn render(&self, dry_run: bool) -> String {
        let written = if dry_run { "would write" } else { "written" };
        let mut out = format!(
            "entities summary\n  {:<18} {:>6} {:>11} {:>9} {:>7} {:>6} {:>8}\n",
            "kind", "read", written, "unchanged", "skipped", "failed", "redacted"
        );
        for kind in EntityKind::ALL {
            let t = self.kinds.get(&kind).cloned().unwrap_or_default();
            out.push_str(&format!(
                "  {:<18} {:>6} {:>11} {:>9} {:>7} {:>6} {:>8}\n",
                kind.plural(),
                t.read,
                t.written,
                t.unchanged,
                t.skipped,
                t.failed,
                t.redacted
            ));
        }
        let mut lines = |label: &str, items: &[String]| {
            for item in items {
                out.push_str(&format!("{label}: {item}\n"));
            }
        };
        lines("skipped", &self.skipped);
        lines("failed", &self.failed);
        lines("redacted", &self.redacted);
        lines("resolved", &self.resolved);
        lines("kept", &self.kept);
        lines("unknown row", &self.unknown);
        for (what, count) in &self.not_migrated {
            out.push_str(&format!("not migrated: {what} ({count} rows)\n"));
        }
        if !self.dropped.is_empty() {
            let dropped: Vec<String> = self
                .dropped
                .iter()
                .map(|(name, count)| format!("{name} ×{count}"))
                .collect();
            out.push_str(&format!("dropped properties: {}\n", dropped.join(", ")));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_of_kinds_then_one_line_per_finding() {
        let mut summary = EntitySummary::default();
        *summary.tally(EntityKind::User) = KindTally {
            read: 7,
            documents: 3,
            written: 2,
            unchanged: 1,
            skipped: 1,
            failed: 0,
            redacted: 0,
        };
        summary.skipped.push("users: no user ghost".into());
        summary
            .redacted
            .push("config GLOBAL config-smtp_password: value".into());
        summary.dropped.insert("users: etag".into(), 3);
        summary
            .not_migrated
            .insert("Config schedule:*: CRON".into(), 2);
        let text = summary.render(true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "entities summary");
        assert!(lines[1].contains("would write"), "{text}");
        let users: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(users, ["users", "7", "2", "1", "1", "0", "0"]);
        assert!(lines[2].trim_start().starts_with("organizations"));
        assert!(text.contains("skipped: users: no user ghost\n"));
        assert!(text.contains("redacted: config GLOBAL config-smtp_password: value\n"));
        assert!(text.contains("not migrated: Config schedule:*: CRON (2 rows)\n"));
        assert!(text.contains("dropped properties: users: etag ×3\n"));
        assert_eq!(summary.documents_written(), 2);
    }
}
