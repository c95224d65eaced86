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
use crate::storage_account::http::{send_with_retry, ReadError};
use crate::storage_account::signing;

/// 2017-11-09 is the first version that takes bearer tokens.
const API_VERSION: &str = "2019-02-02";
const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

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

    /// A signed request (`body`: a PUT of these bytes), made anew for each attempt: the date is
    /// part of the signature. `token`: the managed identity's bearer token.
    fn request(
        &self,
        url: &reqwest::Url,
        body: Option<&[u8]>,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        const CONTENT_TYPE: &str = "application/octet-stream";
        let (method, content) = match body {
            Some(bytes) => (reqwest::Method::PUT, Some((bytes.len(), CONTENT_TYPE))),
            None => (reqwest::Method::GET, None),
        };
        let date = signing::http_date(chrono::Utc::now());
        let mut ms_headers = vec![("x-ms-date", date.as_str()), ("x-ms-version", API_VERSION)];
        if body.is_some() {
            ms_headers.push(("x-ms-blob-type", "BlockBlob"));
        }
        let mut request = self.http.request(method.clone(), url.clone());
        for (name, value) in &ms_headers {
            request = request.header(*name, *value);
        }
        if let Some(bytes) = body {
            request = request
                .header("Content-Type", CONTENT_TYPE)
                .body(bytes.to_vec());
        }
        match (&self.auth, token) {
            (BlobAuth::Account(Credentials::SharedKey { account, key }), _) => {
                let authorization = signing::blob_shared_key_with_body(
                    account,
                    key,
                    method.as_str(),
                    url,
                    content,
                    &ms_headers,
                );
                request.header("Authorization", authorization)
            }
            (_, Some(token)) => request.bearer_auth(token),
            // SAS: the signature is in the URL.
            _ => request,
        }
    }

    /// Sends (a PUT when `body` is given) with the storage retry policy; `Ok(None)` on 404,
    /// other failures are errors naming the blob.
    async fn send(
        &self,
        blob_ref: &str,
        body: Option<&[u8]>,
    ) -> Result<Option<reqwest::Response>, BlobError> {
        let url = self.url_of(blob_ref)?;
        // One token for all attempts: it is valid for an hour, and the credential caches it.
        let token = match &self.auth {
            BlobAuth::Token(credential) => Some(
                credential
                    .get_token(&[STORAGE_SCOPE], None)
                    .await
                    .map_err(|e| BlobError::Io(format!("managed identity token: {e}")))?,
            ),
            BlobAuth::Account(_) => None,
        };
        let token = token.as_ref().map(|t| t.token.secret());
        let what = format!("blob {blob_ref}");
        match send_with_retry(&what, || self.request(&url, body, token)).await {
            Ok(response) => Ok(Some(response)),
            Err(ReadError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(BlobError::Io(e.to_string())),
        }
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
