//! HS256 JSON Web Tokens as Azure SignalR Service uses them: signed with the UTF-8 bytes of the
//! AccessKey (not base64-decoded), `aud` = the URL being called, `exp` in epoch seconds.
//! Hand-rolled on `hmac` + `sha2` (about 60 lines) instead of a JWT crate: only HS256 is ever
//! needed, and the verification rules are the service's, not a library's defaults.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Lifetime of the tokens we mint (the service SDK's default is one hour).
pub const TOKEN_LIFETIME_SECONDS: i64 = 3600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub aud: String,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// The user id; the service routes `/users/{user}` sends by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nameid: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("token is not three base64url parts")]
    Malformed,
    #[error("token header is not HS256")]
    WrongAlgorithm,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("the audience is invalid")]
    WrongAudience,
}

fn mac(key: &str) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    HmacSha256::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

pub fn sign(claims: &Claims, access_key: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let mut mac = mac(access_key);
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// A token for `audience` valid from `now` (epoch seconds) for `TOKEN_LIFETIME_SECONDS`.
pub fn token_for(audience: &str, user_id: Option<&str>, access_key: &str, now: i64) -> String {
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

/// Checks signature (constant time), expiry and that `aud` is one of `audiences`.
pub fn verify(
    token: &str,
    access_key: &str,
    audiences: &[&str],
    now: i64,
) -> Result<Claims, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header: serde_json::Value = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(JwtError::Malformed)?;
    if header["alg"] != "HS256" {
        return Err(JwtError::WrongAlgorithm);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| JwtError::Malformed)?;
    let mut mac = mac(access_key);
    mac.update(&token.as_bytes()[..header_len(token)]);
    mac.verify_slice(&signature)
        .map_err(|_| JwtError::BadSignature)?;
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(JwtError::Malformed)?;
    if claims.exp <= now {
        return Err(JwtError::Expired);
    }
    if !audiences.iter().any(|aud| *aud == claims.aud) {
        return Err(JwtError::WrongAudience);
    }
    Ok(claims)
}

/// Length of `header.payload`, the signed part.
fn header_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";

    #[test]
    fn known_vector_matches_an_independent_hs256() {
        // Computed with Python: hmac.new(b"secret", b"<header>.<payload>", sha256), base64url.
        let claims = Claims {
            aud: "http://x/".into(),
            exp: 2000000000,
            iat: None,
            nameid: None,
        };
        let token = sign(&claims, "secret");
        assert_eq!(
            token,
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJodHRwOi8veC8iLCJleHAiOjIwMDAwMDAwMDB9.DWQi4ZehKcZ8E6dXiYNTK3KdAMAAdd2CGLxHgJuA7oE"
        );
    }

    #[test]
    fn round_trip_and_every_check() {
        let token = token_for("http://h/client/?hub=b", Some("u1"), KEY, 1000);
        let claims = verify(&token, KEY, &["http://h/client/?hub=b"], 1001).unwrap();
        assert_eq!(claims.nameid.as_deref(), Some("u1"));
        assert_eq!(
            verify(&token, "other", &["http://h/client/?hub=b"], 1001),
            Err(JwtError::BadSignature)
        );
        assert_eq!(
            verify(&token, KEY, &["http://h/api"], 1001),
            Err(JwtError::WrongAudience)
        );
        assert_eq!(
            verify(
                &token,
                KEY,
                &["http://h/client/?hub=b"],
                1000 + TOKEN_LIFETIME_SECONDS
            ),
            Err(JwtError::Expired)
        );
        assert_eq!(verify("a.b", KEY, &[], 0), Err(JwtError::Malformed));
        let mut tampered = token.clone();
        tampered.insert(40, 'x');
        assert!(verify(&tampered, KEY, &["http://h/client/?hub=b"], 1001).is_err());
    }
}
