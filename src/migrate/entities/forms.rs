//! `Entities` `{org|GLOBAL}` `form:{uuid}` + `Relationships` `formrole:{formId}:{roleId}` →
//! `form` `form-{uuid}` in the row's scope, with `roleIds` embedded.
//!
//! Table forms date from before 2025-11-18, when forms became workspace files; the legacy
//! HEAD no longer reads them. Rows from before 2025-10-25 have `IsPublic` and no
//! `AccessLevel`: they get `accessLevel: null`, which the legacy read as `role_based`.

use std::collections::{BTreeMap, BTreeSet};

use super::document::{source_of, EntityDocument, Outcome};
use super::row::{boolean, document_id, json_column, scope_of, text, timestamp, Row, RowError};
use crate::model::{EntityKind, FormDoc};

const TABLE: &str = "Entities";
const KNOWN: [&str; 12] = [
    "Name",
    "Description",
    "LinkedWorkflow",
    "FormSchema",
    "IsActive",
    "AccessLevel",
    "CreatedBy",
    "CreatedAt",
    "UpdatedAt",
    "LaunchWorkflowId",
    "AllowedQueryParams",
    "DefaultLaunchParams",
];

/// One form row, without its roles.
pub fn form(row: &Row) -> Result<FormDoc, RowError> {
    let fail = |reason: String| RowError::new(TABLE, row, reason);
    let row_key = text(row, "RowKey").unwrap_or_default();
    let json = |name: &str| json_column(row, name).map(Option::unwrap_or_default);
    Ok(FormDoc {
        id: document_id(&row_key).map_err(fail)?,
        doc_type: EntityKind::Form,
        scope: scope_of(TABLE, row)?,
        form_id: row_key.strip_prefix("form:").unwrap_or_default().to_owned(),
        name: text(row, "Name"),
        description: text(row, "Description"),
        linked_workflow: text(row, "LinkedWorkflow"),
        form_schema: json("FormSchema").map_err(fail)?,
        is_active: boolean(row, "IsActive").map_err(fail)?,
        access_level: text(row, "AccessLevel"),
        created_by: text(row, "CreatedBy"),
        created_at: timestamp(row, "CreatedAt").map_err(fail)?,
        updated_at: timestamp(row, "UpdatedAt").map_err(fail)?,
        launch_workflow_id: text(row, "LaunchWorkflowId"),
        allowed_query_params: json("AllowedQueryParams").map_err(fail)?,
        default_launch_params: json("DefaultLaunchParams").map_err(fail)?,
        role_ids: Vec::new(),
    })
}

/// The form rows with their `formrole` rows embedded. A `formrole` whose form is not among
/// them, or whose role does not exist, is reported and skipped.
pub fn forms(rows: &[&Row], form_roles: &[&Row], roles: &BTreeSet<String>, out: &mut Outcome) {
    let mut assigned: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let form_ids: BTreeSet<String> = rows
        .iter()
        .filter_map(|row| text(row, "RowKey"))
        .filter_map(|key| key.strip_prefix("form:").map(str::to_owned))
        .collect();
    for link in form_roles {
        let (form_id, role_id) = link_ends(link, "formrole:", "FormId", "RoleId");
        let source = source_of("Relationships", link);
        match (form_id, role_id) {
            (Some(form), Some(_)) if !form_ids.contains(&form) => out.skip(
                EntityKind::Form,
                format!("{source}: no form {form} (deleted?); the assignment is not migrated"),
            ),
            (Some(_), Some(role)) if !roles.contains(&role) => out.skip(
                EntityKind::Form,
                format!("{source}: no role {role}; the assignment is not migrated"),
            ),
            (Some(form), Some(role)) => {
                assigned.entry(form).or_default().insert(role);
            }
            _ => out.failed.push((
                EntityKind::Form,
                RowError::new("Relationships", link, "no form or role id"),
            )),
        }
    }
    for row in rows {
        let mapped = form(row).and_then(|mut doc| {
            doc.role_ids = assigned
                .get(&doc.form_id)
                .map(|roles| roles.iter().cloned().collect())
                .unwrap_or_default();
            EntityDocument::new(TABLE, row, &KNOWN, &doc)
        });
        out.add(EntityKind::Form, mapped);
    }
}

