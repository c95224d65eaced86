//! Dev sign-in (serve only, `--auth dev`): the console's identity switch. The chosen identity
//! lives in a cookie; a layer turns it into the `X-MS-CLIENT-PRINCIPAL` header EasyAuth would
//! set, so every API route, negotiate and subscribe see an ordinary principal and authorize it
//! with the same code as in Azure. A request that already carries a principal is left alone,
//! and with `--auth proxy` (real authentication in front) none of this exists.
//!
//! A member identity is backed by a real membership document (`user-dev-member-{org}`), written
//! on first use, because members are authorized from the store, never from the header alone.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::model::{EntityKind, Scope, UserDoc};
use crate::runtime::auth::{PLATFORM_ADMIN_ROLE, PRINCIPAL_HEADER};
use crate::runtime::AppContext;
use crate::store::Container;

pub const COOKIE: &str = "bifrost_dev_identity";
const ADMIN_USER: &str = "dev-admin";
const MEMBER_USER_PREFIX: &str = "dev-member-";

/// Who the console signs in as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevIdentity {
    /// Signed out on purpose: requests carry no principal (401).
    None,
    PlatformAdmin,
    /// A member of exactly this organization.
    Member(Uuid),
}

impl DevIdentity {
    pub fn cookie_value(&self) -> String {
        match self {
            DevIdentity::None => "none".to_owned(),
            DevIdentity::PlatformAdmin => "admin".to_owned(),
            DevIdentity::Member(org) => format!("member.{org}"),
        }
    }

    pub fn parse_cookie_value(raw: &str) -> Option<Self> {
        match raw {
            "none" => Some(DevIdentity::None),
            "admin" => Some(DevIdentity::PlatformAdmin),
            other => {
                let org = other.strip_prefix("member.")?;
                Uuid::try_parse(org).ok().map(DevIdentity::Member)
            }
        }
    }

    /// The identity named by the request's cookie, if it has one.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|cookies| cookies.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .and_then(|(_, value)| Self::parse_cookie_value(value.trim()))
    }

    fn user_id(&self) -> Option<String> {
        match self {
            DevIdentity::None => None,
            DevIdentity::PlatformAdmin => Some(ADMIN_USER.to_owned()),
            DevIdentity::Member(org) => Some(format!("{MEMBER_USER_PREFIX}{org}")),
        }
    }

    /// The Static Web Apps client principal EasyAuth would send for this identity.
    pub fn principal(&self) -> Option<String> {
        let user_id = self.user_id()?;
        let roles: &[&str] = match self {
            DevIdentity::PlatformAdmin => &["anonymous", "authenticated", PLATFORM_ADMIN_ROLE],
            _ => &["anonymous", "authenticated"],
        };
        let principal = json!({
            "identityProvider": "dev",
            "userId": user_id,
            "userDetails": format!("{user_id}@bifrost.local"),
            "userRoles": roles,
        });
        Some(base64::engine::general_purpose::STANDARD.encode(principal.to_string()))
    }

    /// `Set-Cookie` for this identity: the session's whole life, never sent cross-site.
    pub fn set_cookie(&self) -> HeaderValue {
        let cookie = format!(
            "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000",
            self.cookie_value()
        );
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    fn describe(&self) -> SessionIdentity {
        match self {
            DevIdentity::None => SessionIdentity {
                kind: "none",
                org: None,
                user_id: None,
            },
            DevIdentity::PlatformAdmin => SessionIdentity {
                kind: "admin",
                org: None,
                user_id: self.user_id(),
            },
            DevIdentity::Member(org) => SessionIdentity {
                kind: "member",
                org: Some(org.to_string()),
                user_id: self.user_id(),
            },
        }
    }
}

/// The dev sign-in of one serve process: the identity a new browser starts with, and the
/// organizations whose member document already exists.
#[derive(Debug, Clone)]
pub struct DevSignIn {
    pub initial: DevIdentity,
    ctx: AppContext,
    members_written: Arc<Mutex<HashSet<Uuid>>>,
}

impl DevSignIn {
    pub fn new(ctx: AppContext, initial: DevIdentity) -> Self {
        DevSignIn {
            initial,
            ctx,
            members_written: Arc::default(),
        }
    }

