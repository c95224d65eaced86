//! Blob storage for results over Cosmos' 2 MB document limit: the `result` document keeps a
//! `blobRef` (`execution-data/{executionId}/result.json`) and the API streams the blob through.
//!
//! Serve mode keeps blobs in a directory (`<data>/blobs/<blobRef>`); in Azure they live in the
//! storage account's `execution-data` container (`azure`: the Blob REST API).

use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;

use crate::storage_account::connection::StorageAccount;

pub mod azure;

pub const BLOBS_ENV: &str = "BIFROST_BLOBS";
/// Largest blob the API will read into a response (Functions payload mode buffers bodies).
pub const MAX_BLOB_BYTES: u64 = 100 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("invalid blob reference {0:?}")]
    InvalidRef(String),
    #[error("blob {0:?} is larger than {MAX_BLOB_BYTES} bytes")]
    TooLarge(String),
    #[error("blob storage error: {0}")]
    Io(String),
}

#[async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    fn backend(&self) -> &'static str;

    /// The blob's bytes, `Ok(None)` when it does not exist.
    async fn get(&self, blob_ref: &str) -> Result<Option<Vec<u8>>, BlobError>;

    async fn put(&self, blob_ref: &str, bytes: &[u8]) -> Result<(), BlobError>;
}

/// A blob reference is `container/path/…`: relative, `/`-separated, no `.`/`..`, no empty
/// segments, printable ASCII without `\`. Checked before any path is built from it.
pub fn validate_ref(blob_ref: &str) -> Result<(), BlobError> {
    let invalid = || BlobError::InvalidRef(blob_ref.chars().take(200).collect());
    if blob_ref.is_empty() || blob_ref.len() > 1024 {
        return Err(invalid());
    }
    for segment in blob_ref.split('/') {
        let plain = segment
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '\\' && c != ':');
        if segment.is_empty() || segment == "." || segment == ".." || !plain {
            return Err(invalid());
        }
    }
    Ok(())
}

/// Blobs as files under one directory.
#[derive(Debug, Clone)]
pub struct DirBlobs {
    root: PathBuf,
}

impl DirBlobs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirBlobs { root: root.into() }
    }

    fn path_of(&self, blob_ref: &str) -> Result<PathBuf, BlobError> {
        validate_ref(blob_ref)?;
        let relative = Path::new(blob_ref);
        // Belt and braces: validate_ref already refuses anything but plain segments.
        if relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(BlobError::InvalidRef(blob_ref.to_owned()));
        }
        Ok(self.root.join(relative))
    }
}

#[async_trait]
impl BlobStore for DirBlobs {
    fn backend(&self) -> &'static str {
        "dir"
    }

    async fn get(&self, blob_ref: &str) -> Result<Option<Vec<u8>>, BlobError> {
        let path = self.path_of(blob_ref)?;
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.len() > MAX_BLOB_BYTES => {
                return Err(BlobError::TooLarge(blob_ref.to_owned()))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(BlobError::Io(e.to_string())),
        }
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BlobError::Io(e.to_string())),
        }
    }

    async fn put(&self, blob_ref: &str, bytes: &[u8]) -> Result<(), BlobError> {
        let path = self.path_of(blob_ref)?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| BlobError::Io(e.to_string()))?;
        }
        // Write then rename, so a reader never sees half a blob.
        let partial = path.with_extension("partial");
        tokio::fs::write(&partial, bytes)
            .await
            .map_err(|e| BlobError::Io(e.to_string()))?;
        tokio::fs::rename(&partial, &path)
            .await
            .map_err(|e| BlobError::Io(e.to_string()))
    }
}

/// Where blobs are read from: `dir:PATH` (or a bare path), or an Azure Storage account:
/// `azblob:<connection string>` (account key or SAS), or
/// `azblob:https://ACCOUNT.blob.core.windows.net[?clientId=ID]` with the managed identity.
#[derive(Clone, PartialEq, Eq)]
pub enum BlobLocation {
    Dir(PathBuf),
    Account(StorageAccount),
    ManagedIdentity {
        endpoint: reqwest::Url,
        client_id: Option<String>,
    },
}

impl std::fmt::Debug for BlobLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Display never shows a key or SAS.
        write!(f, "BlobLocation({self})")
    }
}

const AZURE_PREFIX: &str = "azblob:";

impl std::str::FromStr for BlobLocation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(target) = s.strip_prefix(AZURE_PREFIX) {
            return parse_azure(target.trim());
        }
        let path = s.strip_prefix("dir:").unwrap_or(s);
        if path.is_empty() {
            return Err("blob location is empty; expected dir:PATH or azblob:…".into());
        }
        Ok(BlobLocation::Dir(PathBuf::from(path)))
    }
}