/// The two ids of a relationship row `{prefix}{a}:{b}`: its properties, else its RowKey.
pub fn link_ends(
    row: &Row,
    prefix: &str,
    first: &str,
    second: &str,
) -> (Option<String>, Option<String>) {
    let row_key = text(row, "RowKey").unwrap_or_default();
    // The first id may be an e-mail, which holds no `:`; the second is a uuid.
    let from_key = row_key
        .strip_prefix(prefix)
        .and_then(|rest| rest.rsplit_once(':'));
    let pick = |property: &str, fallback: Option<&str>| {
        text(row, property)
            .or_else(|| fallback.map(str::to_owned))
            .filter(|id| !id.trim().is_empty())
    };
    (
        pick(first, from_key.map(|(a, _)| a)),
        pick(second, from_key.map(|(_, b)| b)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::entities::row::row;
    use serde_json::{json, Value};

    const ORG: &str = "0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01";

    fn schema() -> String {
        // As `json.dumps(FormSchema.model_dump())` wrote it: every key, null when unset.
        json!({"fields": [{"name": "email", "label": "E-mail", "type": "email", "required": true,
            "validation": null, "dataProvider": null, "dataProviderInputs": null, "defaultValue": null,
            "placeholder": null, "helpText": null, "visibilityExpression": null, "options": null,
            "allowedTypes": null, "multiple": null, "maxSizeMB": null, "content": null,
            "allowAsQueryParam": true}]})
        .to_string()
        .replace(",", ", ")
        .replace(":", ": ")
    }

    #[test]
    fn forms_parse_their_json_columns_and_embed_their_roles() {
        let current = row(json!({
            "PartitionKey": ORG, "RowKey": "form:f1", "Name": "Onboard", "LinkedWorkflow": "user_onboarding",
            "FormSchema": schema(), "IsActive": true, "AccessLevel": "role_based", "CreatedBy": "ada",
            "CreatedAt": "2025-11-01T10:00:00", "UpdatedAt": "2025-11-02T10:00:00.5",
            "AllowedQueryParams": "[\"email\"]", "DefaultLaunchParams": "{\"team\": \"ops\"}", "etag": "W/x"
        }));
        let old = row(json!({
            "PartitionKey": "GLOBAL", "RowKey": "form:f0", "Name": "Old", "LinkedWorkflow": "w",
            "FormSchema": "{\"fields\": []}", "IsActive": true, "IsPublic": true
        }));
        let links = [
            row(
                json!({"PartitionKey": "GLOBAL", "RowKey": "formrole:f1:r2", "FormId": "f1", "RoleId": "r2"}),
            ),
            row(json!({"PartitionKey": "GLOBAL", "RowKey": "formrole:f1:r1"})),
            row(json!({"PartitionKey": "GLOBAL", "RowKey": "formrole:gone:r1"})),
            row(json!({"PartitionKey": "GLOBAL", "RowKey": "formrole:f1:nope"})),
        ];
        let roles: BTreeSet<String> = ["r1".to_owned(), "r2".to_owned()].into();
        let mut out = Outcome::default();
        forms(
            &[&current, &old],
            &links.iter().collect::<Vec<_>>(),
            &roles,
            &mut out,
        );
        assert!(out.failed.is_empty(), "{:?}", out.failed);
        let f1 = &out.documents[0];
        assert_eq!(f1.id, "form-f1");
        assert_eq!(f1.body["scope"], format!("org-{ORG}"));
        assert_eq!(
            f1.body["formSchema"]["fields"][0]["allowAsQueryParam"],
            true
        );
        assert_eq!(
            f1.body["formSchema"]["fields"][0]["validation"],
            Value::Null
        );
        assert_eq!(f1.body["allowedQueryParams"], json!(["email"]));
        assert_eq!(f1.body["defaultLaunchParams"], json!({"team": "ops"}));
        assert_eq!(f1.body["roleIds"], json!(["r1", "r2"]));
        assert_eq!(f1.body["updatedAt"], "2025-11-02T10:00:00.500000Z");
        assert_eq!(f1.dropped, ["etag"]);
        let f0 = &out.documents[1];
        assert_eq!(
            (
                &f0.body["accessLevel"],
                &f0.body["roleIds"],
                &f0.body["launchWorkflowId"]
            ),
            (&Value::Null, &json!([]), &Value::Null)
        );
        assert_eq!(f0.dropped, ["IsPublic"]);
        let skipped: Vec<&str> = out.skipped.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(skipped.len(), 2);
        assert!(skipped[0].contains("formrole:gone:r1") && skipped[0].contains("no form gone"));
        assert!(skipped[1].contains("no role nope"));
    }

    #[test]
    fn a_schema_that_is_not_json_is_a_row_error() {
        let bad =
            row(json!({"PartitionKey": "GLOBAL", "RowKey": "form:f", "FormSchema": "{fields"}));
        let err = form(&bad).unwrap_err();
        assert!(err.reason.starts_with("FormSchema is not JSON"), "{err}");
    }
}
