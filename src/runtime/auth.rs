//! Who is calling, and which scope they may read.
//!
//! The caller is the EasyAuth principal in `X-MS-CLIENT-PRINCIPAL` (base64 JSON), which App
//! Service / Static Web Apps authentication sets after signing the user in and strips from
//! client requests. Both shapes are accepted: Static Web Apps' `{userId, userDetails, userRoles}`
//! and App Service's `{auth_typ, name_typ, role_typ, claims:[{typ, val}]}`.
//!
//! Unlike the legacy API there is no "any function key means admin" path: a request without a
//! valid principal is 401, always.
//!
//! What the caller may read comes from their user document (`entities`, `GLOBAL`,
//! `user-{userId}` or `user-{email}`, as the migration writes it from the legacy user row and
//! its memberships): `isPlatformAdmin` (or the `PlatformAdmin` role) reads every scope, anyone
//! else the organizations in `orgScopes`. A user document with `isActive: false` is refused
//! (403), roles or not; a member's organization whose document says `isActive: false` is
//! refused to members as the legacy refused it.

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use super::context::AppContext;
use super::http::{ApiError, HttpRequest, HttpResponse};
use super::operation::Parameter;
use crate::model::{ExecutionDoc, Scope, UserDoc};
use crate::store::Container;

pub const PRINCIPAL_HEADER: &str = "x-ms-client-principal";
pub const ORGANIZATION_HEADER: &str = "x-organization-id";
pub const PLATFORM_ADMIN_ROLE: &str = "PlatformAdmin";
/// A principal header larger than this is refused before decoding (EasyAuth's are ~1–4 KB).
const MAX_PRINCIPAL_BYTES: usize = 16 * 1024;

/// The authenticated caller and the one scope this request reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    /// Display name: the part of the e-mail before `@`, as the legacy API derived it.
    pub name: Option<String>,
    pub is_platform_admin: bool,
    /// The scope of this request: for admins `X-Organization-Id` (default `GLOBAL`), for members
    /// their organization.
    pub scope: Scope,
}

impl Caller {
    /// Whether this caller may read documents of `scope`. Admins may read any scope; everyone
    /// else only the scope of their organization.
    pub fn can_see(&self, scope: &Scope) -> bool {
        self.is_platform_admin || &self.scope == scope
    }
}

/// The identity EasyAuth asserted, before any store lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub user_details: Option<String>,
    pub roles: Vec<String>,
}

impl Principal {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }

    fn display_name(&self) -> Option<String> {
        let details = self.user_details.as_deref()?;
        Some(details.split('@').next().unwrap_or(details).to_owned())
    }
}

/// Static Web Apps' client principal.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SwaPrincipal {
    user_id: Option<String>,
    user_details: Option<String>,
    #[serde(default)]
    user_roles: Vec<String>,
}

/// App Service authentication's client principal.
#[derive(Deserialize)]
struct AppServicePrincipal {
    #[serde(default)]
    name_typ: Option<String>,
    #[serde(default)]
    role_typ: Option<String>,
    claims: Vec<Claim>,
}

#[derive(Deserialize)]
struct Claim {
    typ: String,
    val: String,
}

const OBJECT_ID_CLAIMS: [&str; 3] = [
    "http://schemas.microsoft.com/identity/claims/objectidentifier",
    "oid",
    "sub",
];
const DEFAULT_ROLE_CLAIMS: [&str; 2] = [
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
    "roles",
];
const DEFAULT_NAME_CLAIMS: [&str; 3] = [
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
    "preferred_username",
    "name",
];