fn parse_azure(target: &str) -> Result<BlobLocation, String> {
    if target.starts_with("https://") || target.starts_with("http://") {
        let mut endpoint = reqwest::Url::parse(target)
            .map_err(|e| format!("azblob: {target:?} is not a valid URL: {e}"))?;
        let mut client_id = None;
        for (name, value) in endpoint.query_pairs() {
            match name.as_ref() {
                "clientId" | "client_id" if !value.is_empty() => {
                    client_id = Some(value.into_owned())
                }
                "identity" if value == "managed" => {}
                other => {
                    return Err(format!(
                        "azblob: unknown URL parameter {other:?} (only clientId; keys go in a connection string)"
                    ))
                }
            }
        }
        endpoint.set_query(None);
        return Ok(BlobLocation::ManagedIdentity {
            endpoint,
            client_id,
        });
    }
    StorageAccount::parse(target)
        .map(BlobLocation::Account)
        .map_err(|e| format!("azblob: {e}"))
}

impl BlobLocation {
    /// The default: `blobs/` beside the embedded store.
    pub fn under(data_dir: &Path) -> Self {
        BlobLocation::Dir(data_dir.join("blobs"))
    }

    pub fn open(&self) -> Result<std::sync::Arc<dyn BlobStore>, BlobError> {
        Ok(match self {
            BlobLocation::Dir(path) => std::sync::Arc::new(DirBlobs::new(path)),
            BlobLocation::Account(account) => {
                std::sync::Arc::new(azure::AzureBlobs::with_account(account)?)
            }
            BlobLocation::ManagedIdentity {
                endpoint,
                client_id,
            } => std::sync::Arc::new(azure::AzureBlobs::with_managed_identity(
                endpoint.clone(),
                client_id.clone(),
            )?),
        })
    }
}

impl std::fmt::Display for BlobLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobLocation::Dir(path) => write!(f, "dir:{}", path.display()),
            BlobLocation::Account(account) => {
                write!(
                    f,
                    "{AZURE_PREFIX}{} ({:?})",
                    account.blob_endpoint, account.credentials
                )
            }
            BlobLocation::ManagedIdentity {
                endpoint,
                client_id,
            } => {
                write!(f, "{AZURE_PREFIX}{endpoint} (managed identity")?;
                if let Some(id) = client_id {
                    write!(f, " {id}")?;
                }
                f.write_str(")")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_cannot_escape_the_root() {
        assert!(validate_ref("execution-data/0f4a/result.json").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a/./b",
            "a\\b",
            "c:/x",
            "a b",
        ] {
            assert!(validate_ref(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn locations_parse_and_never_print_secrets() {
        let dir: BlobLocation = "dir:/var/blobs".parse().unwrap();
        assert_eq!(dir, BlobLocation::Dir("/var/blobs".into()));
        let keyed: BlobLocation =
            "azblob:AccountName=acct;AccountKey=c2VjcmV0;EndpointSuffix=core.windows.net"
                .parse()
                .unwrap();
        let shown = keyed.to_string();
        assert_eq!(
            shown,
            "azblob:https://acct.blob.core.windows.net/ (SharedKey(acct))"
        );
        assert!(!format!("{keyed:?}").contains("c2VjcmV0"));
        let managed: BlobLocation = "azblob:https://acct.blob.core.windows.net?clientId=abc"
            .parse()
            .unwrap();
        assert_eq!(
            managed,
            BlobLocation::ManagedIdentity {
                endpoint: reqwest::Url::parse("https://acct.blob.core.windows.net/").unwrap(),
                client_id: Some("abc".into())
            }
        );
        for bad in [
            "",
            "azblob:",
            "azblob:AccountName=acct",
            "azblob:https://acct.blob.core.windows.net?sig=x",
            "azblob:https://",
        ] {
            assert!(bad.parse::<BlobLocation>().is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn put_then_get_and_missing_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = DirBlobs::new(dir.path());
        blobs
            .put("execution-data/e1/result.json", b"{\"a\":1}")
            .await
            .unwrap();
        assert_eq!(
            blobs.get("execution-data/e1/result.json").await.unwrap(),
            Some(b"{\"a\":1}".to_vec())
        );
        assert_eq!(
            blobs.get("execution-data/e2/result.json").await.unwrap(),
            None
        );
        assert!(blobs.get("../secret").await.is_err());
    }
}
