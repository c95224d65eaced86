//! What may be a plaintext secret, so the migration never copies it. Secret values belong in Key
//! Vault; the legacy rows hold Key Vault secret *names*, except where an admin typed a value
//! into a `Config` row of type `string` or `json` (which the legacy API masked on output only).
//!
//! Three rules, each erring on the side of not copying:
//! - a name is sensitive when, lowercased and without `_`, `-` and `.`, it contains one of the
//!   legacy mask words (`secret`, `password`, `token`, `key`, `credential`) or `passwd`, `pwd`,
//!   `connectionstring`;
//! - a value is a secret whatever its name when it carries the marks of one (a storage
//!   connection string's `AccountKey=`, a SAS `sig=`, `Password=`, a PEM block, a bearer token,
//!   a JWT, well-known token prefixes);
//! - a reference (`secret_ref` values, `*Ref` properties, `*_ref` settings) must look like a
//!   Key Vault secret name (1–127 letters, digits and `-`); anything else is treated as the
//!   secret itself.

use serde_json::Value;

const SENSITIVE_WORDS: [&str; 8] = [
    "secret",
    "password",
    "passwd",
    "pwd",
    "token",
    "key",
    "credential",
    "connectionstring",
];

/// Substrings (lowercased) that only secrets carry.
const SECRET_MARKS: [&str; 12] = [
    "accountkey=",
    "sharedaccesskey=",
    "sharedaccesssignature=",
    "sig=",
    "password=",
    "pwd=",
    "-----begin",
    "bearer ",
    "ghp_",
    "github_pat_",
    "xoxb-",
    "xoxp-",
];