/// Decodes the principal header. Pure, so every malformed shape is unit-tested.
pub fn parse_principal(header: &str) -> Result<Principal, ApiError> {
    let invalid =
        |why: &str| ApiError::unauthorized(format!("invalid X-MS-CLIENT-PRINCIPAL header: {why}"));
    let header = header.trim();
    if header.len() > MAX_PRINCIPAL_BYTES {
        return Err(invalid("too large"));
    }
    // Standard base64 as EasyAuth sends it; tolerate URL-safe and missing padding.
    let unpadded = header.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(unpadded)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(unpadded))
        .map_err(|_| invalid("not base64"))?;
    let json: Value = serde_json::from_slice(&bytes).map_err(|_| invalid("not JSON"))?;
    if !json.is_object() {
        return Err(invalid("not a JSON object"));
    }
    let principal = if json.get("claims").is_some() {
        let app: AppServicePrincipal =
            serde_json::from_value(json).map_err(|_| invalid("malformed claims"))?;
        let claim = |types: &[&str]| {
            app.claims
                .iter()
                .find(|c| types.iter().any(|t| c.typ.eq_ignore_ascii_case(t)))
                .map(|c| c.val.clone())
        };
        let role_types: Vec<&str> = match &app.role_typ {
            Some(t) => vec![t.as_str()],
            None => DEFAULT_ROLE_CLAIMS.to_vec(),
        };
        let name_types: Vec<&str> = match &app.name_typ {
            Some(t) => vec![t.as_str()],
            None => DEFAULT_NAME_CLAIMS.to_vec(),
        };
        Principal {
            user_id: claim(&OBJECT_ID_CLAIMS).unwrap_or_default(),
            user_details: claim(&name_types),
            roles: app
                .claims
                .iter()
                .filter(|c| role_types.iter().any(|t| c.typ.eq_ignore_ascii_case(t)))
                .map(|c| c.val.clone())
                .collect(),
        }
    } else {
        let swa: SwaPrincipal =
            serde_json::from_value(json).map_err(|_| invalid("malformed principal"))?;
        let user_details = swa.user_details.filter(|d| !d.is_empty());
        Principal {
            // The legacy API fell back to userDetails when userId is missing.
            user_id: swa
                .user_id
                .filter(|id| !id.is_empty())
                .or_else(|| user_details.clone())
                .unwrap_or_default(),
            user_details,
            roles: swa.user_roles,
        }
    };
    let valid_id = !principal.user_id.is_empty()
        && principal.user_id.len() <= 256
        && !principal.user_id.chars().any(char::is_control);
    if !valid_id {
        return Err(invalid("no user id"));
    }
    Ok(principal)
}

/// Identifies the caller and the scope of this request, or answers 401/403 JSON.
pub async fn authenticate(ctx: &AppContext, request: &HttpRequest) -> Result<Caller, HttpResponse> {
    resolve_caller(ctx, request)
        .await
        .map_err(HttpResponse::from)
}

/// As `authenticate`, with the error still typed (for handlers that return `ApiError`).
pub async fn resolve_caller(ctx: &AppContext, request: &HttpRequest) -> Result<Caller, ApiError> {
    let header = request.header(PRINCIPAL_HEADER).ok_or_else(|| {
        ApiError::unauthorized("authentication required: no X-MS-CLIENT-PRINCIPAL header")
    })?;
    let principal = parse_principal(header)?;
    let requested = match request.header(ORGANIZATION_HEADER).map(str::trim) {
        None | Some("") => None,
        Some(raw) => Some(Scope::from_legacy_org_id(raw).map_err(|_| {
            ApiError::bad_request(format!(
                "X-Organization-Id must be an organization uuid or GLOBAL, got {:?}",
                raw.chars().take(64).collect::<String>()
            ))
        })?),
    };

    // Even an admin by role is looked up: a deactivated account reads nothing.
    let user = find_user(ctx, &principal).await?;
    if user.as_ref().is_some_and(|u| !u.is_active()) {
        return Err(ApiError::forbidden("your account is deactivated"));
    }
    let is_admin = principal.has_role(PLATFORM_ADMIN_ROLE)
        || user.as_ref().is_some_and(|u| u.is_platform_admin);
    let name = principal.display_name();
    if is_admin {
        return Ok(Caller {
            user_id: principal.user_id,
            name,
            is_platform_admin: true,
            scope: requested.unwrap_or(Scope::Global),
        });
    }

    let orgs: Vec<Scope> = user
        .map(|u| u.org_scopes)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| !s.is_global())
        .collect();
    let scope = match requested {
        // A member may pick among their own organizations, never another one.
        Some(scope) if orgs.contains(&scope) => {
            if !organization_active(ctx, &scope).await? {
                return Err(ApiError::forbidden(format!(
                    "organization {} is deactivated",
                    scope.legacy_org_id()
                )));
            }
            scope
        }
        Some(_) => {
            return Err(ApiError::forbidden(
                "X-Organization-Id names an organization you are not a member of",
            ))
        }
        None => first_active(ctx, orgs).await?.ok_or_else(|| {
            ApiError::forbidden("you are not a member of any active organization")
        })?,
    };
    Ok(Caller {
        user_id: principal.user_id,
        name,
        is_platform_admin: false,
        scope,
    })
}

