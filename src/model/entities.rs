//! `entities` container (partition `/scope`): the platform's own records, as migrated from the
//! legacy `Entities`, `Config` and `Relationships` tables. Every field the legacy row may lack
//! is `null` rather than absent, so every document of a kind has the same fields.
//!
//! Ids are the legacy RowKey with its first `:` replaced by `-` (`org:{uuid}` → `org-{uuid}`,
//! `config:{key}` → `config-{key}`), so they are unique per partition and a rerun of the
//! migration upserts the same documents.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Scope, Timestamp};

/// The `type` of an entity document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Organization,
    User,
    Role,
    Form,
    /// `config-{key}`, and the `integration-{type}` and `github` settings.
    Config,
    OauthConnection,
    Branding,
}

impl EntityKind {
    pub const ALL: [EntityKind; 7] = [
        EntityKind::Organization,
        EntityKind::User,
        EntityKind::Role,
        EntityKind::Form,
        EntityKind::Config,
        EntityKind::OauthConnection,
        EntityKind::Branding,
    ];

    /// The stored `type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Organization => "organization",
            EntityKind::User => "user",
            EntityKind::Role => "role",
            EntityKind::Form => "form",
            EntityKind::Config => "config",
            EntityKind::OauthConnection => "oauth_connection",
            EntityKind::Branding => "branding",
        }
    }

    pub fn from_type(value: &str) -> Option<EntityKind> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == value)
    }

    /// Plural, for summaries (one word, so a summary line splits on whitespace).
    pub fn plural(self) -> &'static str {
        match self {
            EntityKind::Organization => "organizations",
            EntityKind::User => "users",
            EntityKind::Role => "roles",
            EntityKind::Form => "forms",
            EntityKind::Config => "config",
            EntityKind::OauthConnection => "oauth_connections",
            EntityKind::Branding => "branding",
        }
    }
}

impl std::fmt::Display for EntityKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An organization: partition `GLOBAL`, id `org-{uuid}`, which is also the organization's own
/// scope string, so listing organizations is one single-partition query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationDoc {
    pub id: String,
    #[serde(rename = "type")]
    pub doc_type: EntityKind,
    pub scope: Scope,
    /// The raw uuid, as the legacy API and `X-Organization-Id` spell it.
    pub org_id: String,
    pub name: Option<String>,
    /// Lowercased; drives sign-up by e-mail domain.
    pub domain: Option<String>,
    pub is_active: Option<bool>,
    pub created_at: Option<Timestamp>,
    pub created_by: Option<String>,
    pub updated_at: Option<Timestamp>,
}

/// A user: partition `GLOBAL`, one document per lowercased e-mail (id `user-{email}`), holding
/// who they are and what they may read, so authorization is a single point read.
///
/// Also the shape of the membership-only documents written before the users were migrated
/// (`id`, `type`, `scope`, `userId`, `email`, `isPlatformAdmin`, `orgScopes`): every field
/// added since has a default, so those still read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserDoc {
    pub id: String,
    #[serde(rename = "type")]
    pub doc_type: EntityKind,
    pub scope: Scope,
    pub user_id: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    /// `PLATFORM` or `ORG`.
    #[serde(default)]
    pub user_type: Option<String>,
    #[serde(default)]
    pub is_platform_admin: bool,
    /// `false` denies the user every route; absent (or `null`) is active.
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default)]
    pub created_at: Option<Timestamp>,
    #[serde(default)]
    pub last_login: Option<Timestamp>,
    #[serde(default)]
    pub entra_user_id: Option<String>,
    #[serde(default)]
    pub last_entra_id_sync: Option<Timestamp>,
    /// Organizations the user belongs to (legacy `userperm:{email}:{orgId}` rows), sorted.
    #[serde(default)]
    pub org_scopes: Vec<Scope>,
    /// Role uuids (legacy `userrole:{email}:{roleId}` rows), sorted.
    #[serde(default)]
    pub role_ids: Vec<String>,
}

impl UserDoc {
    pub fn id_for(user_id: &str) -> String {
        format!("user-{}", user_id.to_lowercase())
    }

    /// Whether the account may sign in: only an explicit `isActive: false` says no.
    pub fn is_active(&self) -> bool {
        self.is_active != Some(false)
    }
}

/// A role: in the partition it was created in (`GLOBAL` when an admin made it without an
/// organization), id `role-{uuid}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleDoc {
    pub id: String,
    #[serde(rename = "type")]
    pub doc_type: EntityKind,
    pub scope: Scope,
    pub role_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub is_active: Option<bool>,
    pub created_by: Option<String>,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
}

/// A form stored in the legacy table (forms made after 2025-11-18 are workspace files), with
/// the roles that may launch it embedded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FormDoc {
    pub id: String,
    #[serde(rename = "type")]
    pub doc_type: EntityKind,
    pub scope: Scope,
    pub form_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub linked_workflow: Option<String>,
    /// The parsed `FormSchema` (`{fields: [...]}`).
    pub form_schema: Value,
    pub is_active: Option<bool>,
    /// `public`, `authenticated` or `role_based`; `null` on forms from before the column
    /// existed, which the legacy treated as `role_based`.
    pub access_level: Option<String>,
    pub created_by: Option<String>,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub launch_workflow_id: Option<String>,
    /// A JSON list, or `null`.
    pub allowed_query_params: Value,
    /// A JSON object, or `null`.
    pub default_launch_params: Value,
    /// Role uuids (legacy `formrole:{formId}:{roleId}` rows), sorted.
    pub role_ids: Vec<String>,
}

