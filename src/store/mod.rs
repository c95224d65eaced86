//! The store layer's face: the `Store` trait and its types (`contract`), how it fails
//! (`error`), backend-neutral queries (`query`) and patches (`patch`), the containers, document
//! validation and continuation tokens every backend shares, the two backends (`sqlite`, the
//! embedded default, and `cosmos`), the backend chosen by a `StoreUrl`, and `open`, which opens
//! it. `conformance` is the behaviour suite both backends pass.

#[cfg(test)]
pub(crate) mod conformance;
mod containers;
mod contract;
pub mod cosmos;
mod error;
pub mod faults;
mod keyset;
pub mod patch;
pub mod query;
pub mod sqlite;
mod validate;
pub(crate) mod wrapped;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

pub use containers::Container;
pub use contract::{
    check_batch_size, query_all, read_modify_write, string_field, BatchOperation, BatchOutcome,
    ChangeFeedPage, ETag, FeedPosition, Store, StoredDocument, TextFeedPage, MAX_BATCH_OPERATIONS,
};
pub use error::StoreError;
pub use patch::PatchOp;
pub use query::{Field, Filter, FilterOp, OrderBy, Page, Query};

use crate::clock::Clock;

/// Which backend to open: `sqlite:PATH` (default under `--data`), or a Cosmos DB account
/// (`cosmos://…`, `cosmos+http://…` or an `AccountEndpoint=…` connection string; see
/// `cosmos::settings`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    Cosmos(cosmos::CosmosSettings),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreUrlError {
    #[error("store URL is empty")]
    Empty,
    #[error("sqlite store URL needs a path: sqlite:PATH")]
    MissingPath,
    #[error("{0}")]
    Cosmos(#[from] cosmos::SettingsError),
    #[error("unknown store {0:?}: expected sqlite:PATH, cosmos://HOST/?key=KEY or AccountEndpoint=…;AccountKey=…;")]
    UnknownScheme(String),
}

impl FromStr for StoreUrl {
    type Err = StoreUrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(StoreUrlError::Empty);
        }
        if let Some(path) = s.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(StoreUrlError::MissingPath);
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if cosmos::CosmosSettings::claims(s) {
            return Ok(StoreUrl::Cosmos(cosmos::CosmosSettings::parse(s)?));
        }
        // Never echo what might be a secret pasted in the wrong place.
        let shown: String = s.chars().take(24).collect();
        Err(StoreUrlError::UnknownScheme(shown))
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            StoreUrl::Cosmos(settings) => write!(f, "{settings}"),
        }
    }
}

/// Opens the configured backend.
pub async fn open(url: &StoreUrl, clock: Arc<dyn Clock>) -> Result<Arc<dyn Store>, StoreError> {
    match url {
        StoreUrl::Sqlite(path) => {
            let path = path.clone();
            let store =
                tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(&path, clock))
                    .await
                    .map_err(|e| StoreError::Backend(format!("opening store: {e}")))??;
            Ok(Arc::new(store))
        }
        StoreUrl::Cosmos(settings) => Ok(Arc::new(cosmos::CosmosStore::open(settings).await?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        assert_eq!(
            "sqlite:/tmp/x.db".parse::<StoreUrl>().unwrap(),
            StoreUrl::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            "sqlite://data/b.db".parse::<StoreUrl>().unwrap(),
            StoreUrl::Sqlite("data/b.db".into())
        );
        assert_eq!(
            "sqlite:".parse::<StoreUrl>(),
            Err(StoreUrlError::MissingPath)
        );
        assert!(matches!(
            "postgres://x".parse::<StoreUrl>(),
            Err(StoreUrlError::UnknownScheme(_))
        ));
        assert!(matches!(
            "cosmos://acct".parse::<StoreUrl>(),
            Err(StoreUrlError::Cosmos(_))
        ));
        assert!(matches!(
            "cosmos+http://127.0.0.1:1/?key=k".parse::<StoreUrl>(),
            Ok(StoreUrl::Cosmos(_))
        ));
        // A secret pasted as an unknown store is not echoed whole.
        let long = format!("secret{}", "x".repeat(100));
        let error = long.parse::<StoreUrl>().unwrap_err().to_string();
        assert!(!error.contains(&long), "{error}");
    }
}