/// The first of `orgs` that is not deactivated.
async fn first_active(ctx: &AppContext, orgs: Vec<Scope>) -> Result<Option<Scope>, ApiError> {
    for org in orgs {
        if organization_active(ctx, &org).await? {
            return Ok(Some(org));
        }
    }
    Ok(None)
}

/// Whether the organization may be used: only its document's `isActive: false` says no (an
/// organization without a document is one the store was given memberships for by hand).
async fn organization_active(ctx: &AppContext, org: &Scope) -> Result<bool, ApiError> {
    let stored = ctx
        .store
        .read(Container::Entities, Scope::GLOBAL, &org.to_string())
        .await?;
    Ok(stored.is_none_or(|doc| doc.body["isActive"] != Value::Bool(false)))
}

/// The user document: by user id, then by e-mail (the migrated users are keyed by their
/// lowercased e-mail).
async fn find_user(ctx: &AppContext, principal: &Principal) -> Result<Option<UserDoc>, ApiError> {
    let mut keys = vec![UserDoc::id_for(&principal.user_id)];
    if let Some(email) = principal
        .user_details
        .as_deref()
        .filter(|d| d.contains('@'))
    {
        keys.push(UserDoc::id_for(email));
    }
    for id in keys {
        let Some(doc) = ctx
            .store
            .read(Container::Entities, Scope::GLOBAL, &id)
            .await?
        else {
            continue;
        };
        match serde_json::from_value::<UserDoc>(doc.body) {
            Ok(user) => return Ok(Some(user)),
            Err(e) => {
                // A broken user document must not grant anything; say why in the log.
                tracing::error!(%id, error = %e, "unreadable user document");
                return Err(ApiError::new(500, "user record is unreadable"));
            }
        }
    }
    Ok(None)
}

/// Longest execution id a route accepts.
pub const MAX_ID_CHARS: usize = 128;

/// An execution id from the route: non-empty, at most `MAX_ID_CHARS`, and only characters a
/// Cosmos id may hold that ids in practice use (uuids, `exec-…`).
pub fn execution_id_param(raw: Option<&str>) -> Result<&str, ApiError> {
    let id = raw.unwrap_or_default();
    if id.is_empty() {
        return Err(ApiError::bad_request("execution id is missing"));
    }
    if id.chars().count() > MAX_ID_CHARS {
        return Err(ApiError::bad_request(format!(
            "execution id is longer than {MAX_ID_CHARS} characters"
        )));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return Err(ApiError::bad_request(
            "execution id may only contain letters, digits, '-', '_', '.' and ':'",
        ));
    }
    Ok(id)
}

/// The `{id}` route parameter `execution_id_param` reads, as the API document describes it.
pub fn execution_id_parameter() -> Parameter {
    Parameter::path(
        "id",
        "The execution id (letters, digits, '-', '_', '.', ':'; at most 128 characters).",
    )
}

/// The execution with this id in the caller's scope. Another scope's execution is "not found",
/// never "forbidden", so ids cannot be probed.
pub async fn find_execution(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
) -> Result<ExecutionDoc, ApiError> {
    let not_found = || ApiError::not_found(format!("execution {id} not found"));
    let stored = ctx
        .store
        .read(Container::Executions, &caller.scope.to_string(), id)
        .await?
        .ok_or_else(not_found)?;
    let doc: ExecutionDoc = serde_json::from_value(stored.body).map_err(|e| {
        tracing::error!(%id, error = %e, "unreadable execution document");
        ApiError::new(
            500,
            format!("execution {id} is stored in an unreadable form"),
        )
    })?;
    if !caller.can_see(&doc.scope) {
        return Err(not_found());
    }
    Ok(doc)
}

