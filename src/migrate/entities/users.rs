//! `Entities` `GLOBAL` `user:{email}` + `Relationships` `userperm:{email}:{orgId}` and
//! `userrole:{email}:{roleId}` → one `user` document per lowercased e-mail, `user-{email}` in
//! `GLOBAL`, with `orgScopes` and `roleIds` embedded. Authorization point-reads it.
//!
//! - The legacy RowKey keeps the e-mail as typed, so one person can have rows in two cases:
//!   the row that signed in last is kept, the other reported.
//! - Memberships without a user row still make a document (as the memberships-only migration
//!   did), so nobody loses access.
//! - `isPlatformAdmin` is the legacy `IsPlatformAdmin`, the legacy's source of the
//!   `PlatformAdmin` role.
//! - A `userrole` row of nobody, or of a role that does not exist, is reported and skipped.

use std::collections::{BTreeMap, BTreeSet};

use super::document::{source_of, EntityDocument, Outcome};
use super::forms::link_ends;
use super::row::{boolean, document_id, text, timestamp, Row, RowError};
use crate::model::{EntityKind, Scope, UserDoc};

const TABLE: &str = "Entities";
const KNOWN: [&str; 9] = [
    "Email",
    "DisplayName",
    "UserType",
    "IsPlatformAdmin",
    "IsActive",
    "CreatedAt",
    "LastLogin",
    "EntraUserId",
    "LastEntraIdSync",
];

/// One user row, without memberships and roles.
pub fn user(row: &Row) -> Result<UserDoc, RowError> {
    let fail = |reason: String| RowError::new(TABLE, row, reason);
    let row_key = text(row, "RowKey").unwrap_or_default();
    let email = row_key
        .strip_prefix("user:")
        .filter(|e| !e.trim().is_empty())
        .ok_or_else(|| fail("no e-mail in the RowKey".into()))?
        .to_lowercase();
    Ok(UserDoc {
        id: user_id(&email).map_err(fail)?,
        doc_type: EntityKind::User,
        scope: Scope::Global,
        user_id: email.clone(),
        email: Some(email),
        display_name: text(row, "DisplayName"),
        user_type: text(row, "UserType"),
        is_platform_admin: boolean(row, "IsPlatformAdmin")
            .map_err(fail)?
            .unwrap_or(false),
        is_active: boolean(row, "IsActive").map_err(fail)?,
        created_at: timestamp(row, "CreatedAt").map_err(fail)?,
        last_login: timestamp(row, "LastLogin").map_err(fail)?,
        entra_user_id: text(row, "EntraUserId"),
        last_entra_id_sync: timestamp(row, "LastEntraIdSync").map_err(fail)?,
        org_scopes: Vec::new(),
        role_ids: Vec::new(),
    })
}

/// `user-{email}`, refused when the e-mail holds a character no document id may hold.
fn user_id(email: &str) -> Result<String, String> {
    document_id(&format!("user:{email}")).map(|_| UserDoc::id_for(email))
}

/// A document for a user known only from memberships.
fn membership_only(email: &str) -> Result<UserDoc, String> {
    Ok(UserDoc {
        id: user_id(email)?,
        doc_type: EntityKind::User,
        scope: Scope::Global,
        user_id: email.to_owned(),
        email: email.contains('@').then(|| email.to_owned()),
        display_name: None,
        user_type: None,
        is_platform_admin: false,
        is_active: None,
        created_at: None,
        last_login: None,
        entra_user_id: None,
        last_entra_id_sync: None,
        org_scopes: Vec::new(),
        role_ids: Vec::new(),
    })
}

