//! `Entities` `{org|GLOBAL}` `role:{uuid}` → `role` `role-{uuid}` in the row's scope. Roles an
//! admin made without an organization are `GLOBAL`, as the legacy wrote them. From 2025-10-14
//! to 10-17 roles lived in `Relationships` `GLOBAL`; such a row loses to an `Entities` one.

use super::document::EntityDocument;
use super::row::{boolean, scope_of, text, timestamp, Row, RowError};
use crate::model::{EntityKind, RoleDoc};

const KNOWN: [&str; 6] = [
    "Name",
    "Description",
    "IsActive",
    "CreatedBy",
    "CreatedAt",
    "UpdatedAt",
];

/// `table` is `Entities`, or `Relationships` for the October 2025 rows.
pub fn role(table: &'static str, row: &Row) -> Result<EntityDocument, RowError> {
    let fail = |reason: String| RowError::new(table, row, reason);
    let scope = scope_of(table, row)?;
    let row_key = text(row, "RowKey").unwrap_or_default();
    let id = super::row::document_id(&row_key).map_err(fail)?;
    let doc = RoleDoc {
        id,
        doc_type: EntityKind::Role,
        scope,
        role_id: row_key.strip_prefix("role:").unwrap_or_default().to_owned(),
        name: text(row, "Name"),
        description: text(row, "Description"),
        is_active: boolean(row, "IsActive").map_err(fail)?,
        created_by: text(row, "CreatedBy"),
        created_at: timestamp(row, "CreatedAt").map_err(fail)?,
        updated_at: timestamp(row, "UpdatedAt").map_err(fail)?,
    };
    let rank = u8::from(table == "Entities");
    Ok(EntityDocument::new(table, row, &KNOWN, &doc)?.ranked(rank))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::entities::row::row;
    use crate::model::Scope;
    use serde_json::json;

    #[test]
    fn org_and_global_roles_keep_their_scope() {
        let doc = role(
            "Entities",
            &row(json!({
                "PartitionKey": "0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01", "RowKey": "role:r1",
                "Name": "Help desk", "IsActive": true, "CreatedBy": "ada@example.com",
                "CreatedAt": "2025-10-20T08:00:00", "UpdatedAt": "2025-10-20T08:00:00"
            })),
        )
        .unwrap();
        assert_eq!(
            doc.body,
            json!({
                "id": "role-r1", "type": "role", "scope": "org-0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01",
                "roleId": "r1", "name": "Help desk", "description": null, "isActive": true,
                "createdBy": "ada@example.com", "createdAt": "2025-10-20T08:00:00.000000Z",
                "updatedAt": "2025-10-20T08:00:00.000000Z"
            })
        );
        assert_eq!(doc.rank, 1);
        let early = role(
            "Relationships",
            &row(json!({"PartitionKey": "GLOBAL", "RowKey": "role:r2", "Name": "Old"})),
        )
        .unwrap();
        assert_eq!((early.scope, early.rank), (Scope::Global, 0));
        let system = role(
            "Entities",
            &row(json!({"PartitionKey": "SYSTEM", "RowKey": "role:r3"})),
        );
        assert!(system.unwrap_err().reason.contains("SYSTEM"));
    }
}