/// The common start of every per-execution route: who asks, and the execution named by the
/// route's `{id}` if the caller may see it.
pub async fn visible_execution(
    ctx: &AppContext,
    request: &HttpRequest,
) -> Result<(Caller, ExecutionDoc), ApiError> {
    let caller = resolve_caller(ctx, request).await?;
    let id = execution_id_param(request.params.get("id").map(String::as_str))?;
    let execution = find_execution(ctx, &caller, id).await?;
    Ok((caller, execution))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn encode(value: &Value) -> String {
        base64::engine::general_purpose::STANDARD.encode(value.to_string())
    }

    #[test]
    fn static_web_apps_principal() {
        let p = parse_principal(&encode(&json!({
            "identityProvider": "aad", "userId": "d75b260a64504067bfc5b2905e3b8182",
            "userDetails": "jack@contoso.com", "userRoles": ["anonymous", "authenticated", "PlatformAdmin"]
        })))
        .unwrap();
        assert_eq!(p.user_id, "d75b260a64504067bfc5b2905e3b8182");
        assert!(p.has_role("PlatformAdmin"));
        assert_eq!(p.display_name().as_deref(), Some("jack"));
    }

    #[test]
    fn app_service_principal_with_claims() {
        let p = parse_principal(&encode(&json!({
            "auth_typ": "aad",
            "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
            "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
            "claims": [
                {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": "0c9e2f6a-1111-2222-3333-444455556666"},
                {"typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "val": "ada@contoso.com"},
                {"typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role", "val": "Reader"}
            ]
        })))
        .unwrap();
        assert_eq!(p.user_id, "0c9e2f6a-1111-2222-3333-444455556666");
        assert_eq!(p.roles, vec!["Reader"]);
        assert!(!p.has_role(PLATFORM_ADMIN_ROLE));
    }

    #[test]
    fn user_details_stand_in_for_a_missing_user_id() {
        let p = parse_principal(&encode(&json!({"userDetails": "dev@local"}))).unwrap();
        assert_eq!(p.user_id, "dev@local");
    }

    #[test]
    fn malformed_principals_are_401() {
        for bad in [
            "%%%".to_owned(),
            base64::engine::general_purpose::STANDARD.encode("not json"),
            encode(&json!([1, 2])),
            encode(&json!({"userRoles": ["PlatformAdmin"]})),
            encode(&json!({"userId": 42})),
            encode(&json!({"claims": "nope"})),
            encode(&json!({"userId": "a\u{0}b"})),
            "A".repeat(MAX_PRINCIPAL_BYTES + 4),
        ] {
            let err = parse_principal(&bad).unwrap_err();
            assert_eq!(err.status, 401, "{bad:.40}");
        }
    }

    #[test]
    fn admins_see_every_scope_members_only_their_own() {
        let org = Scope::parse("org-0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01").unwrap();
        let member = Caller {
            user_id: "u".into(),
            name: None,
            is_platform_admin: false,
            scope: org.clone(),
        };
        assert!(member.can_see(&org));
        assert!(!member.can_see(&Scope::Global));
        let admin = Caller {
            is_platform_admin: true,
            scope: Scope::Global,
            ..member
        };
        assert!(admin.can_see(&org));
    }

    #[test]
    fn execution_ids_are_bounded_and_plain() {
        assert!(execution_id_param(Some("0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01")).is_ok());
        for bad in [
            None,
            Some(""),
            Some("a'; DROP TABLE documents; --"),
            Some("../etc/passwd"),
            Some("id with spaces"),
        ] {
            assert_eq!(execution_id_param(bad).unwrap_err().status, 400, "{bad:?}");
        }
        assert!(execution_id_param(Some(&"a".repeat(MAX_ID_CHARS + 1))).is_err());
    }

    /// The user documents decide: admin by flag, members by `orgScopes`, deactivated users and
    /// organizations refused, membership-only documents still honoured.
    #[tokio::test]
    async fn user_documents_decide_what_a_caller_reads() {
        use crate::store::{sqlite::SqliteStore, Store};
        use std::sync::Arc;
        let (org_a, org_b) = (
            "0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01",
            "7c9e6679-7425-40de-944b-e07fc1f90ae7",
        );
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(crate::clock::SystemClock);
        let store = Arc::new(SqliteStore::open(&dir.path().join("a.db"), clock.clone()).unwrap());
        let user = |email: &str, admin: bool, active: Option<bool>, orgs: &[&str]| {
            json!({"id": format!("user-{email}"), "type": "user", "scope": "GLOBAL", "userId": email,
                   "email": email, "isPlatformAdmin": admin, "isActive": active,
                   "orgScopes": orgs.iter().map(|o| format!("org-{o}")).collect::<Vec<_>>(), "roleIds": []})
        };
        for doc in [
            user("admin@x.com", true, Some(true), &[]),
            user("ada@x.com", false, Some(true), &[org_b, org_a]),
            user("gone@x.com", true, Some(false), &[org_a]),
            // Written before users were migrated: no isActive, no roleIds.
            json!({"id": "user-5eed", "type": "user", "scope": "GLOBAL", "userId": "5eed",
                   "orgScopes": [format!("org-{org_a}")]}),
            json!({"id": format!("org-{org_b}"), "type": "organization", "scope": "GLOBAL",
                   "orgId": org_b, "isActive": false}),
            json!({"id": format!("org-{org_a}"), "type": "organization", "scope": "GLOBAL",
                   "orgId": org_a, "isActive": true}),
        ] {
            store.upsert(Container::Entities, doc, None).await.unwrap();
        }
        let ctx = AppContext::standalone(store, clock, dir.path());
        let ask = |user_id: &str, email: &str, roles: &[&str], org: Option<&str>| {
            let mut request = HttpRequest::default();
            let principal = json!({"userId": user_id, "userDetails": email, "userRoles": roles});
            request
                .headers
                .insert(PRINCIPAL_HEADER.into(), vec![encode(&principal)]);
            if let Some(org) = org {
                request
                    .headers
                    .insert(ORGANIZATION_HEADER.into(), vec![org.to_owned()]);
            }
            let ctx = ctx.clone();
            async move { resolve_caller(&ctx, &request).await }
        };
        let admin = ask("swa1", "admin@x.com", &[], Some(org_b)).await.unwrap();
        assert!(admin.is_platform_admin);
        assert_eq!(admin.scope.legacy_org_id(), org_b);
        // Ada's first organization is deactivated: she lands in the active one.
        let ada = ask("swa2", "Ada@X.com", &[], None).await.unwrap();
        assert!(!ada.is_platform_admin);
        assert_eq!(ada.scope.legacy_org_id(), org_a);
        let refused = ask("swa2", "ada@x.com", &[], Some(org_b))
            .await
            .unwrap_err();
        assert_eq!(refused.status, 403);
        assert!(
            refused.message.contains("deactivated"),
            "{}",
            refused.message
        );
        // Deactivated: refused whatever the flag or the principal's roles say.
        for roles in [&[][..], &[PLATFORM_ADMIN_ROLE][..]] {
            let gone = ask("swa3", "gone@x.com", roles, None).await.unwrap_err();
            assert_eq!(
                (gone.status, gone.message.as_str()),
                (403, "your account is deactivated")
            );
        }
        let old = ask("5eed", "someone@x.com", &[], None).await.unwrap();
        assert_eq!(old.scope.legacy_org_id(), org_a);
        let stranger = ask("swa4", "nobody@x.com", &[], None).await.unwrap_err();
        assert_eq!(stranger.status, 403);
        let by_role = ask("swa5", "nobody@x.com", &[PLATFORM_ADMIN_ROLE], None)
            .await
            .unwrap();
        assert!(by_role.is_platform_admin);
    }
}