    /// What an identity needs before a request may carry it, or the 503 to answer instead.
    async fn ensure_identity(&self, identity: DevIdentity) -> Result<(), Response> {
        let DevIdentity::Member(org) = identity else {
            return Ok(());
        };
        self.ensure_member(org).await.map_err(|reason| {
            tracing::warn!(%reason, %org, "writing the dev member's membership failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "dev sign-in could not record the member's organization; retry shortly",
            )
        })
    }

    /// Makes sure a member identity has its membership document (once per organization and
    /// process; an upsert, so a restart or a second process changes nothing).
    async fn ensure_member(&self, org: Uuid) -> Result<(), String> {
        let known = self
            .members_written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&org);
        if known {
            return Ok(());
        }
        let user_id = format!("{MEMBER_USER_PREFIX}{org}");
        let doc = UserDoc {
            id: UserDoc::id_for(&user_id),
            doc_type: EntityKind::User,
            scope: Scope::Global,
            email: Some(format!("{user_id}@bifrost.local")),
            display_name: None,
            user_type: Some("ORG".to_owned()),
            is_platform_admin: false,
            is_active: Some(true),
            created_at: None,
            last_login: None,
            entra_user_id: None,
            last_entra_id_sync: None,
            org_scopes: vec![Scope::Org(org)],
            role_ids: Vec::new(),
            user_id,
        };
        let body = serde_json::to_value(&doc).map_err(|e| e.to_string())?;
        self.ctx
            .store
            .upsert(Container::Entities, body, None)
            .await
            .map_err(|e| e.to_string())?;
        self.members_written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(org);
        Ok(())
    }
}

/// The layer: a request without a principal but with a dev identity cookie gets the principal.
pub async fn layer(State(dev): State<DevSignIn>, mut request: Request, next: Next) -> Response {
    if request.headers().contains_key(PRINCIPAL_HEADER) {
        return next.run(request).await;
    }
    let Some(identity) = DevIdentity::from_headers(request.headers()) else {
        return next.run(request).await;
    };
    if let Err(refused) = dev.ensure_identity(identity).await {
        return refused;
    }
    if let Some(principal) = identity
        .principal()
        .and_then(|p| HeaderValue::from_str(&p).ok())
    {
        request.headers_mut().insert(PRINCIPAL_HEADER, principal);
    }
    next.run(request).await
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionIdentity {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    org: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
}

/// `GET /console/session`: whether dev sign-in is on, who the browser is, and organizations
/// worth offering (those with metrics).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    dev_sign_in: bool,
    identity: Option<SessionIdentity>,
    organizations: Vec<String>,
}

async fn organizations(ctx: &AppContext) -> Vec<String> {
    match crate::metrics::known_scopes(ctx.store.as_ref()).await {
        Ok(scopes) => scopes
            .into_iter()
            .filter(|s| !s.is_global())
            .map(|s| s.legacy_org_id())
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "listing organizations for the console failed");
            Vec::new()
        }
    }
}

/// The session of a request: its cookie's identity, else the initial one (which `GET /` sets).
pub async fn session(dev: Option<&DevSignIn>, ctx: &AppContext, headers: &HeaderMap) -> Session {
    match dev {
        None => Session {
            dev_sign_in: false,
            identity: None,
            organizations: organizations(ctx).await,
        },
        Some(dev) => Session {
            dev_sign_in: true,
            identity: Some(
                DevIdentity::from_headers(headers)
                    .unwrap_or(dev.initial)
                    .describe(),
            ),
            organizations: organizations(ctx).await,
        },
    }
}

/// The body of `POST /console/session`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignInRequest {
    /// `admin`, `member` or `none`.
    identity: String,
    /// For `member`: the organization's uuid.
    #[serde(default)]
    org: Option<String>,
}