/// One configuration value, id `config-{key}`. A value that may be a plaintext secret is not
/// copied: `value` is absent and `valueRedacted` is `true` until an operator moves it to Key
/// Vault and makes it a `secret_ref`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigDoc {
    pub id: String,
    #[serde(rename = "type")]
    pub doc_type: EntityKind,
    pub scope: Scope,
    pub key: String,
    /// Always a string, as the legacy API returned it (`json` values are JSON text). For
    /// `secret_ref` it is a Key Vault secret name, never the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The legacy `Type`: `string`, `int`, `bool`, `json` or `secret_ref`.
    pub config_type: Option<String>,
    pub description: Option<String>,
    pub updated_at: Option<Timestamp>,
    pub updated_by: Option<String>,
    #[serde(default)]
    pub value_redacted: bool,
}

/// An integration's settings (`integration-msgraph`, `integration-halopsa`): `type: config`,
/// `configType: integration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationDoc {
    pub id: String,
    #[serde(rename = "type")]
    pub doc_type: EntityKind,
    pub scope: Scope,
    pub config_type: String,
    pub integration_type: String,
    pub enabled: Option<bool>,
    /// The parsed settings; `*_ref` members are Key Vault secret names. A member that may hold
    /// a plaintext secret is left out and named in `redactedSettings`.
    pub settings: Value,
    pub updated_at: Option<Timestamp>,
    pub updated_by: Option<String>,
    #[serde(default)]
    pub redacted_settings: Vec<String>,
}

/// The GitHub connection (`github`): `type: config`, `configType: github`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GithubDoc {
    pub id: String,
    #[serde(rename = "type")]
    pub doc_type: EntityKind,
    pub scope: Scope,
    pub config_type: String,
    pub status: Option<String>,
    /// Key Vault secret name of the token.
    pub secret_ref: Option<String>,
    pub repo_url: Option<String>,
    pub production_branch: Option<String>,
    pub updated_at: Option<Timestamp>,
    pub updated_by: Option<String>,
}

/// An OAuth connection, id `oauth-{name}`: the client secret and the token response stay in
/// Key Vault, referenced by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OauthConnectionDoc {
    pub id: String,
    #[serde(rename = "type")]
    pub doc_type: EntityKind,
    pub scope: Scope,
    pub connection_name: String,
    pub description: Option<String>,
    /// `authorization_code`, `client_credentials` or `refresh_token`.
    pub oauth_flow_type: Option<String>,
    pub client_id: Option<String>,
    pub client_secret_ref: Option<String>,
    pub oauth_response_ref: Option<String>,
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    pub scopes: Option<String>,
    pub redirect_uri: Option<String>,
    pub status: Option<String>,
    pub status_message: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub created_by: Option<String>,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub updated_by: Option<String>,
}

/// Branding (`branding`): logo URLs point into the legacy account's `branding` container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrandingDoc {
    pub id: String,
    #[serde(rename = "type")]
    pub doc_type: EntityKind,
    pub scope: Scope,
    pub square_logo_url: Option<String>,
    pub rectangle_logo_url: Option<String>,
    /// `#RGB` or `#RRGGBB`.
    pub primary_color: Option<String>,
    pub updated_by: Option<String>,
    pub updated_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_round_trip_their_type_names() {
        for kind in EntityKind::ALL {
            assert_eq!(EntityKind::from_type(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
        }
        assert_eq!(EntityKind::from_type("metrics"), None);
    }

    #[test]
    fn a_membership_only_document_still_reads_as_an_active_user() {
        let user: UserDoc = serde_json::from_value(json!({
            "id": "user-a11ce", "type": "user", "scope": "GLOBAL", "userId": "a11ce",
            "orgScopes": ["org-0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01"], "_etag": "x"
        }))
        .unwrap();
        assert!(user.is_active());
        assert!(!user.is_platform_admin);
        assert!(user.role_ids.is_empty());
        let inactive = UserDoc {
            is_active: Some(false),
            ..user
        };
        assert!(!inactive.is_active());
        assert_eq!(UserDoc::id_for("Ada@Example.COM"), "user-ada@example.com");
    }

    #[test]
    fn a_redacted_config_value_is_absent_not_null() {
        let doc = ConfigDoc {
            id: "config-smtp_password".into(),
            doc_type: EntityKind::Config,
            scope: Scope::Global,
            key: "smtp_password".into(),
            value: None,
            config_type: Some("string".into()),
            description: None,
            updated_at: None,
            updated_by: None,
            value_redacted: true,
        };
        let value = serde_json::to_value(&doc).unwrap();
        assert!(value.get("value").is_none());
        assert_eq!(value["valueRedacted"], true);
        assert_eq!(value["description"], Value::Null);
    }
}