/// Every user document, from the user rows and the `userperm`/`userrole` rows. `roles` are
/// the role ids the source has.
pub fn users(
    rows: &[&Row],
    memberships: &[&Row],
    role_links: &[&Row],
    roles: &BTreeSet<String>,
    out: &mut Outcome,
) {
    const KIND: EntityKind = EntityKind::User;
    // Lowercased e-mail → (the row kept, its document).
    let mut by_email: BTreeMap<String, (&Row, UserDoc)> = BTreeMap::new();
    for row in rows {
        let doc = match user(row) {
            Ok(doc) => doc,
            Err(e) => {
                out.failed.push((KIND, e));
                continue;
            }
        };
        let email = doc.user_id.clone();
        match by_email.remove(&email) {
            None => {
                by_email.insert(email, (row, doc));
            }
            Some((kept_row, kept)) => {
                let (winner, loser) = if signed_in_later(&doc, &kept) {
                    ((*row, doc), kept_row)
                } else {
                    ((kept_row, kept), *row)
                };
                out.skip(
                    KIND,
                    format!(
                        "{}: the same e-mail as {} in another case; the row that signed in last is kept",
                        source_of(TABLE, loser),
                        source_of(TABLE, winner.0)
                    ),
                );
                by_email.insert(email, winner);
            }
        }
    }

    let mut org_scopes: BTreeMap<String, BTreeSet<Scope>> = BTreeMap::new();
    for link in memberships {
        let (user, org) = link_ends(link, "userperm:", "UserId", "OrganizationId");
        let (Some(user), Some(org)) = (user, org) else {
            out.failed.push((
                KIND,
                RowError::new("Relationships", link, "no user or organization id"),
            ));
            continue;
        };
        match Scope::from_legacy_org_id(&org) {
            Ok(scope @ Scope::Org(_)) => {
                org_scopes
                    .entry(user.to_lowercase())
                    .or_default()
                    .insert(scope);
            }
            Ok(Scope::Global) | Err(_) => out.failed.push((
                KIND,
                RowError::new(
                    "Relationships",
                    link,
                    format!("organization id {org:?} is not a uuid"),
                ),
            )),
        }
    }
    let mut role_ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for link in role_links {
        let (user, role) = link_ends(link, "userrole:", "UserId", "RoleId");
        let source = source_of("Relationships", link);
        match (user.map(|u| u.to_lowercase()), role) {
            (Some(user), Some(_))
                if !by_email.contains_key(&user) && !org_scopes.contains_key(&user) =>
            {
                out.skip(
                    KIND,
                    format!("{source}: no user {user}; the role assignment is not migrated"),
                )
            }
            (Some(_), Some(role)) if !roles.contains(&role) => out.skip(
                KIND,
                format!("{source}: no role {role}; the role assignment is not migrated"),
            ),
            (Some(user), Some(role)) => {
                role_ids.entry(user).or_default().insert(role);
            }
            _ => out.failed.push((
                KIND,
                RowError::new("Relationships", link, "no user or role id"),
            )),
        }
    }

    let emails: BTreeSet<String> = by_email.keys().chain(org_scopes.keys()).cloned().collect();
    for email in emails {
        let scopes = org_scopes.remove(&email).unwrap_or_default();
        let roles = role_ids.remove(&email).unwrap_or_default();
        let with_links = |mut doc: UserDoc| {
            doc.org_scopes = scopes.into_iter().collect();
            doc.role_ids = roles.into_iter().collect();
            doc
        };
        let mapped = match by_email.remove(&email) {
            Some((row, doc)) => EntityDocument::new(TABLE, row, &KNOWN, &with_links(doc)),
            None => {
                let source = format!("Relationships userperm rows of {email}");
                membership_only(&email)
                    .and_then(|doc| EntityDocument::built(&with_links(doc), source.clone()))
                    .map_err(|reason| RowError {
                        table: "Relationships",
                        partition_key: Scope::GLOBAL.into(),
                        row_key: format!("userperm:{email}:…"),
                        reason,
                    })
            }
        };
        out.add(KIND, mapped);
    }
}

/// Keeps an administrator right the target grants and the source does not: admin rights can
/// be granted in the new system, and a rerun of the migration must not take them away (nor
/// rewrite the document on every run). Returns whether the mapped `body` was changed.
pub fn keep_granted_admin(
    body: &mut serde_json::Value,
    current: Option<&serde_json::Value>,
) -> bool {
    let granted = current.is_some_and(|c| c["isPlatformAdmin"] == true);
    if body["type"] != "user" || !granted || body["isPlatformAdmin"] == true {
        return false;
    }
    body["isPlatformAdmin"] = serde_json::Value::Bool(true);
    true
}

