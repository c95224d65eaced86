//! `Entities` `GLOBAL` `org:{uuid}` → `organization` `org-{uuid}` in `GLOBAL`.

use super::document::EntityDocument;
use super::row::{boolean, text, timestamp, Row, RowError};
use crate::model::{EntityKind, OrganizationDoc, Scope};

const TABLE: &str = "Entities";
const KNOWN: [&str; 6] = [
    "Name",
    "Domain",
    "IsActive",
    "CreatedAt",
    "CreatedBy",
    "UpdatedAt",
];

/// The legacy writes organizations to `GLOBAL`; an `org:` row under its own uuid (read by one
/// legacy lookup, written by nothing at HEAD) loses to the `GLOBAL` one.
pub fn organization(row: &Row) -> Result<EntityDocument, RowError> {
    let fail = |reason: String| RowError::new(TABLE, row, reason);
    let row_key = text(row, "RowKey").unwrap_or_default();
    let raw = row_key.strip_prefix("org:").unwrap_or_default();
    let Ok(Scope::Org(uuid)) = Scope::from_legacy_org_id(raw) else {
        return Err(fail(format!("organization id {raw:?} is not a uuid")));
    };
    let own_scope = Scope::Org(uuid);
    let doc = OrganizationDoc {
        // The id is the organization's scope string.
        id: own_scope.to_string(),
        doc_type: EntityKind::Organization,
        scope: Scope::Global,
        org_id: uuid.to_string(),
        name: text(row, "Name"),
        domain: text(row, "Domain").map(|d| d.trim().to_lowercase()),
        is_active: boolean(row, "IsActive").map_err(fail)?,
        created_at: timestamp(row, "CreatedAt").map_err(fail)?,
        created_by: text(row, "CreatedBy"),
        updated_at: timestamp(row, "UpdatedAt").map_err(fail)?,
    };
    let in_global = text(row, "PartitionKey").as_deref() == Some(Scope::GLOBAL);
    Ok(EntityDocument::new(TABLE, row, &KNOWN, &doc)?.ranked(u8::from(in_global)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::entities::row::row;
    use serde_json::json;

    #[test]
    fn a_soft_deleted_organization_with_the_stray_etag() {
        let doc = organization(&row(json!({
            "PartitionKey": "GLOBAL", "RowKey": "org:0F4A6F6C-1111-4C2E-9A57-3D2B8F1F0A01",
            "Name": "Acme", "Domain": " Acme.COM ", "IsActive": false,
            "CreatedAt": "2025-10-20T08:00:00.123456", "CreatedBy": "d75b", "UpdatedAt": "2025-11-01T09:00:00",
            "etag": "W/\"datetime'2026-12-01T09%3A01%3A39.2085923Z'\"", "Timestamp": "2025-11-01T09:00:00Z"
        })))
        .unwrap();
        assert_eq!(
            doc.body,
            json!({
                "id": "org-0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01", "type": "organization", "scope": "GLOBAL",
                "orgId": "0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01", "name": "Acme", "domain": "acme.com",
                "isActive": false, "createdAt": "2025-10-20T08:00:00.123456Z", "createdBy": "d75b",
                "updatedAt": "2025-11-01T09:00:00.000000Z"
            })
        );
        assert_eq!(doc.dropped, ["etag"]);
        assert!(doc.redacted.is_empty());
        assert_eq!(doc.rank, 1);
    }

    #[test]
    fn the_early_seed_shape_and_bad_ids() {
        let old = organization(&row(json!({
            "PartitionKey": "0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01",
            "RowKey": "org:0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01", "Name": "Old", "TenantId": "t"
        })))
        .unwrap();
        assert_eq!(old.body["domain"], json!(null));
        assert_eq!(old.body["isActive"], json!(null));
        assert_eq!(old.dropped, ["TenantId"]);
        assert_eq!(old.rank, 0);
        let err = organization(&row(
            json!({"PartitionKey": "GLOBAL", "RowKey": "org:acme"}),
        ))
        .unwrap_err();
        assert!(err.reason.contains("\"acme\" is not a uuid"), "{err}");
        let err = organization(&row(json!({
            "PartitionKey": "GLOBAL", "RowKey": "org:0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01", "IsActive": "yes"
        })))
        .unwrap_err();
        assert!(err.reason.contains("IsActive"), "{err}");
    }
}
