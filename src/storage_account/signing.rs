//! Storage request signing (pure): SharedKeyLite for the Table service, SharedKey for the Blob
//! service. Both sign `"/" + account + <URI path>`, so Azurite's path-style URLs
//! (`/devstoreaccount1/devstoreaccount1/Tables`) and Azure's host-style ones (`/acct/Tables`)
//! take one code path.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// `x-ms-date` / `Date` format (RFC 1123, always GMT).
pub fn http_date(now: chrono::DateTime<chrono::Utc>) -> String {
    now.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn hmac_base64(key: &[u8], string_to_sign: &str) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    };
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Table service SharedKeyLite: `StringToSign = x-ms-date + "\n" + CanonicalizedResource`, where
/// only a `comp` query parameter joins the resource.
pub fn table_shared_key_lite(account: &str, key: &[u8], date: &str, url: &reqwest::Url) -> String {
    let mut resource = format!("/{account}{}", url.path());
    if let Some((_, comp)) = url.query_pairs().find(|(name, _)| name == "comp") {
        resource.push_str("?comp=");
        resource.push_str(&comp);
    }
    let signature = hmac_base64(key, &format!("{date}\n{resource}"));
    format!("SharedKeyLite {account}:{signature}")
}

/// Blob service SharedKey (version 2015-02-21 and later) for a body-less request whose only
/// `x-ms-*` headers are `ms_headers` (name, value).
pub fn blob_shared_key(
    account: &str,
    key: &[u8],
    method: &str,
    url: &reqwest::Url,
    ms_headers: &[(&str, &str)],
) -> String {
    blob_shared_key_with_body(account, key, method, url, None, ms_headers)
}

/// The same for a request with a body: `content` is its (length, `Content-Type`), both part of
/// the signed string.
pub fn blob_shared_key_with_body(
    account: &str,
    key: &[u8],
    method: &str,
    url: &reqwest::Url,
    content: Option<(usize, &str)>,
    ms_headers: &[(&str, &str)],
) -> String {
    let mut headers: Vec<(String, &str)> = ms_headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim()))
        .collect();
    headers.sort();
    let canonical_headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect();
    let mut resource = format!("/{account}{}", url.path());
    let mut params: Vec<(String, String)> = url
        .query_pairs()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.into_owned()))
        .collect();
    params.sort();
    for (name, value) in params {
        resource.push_str(&format!("\n{name}:{value}"));
    }
    // Content-Length is the empty string when there is no body (or it is 0).
    let (length, content_type) = match content {
        Some((length, content_type)) if length > 0 => (length.to_string(), content_type),
        Some((_, content_type)) => (String::new(), content_type),
        None => (String::new(), ""),
    };
    // VERB, Content-Encoding, -Language, -Length, -MD5, -Type, Date (x-ms-date is used instead),
    // If-Modified-Since, If-Match, If-None-Match, If-Unmodified-Since, Range.
    let string_to_sign = format!(
        "{method}\n\n\n{length}\n\n{content_type}\n\n\n\n\n\n\n{canonical_headers}{resource}"
    );
    let signature = hmac_base64(key, &string_to_sign);
    format!("SharedKey {account}:{signature}")
}

#[cfg(test)]
mod tests {
    use super::super::connection::{DEV_ACCOUNT, DEV_KEY};
    use super::*;

    fn key() -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(DEV_KEY)
            .unwrap()
    }

    #[test]
    fn date_is_rfc1123_gmt() {
        let t = chrono::DateTime::parse_from_rfc3339("2025-11-20T15:04:05Z")
            .unwrap()
            .to_utc();
        assert_eq!(http_date(t), "Thu, 20 Nov 2025 15:04:05 GMT");
    }

    #[test]
    fn table_signature_covers_the_account_twice_on_path_style_urls() {
        let url = reqwest::Url::parse(
            "http://127.0.0.1:10002/devstoreaccount1/Entities()?$filter=x&$top=5",
        )
        .unwrap();
        let date = "Thu, 20 Nov 2025 15:04:05 GMT";
        let header = table_shared_key_lite(DEV_ACCOUNT, &key(), date, &url);
        // Computed independently with `openssl dgst -sha256 -mac HMAC` over
        // "Thu, 20 Nov 2025 15:04:05 GMT\n/devstoreaccount1/devstoreaccount1/Entities()".
        assert_eq!(
            header,
            "SharedKeyLite devstoreaccount1:UvtYhwusyuOsC4019dOK9ibBPVSvyve8soAKR+bi9VM="
        );
    }

    #[test]
    fn blob_signature_lists_headers_and_query_in_order() {
        let url = reqwest::Url::parse(
            "http://127.0.0.1:10000/devstoreaccount1/execution-data/e1/result.json",
        )
        .unwrap();
        let header = blob_shared_key(
            DEV_ACCOUNT,
            &key(),
            "GET",
            &url,
            &[("x-ms-version", "2019-02-02"), ("x-ms-date", "D")],
        );
        // openssl over "GET" + 11 empty lines + "x-ms-date:D\nx-ms-version:2019-02-02\n"
        // + "/devstoreaccount1/devstoreaccount1/execution-data/e1/result.json".
        assert_eq!(
            header,
            "SharedKey devstoreaccount1:7n/AuEpVWWxjZJKLUq8OmAXi9Ic3FV1AvXtIzPj0KMY="
        );
    }
}
