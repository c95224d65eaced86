//! HS256 JSON Web Tokens as Azure SignalR Service uses them: signed with the UTF-8 bytes of the
//! AccessKey (not base64-decoded), `aud` = the URL being called, `exp` in epoch seconds, and for a
//! client the user id in `nameid`. Signing and verification are `jsonwebtoken`'s; this module
//! only states the service's rules to it (HS256 only, `exp` and `aud` required, no leeway).

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Lifetime of the tokens we mint (the service SDK's default is one hour).
pub const TOKEN_LIFETIME_SECONDS: i64 = 3600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub aud: String,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// The user id: the service binds a client connection to it, and `/users/{user}` calls
    /// (user sends, user groups) reach that user's connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nameid: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("token is malformed")]
    Malformed,
    #[error("token is not signed with HS256")]
    WrongAlgorithm,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("the audience is invalid")]
    WrongAudience,
    #[error("token cannot be signed: {0}")]
    Signing(String),
}

pub fn sign(claims: &Claims, access_key: &str) -> Result<String, JwtError> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(access_key.as_bytes()),
    )
    .map_err(|e| JwtError::Signing(e.to_string()))
}

/// A token for `audience` valid from `now` (epoch seconds) for `TOKEN_LIFETIME_SECONDS`.
pub fn token_for(
    audience: &str,
    user_id: Option<&str>,
    access_key: &str,
    now: i64,
) -> Result<String, JwtError> {
    sign(
        &Claims {
            aud: audience.to_owned(),
            exp: now + TOKEN_LIFETIME_SECONDS,
            iat: Some(now),
            nameid: user_id.map(str::to_owned),
        },
        access_key,
    )
}

/// Checks the signature, that the token has not expired (system clock, no leeway) and that
/// `aud` is one of `audiences`.
pub fn verify(token: &str, access_key: &str, audiences: &[&str]) -> Result<Claims, JwtError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.set_audience(audiences);
    validation.set_required_spec_claims(&["exp", "aud"]);
    jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(access_key.as_bytes()),
        &validation,
    )
    .map(|data| data.claims)
    .map_err(|e| match e.kind() {
        ErrorKind::InvalidSignature => JwtError::BadSignature,
        ErrorKind::InvalidAlgorithm => JwtError::WrongAlgorithm,
        ErrorKind::ExpiredSignature => JwtError::Expired,
        ErrorKind::InvalidAudience => JwtError::WrongAudience,
        _ => JwtError::Malformed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    #[test]
    fn a_token_signed_elsewhere_verifies_and_ours_round_trip() {
        // Signed with Python's hmac over `{"alg":"HS256","typ":"JWT"}.{"aud":…,"exp":…,"nameid":"u1"}`
        // with the key "secret" (its UTF-8 bytes), exp in 2100.
        let independent = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJodHRwOi8veC8iLCJleHAiOjQxMDI0NDQ4MDAsIm5hbWVpZCI6InUxIn0.wFLqrvO2t6xqHHj8iMJoB1Vojzx4rTtUCrPQBI3EhJk";
        let claims = verify(independent, "secret", &["http://x/"]).unwrap();
        assert_eq!(claims.nameid.as_deref(), Some("u1"));
        assert_eq!(claims.exp, 4102444800);

        let token = token_for("http://h/client/?hub=b", Some("u1"), KEY, now()).unwrap();
        let claims = verify(&token, KEY, &["http://h/client/?hub=b"]).unwrap();
        assert_eq!(claims.nameid.as_deref(), Some("u1"));
    }

    #[test]
    fn every_rule_is_checked() {
        let audience = "http://h/client/?hub=b";
        let token = token_for(audience, Some("u1"), KEY, now()).unwrap();
        assert_eq!(
            verify(&token, "other", &[audience]),
            Err(JwtError::BadSignature)
        );
        assert_eq!(
            verify(&token, KEY, &["http://h/api"]),
            Err(JwtError::WrongAudience)
        );
        let expired = token_for(audience, None, KEY, now() - TOKEN_LIFETIME_SECONDS - 1).unwrap();
        assert_eq!(verify(&expired, KEY, &[audience]), Err(JwtError::Expired));
        assert_eq!(verify("a.b", KEY, &[audience]), Err(JwtError::Malformed));
        let mut tampered = token.clone();
        tampered.insert(40, 'x');
        assert!(verify(&tampered, KEY, &[audience]).is_err());

        // `alg: none` and another algorithm are refused, whatever the payload says.
        let payload = token.split('.').nth(1).unwrap();
        let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(verify(&unsigned, KEY, &[audience]).is_err());
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &Claims {
                aud: audience.into(),
                exp: now() + 60,
                iat: None,
                nameid: None,
            },
            &EncodingKey::from_secret(KEY.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            verify(&hs512, KEY, &[audience]),
            Err(JwtError::WrongAlgorithm)
        );
        // No `aud` at all is not "any audience".
        #[derive(Serialize)]
        struct NoAudience {
            exp: i64,
        }
        let bare = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &NoAudience { exp: now() + 60 },
            &EncodingKey::from_secret(KEY.as_bytes()),
        )
        .unwrap();
        assert!(verify(&bare, KEY, &[audience]).is_err());
    }
}
