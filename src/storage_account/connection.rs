//! Azure Storage connection strings: which account, which key (or SAS), which endpoints.
//! Pure parsing, so every form (`UseDevelopmentStorage=true`, Azurite's explicit endpoints, a real
//! account with `EndpointSuffix`, a SAS) is unit-tested without a network.

use std::collections::HashMap;

/// Azurite's well-known development account (public, documented by Microsoft).
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
pub const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Account key (base64, decoded): requests are signed with SharedKey / SharedKeyLite.
    SharedKey { account: String, key: Vec<u8> },
    /// A SAS query string (without `?`) appended to every request.
    Sas(String),
}

impl std::fmt::Debug for Credentials {
    // Never print the key or the SAS signature.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::SharedKey { account, .. } => write!(f, "SharedKey({account})"),
            Credentials::Sas(_) => f.write_str("Sas(…)"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageAccount {
    pub name: String,
    pub credentials: Credentials,
    /// e.g. `http://127.0.0.1:10002/devstoreaccount1` or `https://acct.table.core.windows.net`.
    pub table_endpoint: reqwest::Url,
    pub blob_endpoint: reqwest::Url,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConnectionStringError {
    #[error("connection string is empty")]
    Empty,
    #[error("connection string part {0:?} is not KEY=VALUE")]
    Malformed(String),
    #[error("connection string lacks {0}")]
    Missing(&'static str),
    #[error("AccountKey is not valid base64")]
    BadKey,
    #[error("{name} is not a valid URL: {value:?}")]
    BadEndpoint { name: &'static str, value: String },
}

impl StorageAccount {
    pub fn parse(input: &str) -> Result<Self, ConnectionStringError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(ConnectionStringError::Empty);
        }
        let mut parts = HashMap::new();
        for part in input.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            // Split on the first `=` only: keys and SAS values end in `=` padding / contain `=`.
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| ConnectionStringError::Malformed(redact(part)))?;
            parts.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
        let get = |name: &str| parts.get(name).map(String::as_str);

        if get("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            let proxy = get("developmentstorageproxyuri").unwrap_or("http://127.0.0.1");
            let proxy = proxy.trim_end_matches('/');
            return Ok(StorageAccount {
                name: DEV_ACCOUNT.to_owned(),
                credentials: shared_key(DEV_ACCOUNT, DEV_KEY)?,
                table_endpoint: endpoint(
                    "table endpoint",
                    &format!("{proxy}:10002/{DEV_ACCOUNT}"),
                )?,
                blob_endpoint: endpoint("blob endpoint", &format!("{proxy}:10000/{DEV_ACCOUNT}"))?,
            });
        }

        let name = get("accountname").map(str::to_owned);
        let credentials = match (get("accountkey"), get("sharedaccesssignature")) {
            (Some(key), _) => shared_key(
                name.as_deref()
                    .ok_or(ConnectionStringError::Missing("AccountName"))?,
                key,
            )?,
            (None, Some(sas)) => Credentials::Sas(sas.trim_start_matches('?').to_owned()),
            (None, None) => {
                return Err(ConnectionStringError::Missing(
                    "AccountKey or SharedAccessSignature",
                ))
            }
        };
        let protocol = get("defaultendpointsprotocol").unwrap_or("https");
        let suffix = get("endpointsuffix").unwrap_or("core.windows.net");
        let derived = |service: &str| {
            name.as_deref()
                .map(|account| format!("{protocol}://{account}.{service}.{suffix}"))
        };
        let table = get("tableendpoint")
            .map(str::to_owned)
            .or_else(|| derived("table"))
            .ok_or(ConnectionStringError::Missing(
                "TableEndpoint or AccountName",
            ))?;
        let blob = get("blobendpoint")
            .map(str::to_owned)
            .or_else(|| derived("blob"))
            .ok_or(ConnectionStringError::Missing(
                "BlobEndpoint or AccountName",
            ))?;
        let table_endpoint = endpoint("TableEndpoint", &table)?;
        let name = match name {
            Some(name) => name,
            // SAS with explicit endpoints: the account is the first host label.
            None => table_endpoint
                .host_str()
                .and_then(|h| h.split('.').next())
                .unwrap_or_default()
                .to_owned(),
        };
        Ok(StorageAccount {
            name,
            credentials,
            table_endpoint,
            blob_endpoint: endpoint("BlobEndpoint", &blob)?,
        })
    }
}

fn shared_key(account: &str, key: &str) -> Result<Credentials, ConnectionStringError> {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|_| ConnectionStringError::BadKey)?;
    Ok(Credentials::SharedKey {
        account: account.to_owned(),
        key,
    })
}

fn endpoint(name: &'static str, value: &str) -> Result<reqwest::Url, ConnectionStringError> {
    // A trailing slash would make `join` keep the path; without one it would drop its last segment.
    let with_slash = format!("{}/", value.trim_end_matches('/'));
    match reqwest::Url::parse(&with_slash) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(url),
        _ => Err(ConnectionStringError::BadEndpoint {
            name,
            value: value.to_owned(),
        }),
    }
}