/// The row that signed in last (then: created last) is the one the person uses.
fn signed_in_later(a: &UserDoc, b: &UserDoc) -> bool {
    let key = |u: &UserDoc| (u.last_login, u.created_at);
    key(a) > key(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::entities::row::row;
    use serde_json::json;

    const ORG_A: &str = "0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01";
    const ORG_B: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

    fn user_row(key: &str, last_login: &str, admin: bool) -> Row {
        row(json!({
            "PartitionKey": "GLOBAL", "RowKey": format!("user:{key}"), "Email": key,
            "DisplayName": "Ada", "UserType": if admin { "PLATFORM" } else { "ORG" },
            "IsPlatformAdmin": admin, "IsActive": true, "CreatedAt": "2025-10-01T08:00:00",
            "LastLogin": last_login, "etag": "W/x"
        }))
    }

    fn link(key: String) -> Row {
        row(json!({"PartitionKey": "GLOBAL", "RowKey": key}))
    }

    #[test]
    fn an_admin_right_granted_in_the_target_is_never_revoked() {
        let mapped = json!({"type": "user", "id": "user-a@x.com", "isPlatformAdmin": false});
        let granted = json!({"type": "user", "id": "user-a@x.com", "isPlatformAdmin": true});
        let mut body = mapped.clone();
        assert!(keep_granted_admin(&mut body, Some(&granted)));
        assert_eq!(body["isPlatformAdmin"], true);
        for current in [None, Some(&mapped)] {
            let mut body = mapped.clone();
            assert!(!keep_granted_admin(&mut body, current));
            assert_eq!(body, mapped);
        }
        // Only users carry the flag.
        let mut role = json!({"type": "role", "isPlatformAdmin": false});
        assert!(!keep_granted_admin(&mut role, Some(&granted)));
        assert_eq!(role["isPlatformAdmin"], false);
    }

    #[test]
    fn one_document_per_lowercased_email_with_memberships_and_roles() {
        let rows = [
            user_row("Ada@Example.com", "2025-11-20T08:00:00", true),
            user_row("ada@example.com", "2025-11-01T08:00:00", false),
            row(
                json!({"PartitionKey": "GLOBAL", "RowKey": "user:bob@example.com", "IsActive": false,
                       "IsPlatformAdmin": false, "EntraUserId": "e1", "LastEntraIdSync": "2025-11-02T00:00:00"}),
            ),
        ];
        let memberships = [
            link(format!("userperm:ada@example.com:{ORG_B}")),
            row(
                json!({"PartitionKey": "GLOBAL", "RowKey": format!("userperm:Ada@Example.com:{ORG_A}"),
                       "UserId": "Ada@Example.com", "OrganizationId": ORG_A, "GrantedBy": "x", "GrantedAt": "y"}),
            ),
            link(format!("userperm:carol@example.com:{ORG_A}")),
            link("userperm:dave@example.com:not-an-org".into()),
        ];
        let role_links = [
            link("userrole:ADA@example.com:r1".into()),
            link("userrole:carol@example.com:r2".into()),
            link("userrole:ghost@example.com:r1".into()),
            link("userrole:bob@example.com:gone".into()),
        ];
        let roles: BTreeSet<String> = ["r1".to_owned(), "r2".to_owned()].into();
        let mut out = Outcome::default();
        users(
            &rows.iter().collect::<Vec<_>>(),
            &memberships.iter().collect::<Vec<_>>(),
            &role_links.iter().collect::<Vec<_>>(),
            &roles,
            &mut out,
        );
        let docs: BTreeMap<&str, &EntityDocument> =
            out.documents.iter().map(|d| (d.id.as_str(), d)).collect();
        assert_eq!(
            docs.keys().copied().collect::<Vec<_>>(),
            [
                "user-ada@example.com",
                "user-bob@example.com",
                "user-carol@example.com"
            ]
        );
        let ada = docs["user-ada@example.com"];
        assert_eq!(
            ada.body,
            json!({
                "id": "user-ada@example.com", "type": "user", "scope": "GLOBAL",
                "userId": "ada@example.com", "email": "ada@example.com", "displayName": "Ada",
                "userType": "PLATFORM", "isPlatformAdmin": true, "isActive": true,
                "createdAt": "2025-10-01T08:00:00.000000Z", "lastLogin": "2025-11-20T08:00:00.000000Z",
                "entraUserId": null, "lastEntraIdSync": null,
                "orgScopes": [format!("org-{ORG_A}"), format!("org-{ORG_B}")], "roleIds": ["r1"]
            })
        );
        assert!(
            ada.source.contains("user:Ada@Example.com"),
            "{}",
            ada.source
        );
        assert_eq!(ada.dropped, ["etag"]);
        let bob = docs["user-bob@example.com"];
        assert_eq!(bob.body["isActive"], false);
        assert_eq!(bob.body["entraUserId"], "e1");
        assert_eq!(bob.body["orgScopes"], json!([]));
        let carol = docs["user-carol@example.com"];
        assert_eq!(carol.body["orgScopes"], json!([format!("org-{ORG_A}")]));
        assert_eq!(carol.body["roleIds"], json!(["r2"]));
        assert_eq!(carol.body["isPlatformAdmin"], false);
        assert_eq!(carol.body["displayName"], json!(null));
        let skipped: Vec<&str> = out.skipped.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(skipped.len(), 3, "{skipped:?}");
        assert!(
            skipped[0].contains("\"user:ada@example.com\"") && skipped[0].contains("another case")
        );
        assert!(skipped[1].contains("no user ghost@example.com"));
        assert!(skipped[2].contains("no role gone"));
        assert_eq!(out.failed.len(), 1);
        assert!(out.failed[0].1.reason.contains("\"not-an-org\""));
    }

    #[test]
    fn emails_no_document_id_may_hold_are_refused() {
        let mut out = Outcome::default();
        let rows = [row(
            json!({"PartitionKey": "GLOBAL", "RowKey": "user:a#b@example.com"}),
        )];
        users(
            &rows.iter().collect::<Vec<_>>(),
            &[],
            &[],
            &BTreeSet::new(),
            &mut out,
        );
        assert!(out.documents.is_empty());
        assert!(out.failed[0].1.reason.contains("'#'"), "{:?}", out.failed);
    }
}
