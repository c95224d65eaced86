//! `Config` rows of one scope: `config:{key}` → `config-{key}`; `integration:{type}` →
//! `integration-{type}`; `github` → `github`. All `type: config`, in the row's scope.
//!
//! A value that may be a plaintext secret is never copied (see `secrets`): the document gets
//! no `value` and `valueRedacted: true` (a config row), or leaves the member out of `settings`
//! and names it in `redactedSettings` (an integration), or a `null` reference (GitHub).

use super::document::EntityDocument;
use super::row::{boolean, document_id, json_column, scope_of, text, timestamp, Row, RowError};
use super::secrets::{
    is_key_vault_name, is_sensitive_name, looks_like_secret, secret_members, without_members,
};
use crate::model::{ConfigDoc, EntityKind, GithubDoc, IntegrationDoc};

const TABLE: &str = "Config";

const CONFIG_KNOWN: [&str; 5] = ["Value", "Type", "Description", "UpdatedAt", "UpdatedBy"];

/// `config:{key}`. The legacy API returned `Value` as a string whatever its `Type`, so it stays
/// one.
pub fn config(row: &Row) -> Result<EntityDocument, RowError> {
    let fail = |reason: String| RowError::new(TABLE, row, reason);
    let row_key = text(row, "RowKey").unwrap_or_default();
    let key = row_key
        .strip_prefix("config:")
        .unwrap_or(&row_key)
        .to_owned();
    let value = text(row, "Value");
    let config_type = text(row, "Type");
    let redact = value
        .as_deref()
        .is_some_and(|value| may_be_secret(&key, config_type.as_deref(), value));
    let doc = ConfigDoc {
        id: document_id(&format!("config:{key}")).map_err(fail)?,
        doc_type: EntityKind::Config,
        scope: scope_of(TABLE, row)?,
        key,
        value: if redact { None } else { value },
        config_type,
        description: text(row, "Description"),
        updated_at: timestamp(row, "UpdatedAt").map_err(fail)?,
        updated_by: text(row, "UpdatedBy"),
        value_redacted: redact,
    };
    let mut mapped = EntityDocument::new(TABLE, row, &CONFIG_KNOWN, &doc)?;
    if redact {
        mapped.redacted.insert(0, "value".into());
    }
    Ok(mapped)
}

/// Whether a config value must not be copied. A `secret_ref` is copied only when it is a Key
/// Vault name; a `bool` that reads as one is never a secret; anything else is withheld when its
/// key has a mask word or the value looks like a secret (a `json` value: any member that
/// does).
pub fn may_be_secret(key: &str, config_type: Option<&str>, value: &str) -> bool {
    if value.is_empty() {
        return false;
    }
    match config_type.map(str::to_ascii_lowercase).as_deref() {
        Some("secret_ref") => !is_key_vault_name(value),
        Some("bool" | "boolean")
            if matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "false") =>
        {
            false
        }
        config_type => {
            let json_secret = config_type == Some("json")
                && serde_json::from_str(value).is_ok_and(|v| !secret_members(&v).is_empty());
            is_sensitive_name(key) || looks_like_secret(value) || json_secret
        }
    }
}

const INTEGRATION_KNOWN: [&str; 5] = ["Type", "Enabled", "Settings", "UpdatedAt", "UpdatedBy"];

/// `integration:{msgraph|halopsa}`: `Settings` parsed; its `*_ref` members are Key Vault names.
pub fn integration(row: &Row) -> Result<EntityDocument, RowError> {
    let fail = |reason: String| RowError::new(TABLE, row, reason);
    let row_key = text(row, "RowKey").unwrap_or_default();
    let settings = json_column(row, "Settings")
        .map_err(fail)?
        .unwrap_or_default();
    let withheld = secret_members(&settings);
    let doc = IntegrationDoc {
        id: document_id(&row_key).map_err(fail)?,
        doc_type: EntityKind::Config,
        scope: scope_of(TABLE, row)?,
        config_type: "integration".into(),
        integration_type: row_key
            .strip_prefix("integration:")
            .unwrap_or_default()
            .to_owned(),
        enabled: boolean(row, "Enabled").map_err(fail)?,
        settings: without_members(&settings, &withheld),
        updated_at: timestamp(row, "UpdatedAt").map_err(fail)?,
        updated_by: text(row, "UpdatedBy"),
        redacted_settings: withheld.clone(),
    };
    let mut mapped = EntityDocument::new(TABLE, row, &INTEGRATION_KNOWN, &doc)?;
    mapped
        .redacted
        .extend(withheld.iter().map(|m| format!("settings.{m}")));
    Ok(mapped)
}

const GITHUB_KNOWN: [&str; 6] = [
    "Status",
    "SecretRef",
    "RepoUrl",
    "ProductionBranch",
    "UpdatedAt",
    "UpdatedBy",
];

/// `github`: the token is in Key Vault (`SecretRef`).
pub fn github(row: &Row) -> Result<EntityDocument, RowError> {
    let fail = |reason: String| RowError::new(TABLE, row, reason);
    let mut redacted = Vec::new();
    let secret_ref = reference(row, "SecretRef", "secretRef", &mut redacted);
    // A repository URL with a token in it (`https://x-access-token:…@github.com/…`).
    let repo_url = text(row, "RepoUrl").filter(|url| {
        let secret = looks_like_secret(url);
        if secret {
            redacted.push("repoUrl".into());
        }
        !secret
    });
    let doc = GithubDoc {
        id: "github".into(),
        doc_type: EntityKind::Config,
        scope: scope_of(TABLE, row)?,
        config_type: "github".into(),
        status: text(row, "Status"),
        secret_ref,
        repo_url,
        production_branch: text(row, "ProductionBranch"),
        updated_at: timestamp(row, "UpdatedAt").map_err(fail)?,
        updated_by: text(row, "UpdatedBy"),
    };
    let mut mapped = EntityDocument::new(TABLE, row, &GITHUB_KNOWN, &doc)?;
    redacted.append(&mut mapped.redacted);
    mapped.redacted = redacted;
    Ok(mapped)
}

