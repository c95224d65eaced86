//! OAuth connections → `oauth_connection` `oauth-{name}` in the row's scope. Two generations,
//! which can coexist:
//! - generation 2 (since 2025-10-31): one `Config` row `oauth:{name}`;
//! - generation 1: three `Config` rows `config:oauth_{name}_metadata` (a JSON value),
//!   `…_client_secret` and `…_oauth_response` (Key Vault names); `init_tables` wrote them
//!   without the `config:` prefix.
//!
//! When both exist for one name and scope, generation 2 wins. The client secret and the token
//! response stay in Key Vault: only their names are copied.

use serde_json::{Map, Value};

use super::config::reference;
use super::document::{source_of, EntityDocument};
use super::row::{
    document_id, json_column, scope_of, text, timestamp, unknown_properties, Row, RowError,
};
use super::secrets::{is_key_vault_name, is_sensitive_name, secret_members};
use crate::model::{EntityKind, OauthConnectionDoc, Timestamp};

const TABLE: &str = "Config";
const KNOWN: [&str; 17] = [
    "Type",
    "Description",
    "OAuthFlowType",
    "ClientId",
    "ClientSecretRef",
    "OAuthResponseRef",
    "AuthorizationUrl",
    "TokenUrl",
    "Scopes",
    "RedirectUri",
    "Status",
    "StatusMessage",
    "ExpiresAt",
    "CreatedBy",
    "CreatedAt",
    "UpdatedAt",
    "UpdatedBy",
];

/// A generation 2 row `oauth:{name}`.
pub fn connection(row: &Row) -> Result<EntityDocument, RowError> {
    let fail = |reason: String| RowError::new(TABLE, row, reason);
    let row_key = text(row, "RowKey").unwrap_or_default();
    let mut redacted = Vec::new();
    let doc = OauthConnectionDoc {
        id: document_id(&row_key).map_err(fail)?,
        doc_type: EntityKind::OauthConnection,
        scope: scope_of(TABLE, row)?,
        connection_name: row_key
            .strip_prefix("oauth:")
            .unwrap_or_default()
            .to_owned(),
        description: text(row, "Description"),
        oauth_flow_type: text(row, "OAuthFlowType"),
        client_id: text(row, "ClientId"),
        client_secret_ref: reference(row, "ClientSecretRef", "clientSecretRef", &mut redacted),
        oauth_response_ref: reference(row, "OAuthResponseRef", "oauthResponseRef", &mut redacted),
        authorization_url: text(row, "AuthorizationUrl"),
        token_url: text(row, "TokenUrl"),
        scopes: text(row, "Scopes"),
        redirect_uri: text(row, "RedirectUri"),
        status: text(row, "Status"),
        status_message: text(row, "StatusMessage"),
        expires_at: timestamp(row, "ExpiresAt").map_err(fail)?,
        created_by: text(row, "CreatedBy"),
        created_at: timestamp(row, "CreatedAt").map_err(fail)?,
        updated_at: timestamp(row, "UpdatedAt").map_err(fail)?,
        updated_by: text(row, "UpdatedBy"),
    };
    let mut mapped = EntityDocument::new(TABLE, row, &KNOWN, &doc)?.ranked(1);
    redacted.append(&mut mapped.redacted);
    mapped.redacted = redacted;
    Ok(mapped)
}

/// The three row kinds of a generation 1 connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    Metadata,
    ClientSecret,
    OauthResponse,
}

/// `(name, part)` when `row_key` is a generation 1 OAuth row.
pub fn generation1_part(row_key: &str) -> Option<(String, Part)> {
    let key = row_key.strip_prefix("config:").unwrap_or(row_key);
    let rest = key.strip_prefix("oauth_")?;
    [
        ("_metadata", Part::Metadata),
        ("_client_secret", Part::ClientSecret),
        ("_oauth_response", Part::OauthResponse),
    ]
    .into_iter()
    .find_map(|(suffix, part)| {
        rest.strip_suffix(suffix)
            .filter(|name| !name.is_empty())
            .map(|name| (name.to_owned(), part))
    })
}

/// The `json.dumps` members of a generation 1 `_metadata` value this mapping reads.
const METADATA_KNOWN: [&str; 8] = [
    "oauth_flow_type",
    "client_id",
    "authorization_url",
    "token_url",
    "scopes",
    "redirect_uri",
    "status",
    "expires_at",
];
const PART_KNOWN: [&str; 5] = ["Value", "Type", "Description", "UpdatedAt", "UpdatedBy"];