fn normalized(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether a config key or property name marks its value as a possible secret.
pub fn is_sensitive_name(name: &str) -> bool {
    let name = normalized(name);
    SENSITIVE_WORDS.iter().any(|word| name.contains(word))
}

/// A member name inside a JSON setting that names something public even though it contains a
/// mask word: a reference (`client_secret_ref`), an endpoint (`token_url`) or an identifier
/// (`key_id`).
fn is_public_member(name: &str) -> bool {
    let lower = name.to_lowercase();
    ["url", "uri", "id", "name"]
        .iter()
        .any(|suffix| lower.ends_with(suffix))
}

/// A member that names a Key Vault secret (`client_secret_ref`, `secretRef`).
fn is_reference(name: &str) -> bool {
    name.ends_with("_ref") || name.ends_with("Ref")
}

/// Whether a value carries the marks of a secret whatever it is called.
pub fn looks_like_secret(value: &str) -> bool {
    let lower = value.to_lowercase();
    SECRET_MARKS.iter().any(|mark| lower.contains(mark))
        || contains_jwt(value)
        || has_url_password(value)
}

/// `scheme://user:password@host`.
fn has_url_password(value: &str) -> bool {
    value.split("://").skip(1).any(|rest| {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
        authority
            .rsplit_once('@')
            .is_some_and(|(user_info, _)| user_info.contains(':'))
    })
}

/// Three dot-separated base64url segments, the first a JSON header (`eyJ`).
fn contains_jwt(value: &str) -> bool {
    value
        .split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
        .any(|word| {
            let parts: Vec<&str> = word.split('.').collect();
            parts.len() == 3
                && parts[0].starts_with("eyJ")
                && parts.iter().all(|p| {
                    p.len() >= 8
                        && p.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                })
        })
}

/// Whether a reference looks like a Key Vault secret name (and so is safe to copy).
pub fn is_key_vault_name(value: &str) -> bool {
    (1..=127).contains(&value.len()) && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The members of a JSON value (paths like `auth.client_secret`) that may hold a plaintext
/// secret: a sensitive name that is not a public one, or a reference that is no Key Vault
/// name, or a string that looks like a secret. Empty and null values are no secret.
pub fn secret_members(value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    walk(value, "", &mut found);
    found
}

fn walk(value: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Object(members) => {
            for (name, member) in members {
                let here = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                let blank = match member {
                    Value::Null => true,
                    Value::String(s) => s.is_empty(),
                    _ => false,
                };
                let secret = !blank
                    && match member {
                        // A flag is no secret, whatever it is called.
                        Value::Object(_) | Value::Array(_) | Value::Bool(_) => false,
                        Value::String(s) if is_reference(name) => !is_key_vault_name(s),
                        Value::String(s) if looks_like_secret(s) => true,
                        _ => is_sensitive_name(name) && !is_public_member(name),
                    };
                if secret {
                    found.push(here);
                } else {
                    walk(member, &here, found);
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{index}]"), found);
            }
        }
        Value::String(s) if looks_like_secret(s) => found.push(path.to_owned()),
        _ => {}
    }
}

/// Removes the members `secret_members` found (top-level paths only have a member to remove;
/// deeper ones remove the top-level member that holds them, so nothing of it is kept).
pub fn without_members(value: &Value, paths: &[String]) -> Value {
    let Value::Object(members) = value else {
        return value.clone();
    };
    let top: Vec<&str> = paths
        .iter()
        .map(|p| p.split(['.', '[']).next().unwrap_or(p))
        .collect();
    Value::Object(
        members
            .iter()
            .filter(|(name, _)| !top.contains(&name.as_str()))
            .map(|(name, member)| (name.clone(), member.clone()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_legacy_mask_words_and_a_few_more() {
        for name in [
            "halo_api_key",
            "SMTP_PASSWORD",
            "webhookToken",
            "client-secret",
            "graph_credentials",
            "db_pwd",
            "storage_connection_string",
            "ApiKey",
        ] {
            assert!(is_sensitive_name(name), "{name}");
        }
        for name in ["halo_url", "max_retries", "feature_enabled", "tenant_id"] {
            assert!(!is_sensitive_name(name), "{name}");
        }
    }

    #[test]
    fn values_that_carry_the_marks_of_a_secret() {
        for value in [
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=abc==;",
            "https://a.blob.core.windows.net/c?sv=2020&sig=abc%3D",
            "Server=x;User Id=u;Password=p;",
            "-----BEGIN PRIVATE KEY-----\nMII",
            "Authorization: Bearer abc",
            "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlMTIz",
            "ghp_0123456789abcdef",
            "https://svc:s3cret@halo.example.com/api",
        ] {
            assert!(looks_like_secret(value), "{value}");
        }
        for value in [
            "https://halo.example.com/api",
            "https://halo.example.com/a:b@c",
            "mailto:ada@example.com",
            "42",
            "a.b.c",
            "eyJ.x.y",
        ] {
            assert!(!looks_like_secret(value), "{value}");
        }
    }

    #[test]
    fn key_vault_names_only() {
        assert!(is_key_vault_name(
            "bifrost-global-halo-api-key-0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01"
        ));
        assert!(is_key_vault_name("GLOBAL--halo-api-key"));
        for bad in ["", "hunter2!", "has space", "under_score", &"a".repeat(128)] {
            assert!(!is_key_vault_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn secret_members_spare_references_endpoints_and_ids() {
        let settings = json!({
            "tenant_id": "t", "client_id": "c", "client_secret_ref": "bifrost-global-msgraph-1",
            "token_url": "https://login/x", "api_key": "plain", "nested": {"password": "p", "user": "u"},
            "api_key_ref": "not a name!", "empty_secret": "", "list": ["Bearer abc"],
            "count_token": 3, "use_token": true, "href": "https://x"
        });
        assert_eq!(
            secret_members(&settings),
            [
                "api_key",
                "nested.password",
                "api_key_ref",
                "list[0]",
                "count_token"
            ]
        );
        let kept = without_members(&settings, &secret_members(&settings));
        assert_eq!(
            kept,
            json!({"tenant_id": "t", "client_id": "c", "client_secret_ref": "bifrost-global-msgraph-1",
                   "token_url": "https://login/x", "empty_secret": "", "use_token": true,
                   "href": "https://x"})
        );
        assert!(secret_members(&json!("Password=x")).len() == 1);
        assert!(secret_members(&json!({"retries": 3, "region": "eu"})).is_empty());
    }
}