/// A Key Vault reference property: copied when it is a Key Vault name, else withheld (and
/// `field` added to `redacted`).
pub fn reference(
    row: &Row,
    property: &str,
    field: &str,
    redacted: &mut Vec<String>,
) -> Option<String> {
    let value = text(row, property).filter(|v| !v.is_empty())?;
    if is_key_vault_name(&value) {
        Some(value)
    } else {
        redacted.push(field.to_owned());
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::entities::row::row;
    use serde_json::json;

    fn config_row(key: &str, config_type: &str, value: &str) -> Row {
        row(json!({
            "PartitionKey": "GLOBAL", "RowKey": format!("config:{key}"), "Value": value,
            "Type": config_type, "Description": "d", "UpdatedAt": "2025-11-01T10:00:00", "UpdatedBy": "ada"
        }))
    }

    #[test]
    fn plain_values_are_copied_as_strings() {
        let doc = config(&config_row(
            "halo_url",
            "string",
            "https://halo.example.com",
        ))
        .unwrap();
        assert_eq!(
            doc.body,
            json!({
                "id": "config-halo_url", "type": "config", "scope": "GLOBAL", "key": "halo_url",
                "value": "https://halo.example.com", "configType": "string", "description": "d",
                "updatedAt": "2025-11-01T10:00:00.000000Z", "updatedBy": "ada", "valueRedacted": false
            })
        );
        assert!(doc.redacted.is_empty());
        let json_value = config(&config_row("limits", "json", "{\"max\": 3}")).unwrap();
        assert_eq!(json_value.body["value"], "{\"max\": 3}");
        let flag = config(&config_row("use_token_auth", "bool", "true")).unwrap();
        assert_eq!(flag.body["value"], "true");
        let reference = config(&config_row(
            "halo_api_key",
            "secret_ref",
            "bifrost-global-halo-api-key-7d3f",
        ))
        .unwrap();
        assert_eq!(reference.body["value"], "bifrost-global-halo-api-key-7d3f");
    }

    #[test]
    fn possible_plaintext_secrets_are_withheld() {
        for (key, config_type, value) in [
            ("smtp_password", "string", "hunter2-plain"),
            ("webhook_token", "json", "{\"t\": \"hunter2-plain\"}"),
            ("pin_key", "int", "1234"),
            (
                "storage",
                "string",
                "DefaultEndpointsProtocol=https;AccountKey=hunter2==;",
            ),
            ("halo", "json", "{\"client_secret\": \"hunter2-plain\"}"),
            ("halo_api_key", "secret_ref", "hunter2 plain!"),
        ] {
            let doc = config(&config_row(key, config_type, value)).unwrap();
            assert!(doc.body.get("value").is_none(), "{key}: {}", doc.body);
            assert_eq!(doc.body["valueRedacted"], true, "{key}");
            assert_eq!(doc.body["configType"], config_type);
            assert_eq!(doc.redacted, ["value"], "{key}");
            assert!(!doc.body.to_string().contains("hunter2"), "{key}");
        }
    }

    #[test]
    fn integration_settings_keep_references_and_lose_plaintext() {
        let doc = integration(&row(json!({
            "PartitionKey": "0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01", "RowKey": "integration:halopsa",
            "Type": "halopsa", "Enabled": true,
            "Settings": "{\"api_url\": \"https://halo\", \"client_id\": \"c\", \"api_key_ref\": \"bifrost-x-1\", \"api_key\": \"hunter2\"}",
            "UpdatedAt": "2025-11-01T10:00:00", "UpdatedBy": "ada"
        })))
        .unwrap();
        assert_eq!(doc.id, "integration-halopsa");
        assert_eq!(doc.body["configType"], "integration");
        assert_eq!(doc.body["integrationType"], "halopsa");
        assert_eq!(
            doc.body["settings"],
            json!({"api_url": "https://halo", "client_id": "c", "api_key_ref": "bifrost-x-1"})
        );
        assert_eq!(doc.body["redactedSettings"], json!(["api_key"]));
        assert_eq!(doc.redacted, ["settings.api_key"]);
    }

    #[test]
    fn github_copies_the_key_vault_name_only() {
        let doc = github(&row(json!({
            "PartitionKey": "GLOBAL", "RowKey": "github", "Status": "configured",
            "SecretRef": "bifrost-global-github-token-1", "RepoUrl": "https://github.com/acme/flows",
            "ProductionBranch": "main", "UpdatedAt": "2025-11-01T10:00:00", "UpdatedBy": "ada", "etag": "W/x"
        })))
        .unwrap();
        assert_eq!(
            doc.body,
            json!({
                "id": "github", "type": "config", "scope": "GLOBAL", "configType": "github",
                "status": "configured", "secretRef": "bifrost-global-github-token-1",
                "repoUrl": "https://github.com/acme/flows", "productionBranch": "main",
                "updatedAt": "2025-11-01T10:00:00.000000Z", "updatedBy": "ada"
            })
        );
        let leaky = github(&row(json!({
            "PartitionKey": "GLOBAL", "RowKey": "github", "SecretRef": "ghp_plaintexttoken",
            "RepoUrl": "https://x-access-token:ghp_abc@github.com/acme/flows"
        })))
        .unwrap();
        assert_eq!(leaky.body["secretRef"], json!(null));
        assert_eq!(leaky.body["repoUrl"], json!(null));
        assert_eq!(leaky.redacted, ["secretRef", "repoUrl"]);
    }
}