/// Connection-string parts can hold secrets: show only the key name in errors.
fn redact(part: &str) -> String {
    part.chars().take_while(|c| *c != '=').take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_storage_points_at_azurite_defaults() {
        let account = StorageAccount::parse("UseDevelopmentStorage=true").unwrap();
        assert_eq!(account.name, DEV_ACCOUNT);
        assert_eq!(
            account.table_endpoint.as_str(),
            "http://127.0.0.1:10002/devstoreaccount1/"
        );
        assert_eq!(
            account.blob_endpoint.as_str(),
            "http://127.0.0.1:10000/devstoreaccount1/"
        );
        assert!(matches!(account.credentials, Credentials::SharedKey { .. }));
    }

    #[test]
    fn explicit_endpoints_and_key() {
        let account = StorageAccount::parse(&format!(
            "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};\
             BlobEndpoint=http://127.0.0.1:4000/{DEV_ACCOUNT};TableEndpoint=http://127.0.0.1:4002/{DEV_ACCOUNT};"
        ))
        .unwrap();
        assert_eq!(
            account.table_endpoint.as_str(),
            "http://127.0.0.1:4002/devstoreaccount1/"
        );
        assert_eq!(
            account.blob_endpoint.as_str(),
            "http://127.0.0.1:4000/devstoreaccount1/"
        );
    }

    #[test]
    fn real_account_derives_endpoints_from_the_suffix() {
        let account = StorageAccount::parse(
            "DefaultEndpointsProtocol=https;AccountName=bifrost;AccountKey=a2V5;EndpointSuffix=core.windows.net",
        )
        .unwrap();
        assert_eq!(
            account.table_endpoint.as_str(),
            "https://bifrost.table.core.windows.net/"
        );
        assert_eq!(
            account.blob_endpoint.as_str(),
            "https://bifrost.blob.core.windows.net/"
        );
    }

    #[test]
    fn sas_connection_string() {
        let account = StorageAccount::parse(
            "TableEndpoint=https://acct.table.core.windows.net;BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=sv=2019-02-02&sig=abc%3D",
        )
        .unwrap();
        assert_eq!(account.name, "acct");
        assert_eq!(
            account.credentials,
            Credentials::Sas("sv=2019-02-02&sig=abc%3D".into())
        );
    }

    #[test]
    fn bad_input_is_a_clear_error_without_secrets() {
        assert_eq!(
            StorageAccount::parse(" "),
            Err(ConnectionStringError::Empty)
        );
        assert_eq!(
            StorageAccount::parse("AccountName=x"),
            Err(ConnectionStringError::Missing(
                "AccountKey or SharedAccessSignature"
            ))
        );
        assert_eq!(
            StorageAccount::parse("AccountName=x;AccountKey=!!!"),
            Err(ConnectionStringError::BadKey)
        );
        let err = StorageAccount::parse("AccountName=x;secretstuff").unwrap_err();
        assert_eq!(err, ConnectionStringError::Malformed("secretstuff".into()));
        let err = StorageAccount::parse("AccountName=x;AccountKey=a2V5;TableEndpoint=ftp://x")
            .unwrap_err();
        assert!(matches!(err, ConnectionStringError::BadEndpoint { .. }));
    }
}