/// The identity a sign-in body asks for, or the message saying what is wrong with it.
pub fn parse_sign_in(body: &[u8]) -> Result<DevIdentity, String> {
    let request: SignInRequest = serde_json::from_slice(body).map_err(|e| {
        format!(
            "body must be {{\"identity\": \"admin\" | \"member\" | \"none\", \"org\": uuid}}: {e}"
        )
    })?;
    match (
        request.identity.as_str(),
        request.org.as_deref().map(str::trim),
    ) {
        ("admin", None) => Ok(DevIdentity::PlatformAdmin),
        ("none", None) => Ok(DevIdentity::None),
        ("member", Some(org)) => Uuid::try_parse(org).map(DevIdentity::Member).map_err(|_| {
            format!(
                "org must be an organization uuid, got {:?}",
                org.chars().take(64).collect::<String>()
            )
        }),
        ("member", None) => Err("a member needs an org (the organization's uuid)".to_owned()),
        ("admin" | "none", Some(_)) => Err("org is only for identity \"member\"".to_owned()),
        (other, _) => Err(format!(
            "identity must be \"admin\", \"member\" or \"none\", got {:?}",
            other.chars().take(32).collect::<String>()
        )),
    }
}

/// `POST /console/session`: switch identity (sets the cookie).
pub async fn sign_in(dev: Option<&DevSignIn>, ctx: &AppContext, body: &[u8]) -> Response {
    let Some(dev) = dev else {
        return error(
            StatusCode::NOT_FOUND,
            "dev sign-in is off: serve runs with --auth proxy, behind real authentication",
        );
    };
    let identity = match parse_sign_in(body) {
        Ok(identity) => identity,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    if let Err(refused) = dev.ensure_identity(identity).await {
        return refused;
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        header::COOKIE,
        HeaderValue::from_str(&format!("{COOKIE}={}", identity.cookie_value()))
            .unwrap_or_else(|_| HeaderValue::from_static("")),
    );
    let body = session(Some(dev), ctx, &headers).await;
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, identity.set_cookie());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::auth::parse_principal;

    #[test]
    fn identities_round_trip_through_the_cookie() {
        let org = Uuid::parse_str("0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01").unwrap();
        for identity in [
            DevIdentity::None,
            DevIdentity::PlatformAdmin,
            DevIdentity::Member(org),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::COOKIE,
                HeaderValue::from_str(&format!("a=b; {COOKIE}={}; c=d", identity.cookie_value()))
                    .unwrap(),
            );
            assert_eq!(DevIdentity::from_headers(&headers), Some(identity));
        }
        for bad in ["member.nope", "root", ""] {
            assert_eq!(DevIdentity::parse_cookie_value(bad), None, "{bad}");
        }
        assert_eq!(DevIdentity::from_headers(&HeaderMap::new()), None);
    }

    #[test]
    fn principals_are_what_easyauth_would_send() {
        let admin = parse_principal(&DevIdentity::PlatformAdmin.principal().unwrap()).unwrap();
        assert!(admin.has_role(PLATFORM_ADMIN_ROLE));
        let org = Uuid::new_v4();
        let member = parse_principal(&DevIdentity::Member(org).principal().unwrap()).unwrap();
        assert!(!member.has_role(PLATFORM_ADMIN_ROLE));
        assert_eq!(member.user_id, format!("dev-member-{org}"));
        assert!(DevIdentity::None.principal().is_none());
        let cookie = DevIdentity::PlatformAdmin.set_cookie();
        let cookie = cookie.to_str().unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    }

    #[test]
    fn sign_in_bodies_are_checked() {
        let org = "0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01";
        assert_eq!(
            parse_sign_in(br#"{"identity":"admin"}"#),
            Ok(DevIdentity::PlatformAdmin)
        );
        assert_eq!(
            parse_sign_in(format!(r#"{{"identity":"member","org":"{org}"}}"#).as_bytes()),
            Ok(DevIdentity::Member(Uuid::parse_str(org).unwrap()))
        );
        for bad in [
            &br#"{"identity":"member"}"#[..],
            br#"{"identity":"member","org":"GLOBAL"}"#,
            br#"{"identity":"root"}"#,
            br#"{"identity":"admin","org":"x"}"#,
            br#"{"identity":"admin","extra":1}"#,
            b"{",
        ] {
            assert!(
                parse_sign_in(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