/// One generation 1 connection from its rows (all of one scope and name; the `_metadata` row
/// is required).
pub fn generation1(
    name: &str,
    metadata: &Row,
    client_secret: Option<&Row>,
    oauth_response: Option<&Row>,
) -> Result<EntityDocument, RowError> {
    let fail = |reason: String| RowError::new(TABLE, metadata, reason);
    let value = json_column(metadata, "Value")
        .map_err(fail)?
        .unwrap_or_default();
    let empty = Map::new();
    let members = value.as_object().unwrap_or(&empty);
    let member = |name: &str| match members.get(name) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    // OAuth scopes are space-separated (RFC 6749, section 3.3); a list is joined that way.
    let scopes = match members.get("scopes") {
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|s| s.as_str().map_or_else(|| s.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => member("scopes"),
    };
    let expires_at = member("expires_at")
        .map(|raw| Timestamp::parse(&raw).map_err(|e| fail(format!("expires_at: {e}"))))
        .transpose()?;
    let mut redacted = Vec::new();
    let mut secret_ref = |row: Option<&Row>, field: &str| {
        let value = row
            .and_then(|row| text(row, "Value"))
            .filter(|v| !v.is_empty())?;
        if is_key_vault_name(&value) {
            Some(value)
        } else {
            redacted.push(field.to_owned());
            None
        }
    };
    let client_secret_ref = secret_ref(client_secret, "clientSecretRef");
    let oauth_response_ref = secret_ref(oauth_response, "oauthResponseRef");
    // The rows are written together; the last write is the connection's.
    let parts = [Some(metadata), client_secret, oauth_response];
    let mut updated: Option<(Timestamp, Option<String>)> = None;
    for row in parts.iter().flatten() {
        if let Some(at) = timestamp(row, "UpdatedAt").map_err(fail)? {
            if updated.as_ref().is_none_or(|(last, _)| at > *last) {
                updated = Some((at, text(row, "UpdatedBy")));
            }
        }
    }
    let doc = OauthConnectionDoc {
        id: document_id(&format!("oauth:{name}")).map_err(fail)?,
        doc_type: EntityKind::OauthConnection,
        scope: scope_of(TABLE, metadata)?,
        connection_name: name.to_owned(),
        description: text(metadata, "Description"),
        oauth_flow_type: member("oauth_flow_type"),
        client_id: member("client_id"),
        client_secret_ref,
        oauth_response_ref,
        authorization_url: member("authorization_url"),
        token_url: member("token_url"),
        scopes,
        redirect_uri: member("redirect_uri"),
        status: member("status"),
        status_message: None,
        expires_at,
        created_by: None,
        created_at: None,
        updated_at: updated.as_ref().map(|(at, _)| *at),
        updated_by: updated.and_then(|(_, by)| by),
    };
    let mut mapped = EntityDocument::new(TABLE, metadata, &PART_KNOWN, &doc)?;
    let rows = parts.iter().flatten().count();
    mapped.source = format!("{} (generation 1, {rows} rows)", mapped.source);
    let withheld = secret_members(&value);
    for name in members
        .keys()
        .filter(|m| !METADATA_KNOWN.contains(&m.as_str()))
    {
        mapped.dropped.push(format!("metadata.{name}"));
        if is_sensitive_name(name) || withheld.contains(name) {
            mapped.redacted.push(format!("metadata.{name}"));
        }
    }
    for row in [client_secret, oauth_response].into_iter().flatten() {
        for name in unknown_properties(row, &PART_KNOWN) {
            if is_sensitive_name(&name) {
                mapped.redacted.push(format!("property {name}"));
            }
            mapped.dropped.push(name);
        }
    }
    redacted.append(&mut mapped.redacted);
    mapped.redacted = redacted;
    Ok(mapped)
}

/// The report line for generation 1 rows that have no `_metadata` row.
pub fn without_metadata(name: &str, rows: &[&Row]) -> String {
    let sources: Vec<String> = rows.iter().map(|row| source_of(TABLE, row)).collect();
    format!(
        "{}: generation 1 OAuth rows of {name:?} without their _metadata row (nothing to build a connection from)",
        sources.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::entities::row::row;
    use serde_json::json;

    const ORG: &str = "0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01";

    #[test]
    fn generation_2_rows_copy_references_and_drop_tokens() {
        let doc = connection(&row(json!({
            "PartitionKey": ORG, "RowKey": "oauth:halo", "Type": "oauth", "Description": "Halo",
            "OAuthFlowType": "client_credentials", "ClientId": "c1",
            "ClientSecretRef": "bifrost-0f4a-oauth-halo-client-secret-1",
            "OAuthResponseRef": "bifrost-0f4a-oauth-halo-response-1",
            "TokenUrl": "https://halo/token", "Scopes": "all", "RedirectUri": "https://app/cb",
            "Status": "completed", "ExpiresAt": "2025-11-20T10:00:00", "CreatedBy": "ada",
            "CreatedAt": "2025-11-01T10:00:00", "UpdatedAt": "2025-11-19T10:00:00",
            "etag": "W/x", "AccessToken": "hunter2-access", "RefreshToken": "hunter2-refresh"
        })))
        .unwrap();
        assert_eq!(
            doc.body,
            json!({
                "id": "oauth-halo", "type": "oauth_connection", "scope": format!("org-{ORG}"),
                "connectionName": "halo", "description": "Halo", "oauthFlowType": "client_credentials",
                "clientId": "c1", "clientSecretRef": "bifrost-0f4a-oauth-halo-client-secret-1",
                "oauthResponseRef": "bifrost-0f4a-oauth-halo-response-1", "authorizationUrl": null,
                "tokenUrl": "https://halo/token", "scopes": "all", "redirectUri": "https://app/cb",
                "status": "completed", "statusMessage": null, "expiresAt": "2025-11-20T10:00:00.000000Z",
                "createdBy": "ada", "createdAt": "2025-11-01T10:00:00.000000Z",
                "updatedAt": "2025-11-19T10:00:00.000000Z", "updatedBy": null
            })
        );
        assert_eq!(doc.dropped, ["AccessToken", "RefreshToken", "etag"]);
        assert_eq!(
            doc.redacted,
            ["property AccessToken", "property RefreshToken"]
        );
        assert!(!doc.body.to_string().contains("hunter2"));
        assert_eq!(doc.rank, 1);
    }

    #[test]
    fn generation_1_row_keys_with_and_without_the_prefix() {
        assert_eq!(
            generation1_part("config:oauth_my_app_metadata"),
            Some(("my_app".into(), Part::Metadata))
        );
        assert_eq!(
            generation1_part("oauth_graph_client_secret"),
            Some(("graph".into(), Part::ClientSecret))
        );
        assert_eq!(
            generation1_part("config:oauth_graph_oauth_response"),
            Some(("graph".into(), Part::OauthResponse))
        );
        assert_eq!(generation1_part("config:oauth_metadata"), None);
        assert_eq!(generation1_part("config:halo_url"), None);
    }

    #[test]
    fn generation_1_rows_fold_into_one_connection() {
        let part = |suffix: &str, config_type: &str, value: Value, at: &str, by: &str| {
            row(json!({
                "PartitionKey": "GLOBAL", "RowKey": format!("config:oauth_graph_{suffix}"),
                "Value": value, "Type": config_type, "Description": format!("{suffix} of graph"),
                "UpdatedAt": at, "UpdatedBy": by
            }))
        };
        let metadata = part(
            "metadata",
            "json",
            json!(json!({
                "oauth_flow_type": "authorization_code", "client_id": "c", "authorization_url": "https://login/a",
                "token_url": "https://login/t", "scopes": ["User.Read", "offline_access"],
                "redirect_uri": "https://app/cb", "status": "completed",
                "expires_at": "2025-10-30T10:00:00", "last_refresh_at": "2025-10-30T09:00:00",
                "access_token": "hunter2"
            })
            .to_string()),
            "2025-10-30T09:00:00",
            "system",
        );
        let secret = part(
            "client_secret",
            "secret_ref",
            json!("GLOBAL--oauth-graph-client-secret"),
            "2025-10-20T09:00:00",
            "ada",
        );
        let response = part(
            "oauth_response",
            "secret_ref",
            json!("not a key vault name: hunter2"),
            "2025-10-30T09:00:01",
            "token-refresh",
        );
        let doc = generation1("graph", &metadata, Some(&secret), Some(&response)).unwrap();
        assert_eq!(
            doc.body,
            json!({
                "id": "oauth-graph", "type": "oauth_connection", "scope": "GLOBAL",
                "connectionName": "graph", "description": "metadata of graph",
                "oauthFlowType": "authorization_code", "clientId": "c",
                "clientSecretRef": "GLOBAL--oauth-graph-client-secret", "oauthResponseRef": null,
                "authorizationUrl": "https://login/a", "tokenUrl": "https://login/t",
                "scopes": "User.Read offline_access", "redirectUri": "https://app/cb",
                "status": "completed", "statusMessage": null, "expiresAt": "2025-10-30T10:00:00.000000Z",
                "createdBy": null, "createdAt": null, "updatedAt": "2025-10-30T09:00:01.000000Z",
                "updatedBy": "token-refresh"
            })
        );
        assert_eq!(doc.rank, 0);
        assert_eq!(doc.redacted, ["oauthResponseRef", "metadata.access_token"]);
        assert_eq!(
            doc.dropped,
            ["metadata.last_refresh_at", "metadata.access_token"]
        );
        assert!(!doc.body.to_string().contains("hunter2"));
        assert!(
            doc.source.ends_with("(generation 1, 3 rows)"),
            "{}",
            doc.source
        );
    }
}
