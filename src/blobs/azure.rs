//! Blobs in an Azure Storage account over the Blob REST API (reqwest): where results over 2 MB
//! live in Azure, by the same `blobRef` (`execution-data/{executionId}/result.json`) the legacy
//! engine wrote them under, so migrated executions are served from the legacy account as is.
//!
//! Auth: an account key (SharedKey) or SAS from a connection string, or the app's managed
//! identity (Entra ID bearer token for `https://storage.azure.com/.default`; the identity needs
//! "Storage Blob Data Reader", or "Contributor" to write).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;

use super::{validate_ref, BlobError, BlobStore, MAX_BLOB_BYTES};
use crate::storage_account::connection::{Credentials, StorageAccount};
use crate::storage_account::signing;

/// 2017-11-09 is the first version that takes bearer tokens.
const API_VERSION: &str = "2019-02-02";
const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
const ATTEMPTS: u32 = 4;

#[derive(Clone)]
pub enum BlobAuth {
    Account(Credentials),
    Token(Arc<dyn TokenCredential>),
}

impl std::fmt::Debug for BlobAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobAuth::Account(credentials) => credentials.fmt(f),
            BlobAuth::Token(_) => f.write_str("ManagedIdentity"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AzureBlobs {
    http: reqwest::Client,
    /// `https://acct.blob.core.windows.net` or Azurite's `http://127.0.0.1:10000/devstoreaccount1`.
    endpoint: reqwest::Url,
    auth: BlobAuth,
}

impl AzureBlobs {
    pub fn with_account(account: &StorageAccount) -> Result<Self, BlobError> {
        Self::new(
            account.blob_endpoint.clone(),
            BlobAuth::Account(account.credentials.clone()),
        )
    }

    pub fn with_managed_identity(
        endpoint: reqwest::Url,
        client_id: Option<String>,
    ) -> Result<Self, BlobError> {
        let options = azure_identity::ManagedIdentityCredentialOptions {
            user_assigned_id: client_id.map(azure_identity::UserAssignedId::ClientId),
            ..Default::default()
        };
        let credential = azure_identity::ManagedIdentityCredential::new(Some(options))
            .map_err(|e| BlobError::Io(format!("managed identity: {e}")))?;
        Self::new(endpoint, BlobAuth::Token(credential))
    }

    fn new(endpoint: reqwest::Url, auth: BlobAuth) -> Result<Self, BlobError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| BlobError::Io(format!("HTTP client: {e}")))?;
        Ok(AzureBlobs {
            http,
            endpoint,
            auth,
        })
    }

    fn url_of(&self, blob_ref: &str) -> Result<reqwest::Url, BlobError> {
        validate_ref(blob_ref)?;
        let base = self.endpoint.as_str().trim_end_matches('/');
        let mut url = reqwest::Url::parse(&format!("{base}/{blob_ref}"))
            .map_err(|_| BlobError::InvalidRef(blob_ref.to_owned()))?;
        if let BlobAuth::Account(Credentials::Sas(sas)) = &self.auth {
            url.set_query(Some(sas));
        }
        Ok(url)
    }

    /// A signed request (`content`: the body's length and type, for PUT).
    async fn request(
        &self,
        method: reqwest::Method,
        url: &reqwest::Url,
        content: Option<(usize, &str)>,
        extra_ms_headers: &[(&str, &str)],
    ) -> Result<reqwest::RequestBuilder, BlobError> {
        let date = signing::http_date(chrono::Utc::now());
        let mut ms_headers = vec![("x-ms-date", date.as_str()), ("x-ms-version", API_VERSION)];
        ms_headers.extend_from_slice(extra_ms_headers);
        let mut request = self.http.request(method.clone(), url.clone());
        for (name, value) in &ms_headers {
            request = request.header(*name, *value);
        }
        if let Some((length, content_type)) = content {
            request = request
                .header("Content-Length", length)
                .header("Content-Type", content_type);
        }
        match &self.auth {
            BlobAuth::Account(Credentials::SharedKey { account, key }) => {
                let authorization = signing::blob_shared_key_with_body(
                    account,
                    key,
                    method.as_str(),
                    url,
                    content,
                    &ms_headers,
                );
                request = request.header("Authorization", authorization);
            }
            BlobAuth::Account(Credentials::Sas(_)) => {}
            BlobAuth::Token(credential) => {
                let token = credential
                    .get_token(&[STORAGE_SCOPE], None)
                    .await
                    .map_err(|e| BlobError::Io(format!("managed identity token: {e}")))?;
                request = request.bearer_auth(token.token.secret());
            }
        }
        Ok(request)
    }

    /// Sends (a PUT when `body` is given) with retries on throttling and transient failures;
    /// `Ok(None)` on 404, other failures are errors naming the blob.
    async fn send(
        &self,
        blob_ref: &str,
        body: Option<&[u8]>,
    ) -> Result<Option<reqwest::Response>, BlobError> {
        let url = self.url_of(blob_ref)?;
        let mut backoff = Duration::from_millis(200);
        for attempt in 1..=ATTEMPTS {
            let last = attempt == ATTEMPTS;
            let request = match body {
                None => self.request(reqwest::Method::GET, &url, None, &[]).await?,
                Some(bytes) => self
                    .request(
                        reqwest::Method::PUT,
                        &url,
                        Some((bytes.len(), "application/octet-stream")),
                        &[("x-ms-blob-type", "BlockBlob")],
                    )
                    .await?
                    .body(bytes.to_vec()),
            };
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) if !last && (e.is_connect() || e.is_timeout()) => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    continue;
                }
                Err(e) => return Err(BlobError::Io(format!("blob {blob_ref}: {e}"))),
            };
            let status = response.status();
            if status.is_success() {
                return Ok(Some(response));
            }
            if status == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !last && matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504) {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                continue;
            }
            let code = response
                .headers()
                .get("x-ms-error-code")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            return Err(BlobError::Io(format!(
                "blob {blob_ref}: HTTP {} {code}",
                status.as_u16()
            )));
        }
        Err(BlobError::Io(format!("blob {blob_ref}: no answer")))
    }
}

#[async_trait]
impl BlobStore for AzureBlobs {
    fn backend(&self) -> &'static str {
        "azure-blob"
    }

    async fn get(&self, blob_ref: &str) -> Result<Option<Vec<u8>>, BlobError> {
        let Some(response) = self.send(blob_ref, None).await? else {
            return Ok(None);
        };
        if response
            .content_length()
            .is_some_and(|length| length > MAX_BLOB_BYTES)
        {
            return Err(BlobError::TooLarge(blob_ref.to_owned()));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| BlobError::Io(format!("blob {blob_ref}: {e}")))?;
        Ok(Some(bytes.to_vec()))
    }

    async fn put(&self, blob_ref: &str, bytes: &[u8]) -> Result<(), BlobError> {
        match self.send(blob_ref, Some(bytes)).await? {
            Some(_) => Ok(()),
            // 404 on a PUT: the container does not exist.
            None => Err(BlobError::Io(format!(
                "blob {blob_ref}: its container does not exist in the storage account"
            ))),
        }
    }
}
