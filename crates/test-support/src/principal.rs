//! The `X-MS-CLIENT-PRINCIPAL` header EasyAuth (App Service / Static Web Apps authentication)
//! puts on a signed-in user's requests: base64 of the Static Web Apps principal JSON.

use base64::Engine;
use serde_json::json;

/// The header's name.
pub const HEADER: &str = "x-ms-client-principal";
/// The role that makes a caller a platform administrator.
pub const ADMIN_ROLE: &str = "PlatformAdmin";

/// A signed-in user, as EasyAuth would assert them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    /// `userDetails`: the e-mail (its part before `@` is the display name).
    pub email: String,
    /// `userRoles`, beyond the `anonymous` and `authenticated` every signed-in user has.
    pub roles: Vec<String>,
}

impl Principal {
    /// A user with no extra role (`user_id@example.com`).
    pub fn member(user_id: &str) -> Principal {
        Principal {
            user_id: user_id.to_owned(),
            email: format!("{user_id}@example.com"),
            roles: Vec::new(),
        }
    }

    /// A platform administrator (`user_id@example.com`).
    pub fn admin(user_id: &str) -> Principal {
        Principal::member(user_id).with_role(ADMIN_ROLE)
    }

    pub fn with_email(mut self, email: &str) -> Principal {
        email.clone_into(&mut self.email);
        self
    }

    pub fn with_role(mut self, role: &str) -> Principal {
        self.roles.push(role.to_owned());
        self
    }

    /// The header value.
    pub fn encode(&self) -> String {
        let roles: Vec<&str> = ["anonymous", "authenticated"]
            .into_iter()
            .chain(self.roles.iter().map(String::as_str))
            .collect();
        let body = json!({
            "identityProvider": "aad", "userId": self.user_id, "userDetails": self.email,
            "userRoles": roles,
        });
        base64::engine::general_purpose::STANDARD.encode(body.to_string())
    }
}

/// The header value of a member `user_id`.
pub fn member(user_id: &str) -> String {
    Principal::member(user_id).encode()
}

/// The header value of a platform administrator `user_id`.
pub fn admin(user_id: &str) -> String {
    Principal::admin(user_id).encode()
}
