//! SHIM of main's `api::auth` (same signatures): the EasyAuth principal (`X-MS-CLIENT-PRINCIPAL`,
//! Static Web Apps shape) and the caller's scope from its membership document.

use base64::Engine;
use serde::Deserialize;

use crate::functions::AppContext;
use crate::host::protocol::{HttpRequest, HttpResponse};
use crate::model::{MembershipDoc, Scope};
use crate::store::Container;

pub const PRINCIPAL_HEADER: &str = "x-ms-client-principal";
pub const ORGANIZATION_HEADER: &str = "x-organization-id";
pub const PLATFORM_ADMIN_ROLE: &str = "PlatformAdmin";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub name: Option<String>,
    pub is_platform_admin: bool,
    pub scope: Scope,
}

impl Caller {
    pub fn can_see(&self, scope: &Scope) -> bool {
        self.is_platform_admin || &self.scope == scope
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SwaPrincipal {
    user_id: Option<String>,
    user_details: Option<String>,
    #[serde(default)]
    user_roles: Vec<String>,
}

pub async fn authenticate(ctx: &AppContext, request: &HttpRequest) -> Result<Caller, HttpResponse> {
    let header = request.header(PRINCIPAL_HEADER).ok_or_else(|| {
        HttpResponse::error(
            401,
            "authentication required: no X-MS-CLIENT-PRINCIPAL header",
        )
    })?;
    let invalid = || HttpResponse::error(401, "invalid X-MS-CLIENT-PRINCIPAL header");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(header.trim())
        .map_err(|_| invalid())?;
    let principal: SwaPrincipal = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let user_id = principal
        .user_id
        .filter(|id| !id.is_empty())
        .ok_or_else(invalid)?;
    let requested = match request.header(ORGANIZATION_HEADER) {
        None | Some("") => None,
        Some(raw) => Some(
            Scope::from_legacy_org_id(raw)
                .map_err(|_| HttpResponse::error(400, "bad X-Organization-Id"))?,
        ),
    };
    let name = principal
        .user_details
        .as_deref()
        .map(|d| d.split('@').next().unwrap_or(d).to_owned());
    if principal
        .user_roles
        .iter()
        .any(|r| r.eq_ignore_ascii_case(PLATFORM_ADMIN_ROLE))
    {
        return Ok(Caller {
            user_id,
            name,
            is_platform_admin: true,
            scope: requested.unwrap_or(Scope::Global),
        });
    }
    let membership = ctx
        .store
        .read(
            Container::Entities,
            Scope::GLOBAL,
            &MembershipDoc::id_for(&user_id),
        )
        .await
        .map_err(|e| HttpResponse::error(503, e.to_string()))?
        .and_then(|doc| serde_json::from_value::<MembershipDoc>(doc.body).ok());
    let orgs: Vec<Scope> = membership.map(|m| m.org_scopes).unwrap_or_default();
    let scope = match requested {
        Some(scope) if orgs.contains(&scope) => scope,
        Some(_) => {
            return Err(HttpResponse::error(
                403,
                "not a member of that organization",
            ))
        }
        None => orgs
            .into_iter()
            .next()
            .ok_or_else(|| HttpResponse::error(403, "you are not a member of any organization"))?,
    };
    Ok(Caller {
        user_id,
        name,
        is_platform_admin: false,
        scope,
    })
}
