//! A small typed client for the two legacy storage services, over reqwest: Table queries with
//! continuation paging and Blob reads, both signed (or SAS), retried with backoff on throttling
//! (429/503) and other transient failures. `azure_data_tables` is unmaintained and would bring a
//! second, old `azure_core`; what the migrator needs is three requests.

use std::time::Duration;

use serde_json::{Map, Value};

use super::connection::{Credentials, StorageAccount};
use super::signing;
pub use crate::storage_account::http::ReadError;
use crate::storage_account::http::{send_with_retry, xml_elements};

/// One Table Storage entity as the service returned it (`minimalmetadata` JSON, including the
/// `Prop@odata.type` annotations).
pub type Entity = Map<String, Value>;

/// The service caps a page at 1000 entities; asking for more is not guaranteed to be accepted.
pub const MAX_PAGE: usize = 1000;
const TABLE_API_VERSION: &str = "2019-02-02";
const BLOB_API_VERSION: &str = "2019-02-02";
/// Where the next page starts (the `x-ms-continuation-*` headers, opaque).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continuation {
    pub next_partition_key: String,
    pub next_row_key: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct EntityPage {
    pub entities: Vec<Entity>,
    pub next: Option<Continuation>,
}

#[derive(Debug, Clone)]
pub struct StorageClient {
    http: reqwest::Client,
    account: StorageAccount,
}

impl StorageClient {
    pub fn new(account: StorageAccount) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(StorageClient { http, account })
    }

    pub fn account_name(&self) -> &str {
        &self.account.name
    }

    /// One page of `table` rows matching the OData `filter` (at most `top`, capped at 1000),
    /// with only the `select`ed properties when given.
    pub async fn query_page(
        &self,
        table: &str,
        filter: &str,
        select: Option<&str>,
        top: usize,
        from: Option<&Continuation>,
    ) -> Result<EntityPage, ReadError> {
        let mut url = resource_url(&self.account.table_endpoint, &format!("{table}()"))?;
        let mut query = vec![
            ("$filter", filter.to_owned()),
            ("$top", top.clamp(1, MAX_PAGE).to_string()),
        ];
        if let Some(select) = select {
            query.push(("$select", select.to_owned()));
        }
        if let Some(from) = from {
            query.push(("NextPartitionKey", from.next_partition_key.clone()));
            if let Some(row_key) = &from.next_row_key {
                query.push(("NextRowKey", row_key.clone()));
            }
        }
        self.set_query(&mut url, &query);
        let what = format!("querying table {table}");
        let response = send_with_retry(&what, || {
            let (mut request, date) = self.dated_get(&url, TABLE_API_VERSION);
            request = request
                .header("Accept", "application/json;odata=minimalmetadata")
                .header("DataServiceVersion", "3.0;NetFx")
                .header("MaxDataServiceVersion", "3.0;NetFx");
            if let Credentials::SharedKey { account, key } = &self.account.credentials {
                request = request.header(
                    "Authorization",
                    signing::table_shared_key_lite(account, key, &date, &url),
                );
            }
            request
        })
        .await?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let next = header("x-ms-continuation-NextPartitionKey").map(|pk| Continuation {
            next_partition_key: pk,
            next_row_key: header("x-ms-continuation-NextRowKey"),
        });
        let body: Value = response.json().await.map_err(|e| ReadError::Decode {
            what: what.clone(),
            reason: e.to_string(),
        })?;
        let entities = match body.get("value") {
            Some(Value::Array(rows)) => rows
                .iter()
                .map(|row| match row {
                    Value::Object(entity) => Ok(entity.clone()),
                    other => Err(ReadError::Decode {
                        what: what.clone(),
                        reason: format!("entity is not an object: {other}"),
                    }),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => {
                return Err(ReadError::Decode {
                    what,
                    reason: "no \"value\" array".into(),
                })
            }
        };
        Ok(EntityPage { entities, next })
    }

    /// Every row matching `filter`, following continuations (the service may return empty pages
    /// that still carry a continuation).
    pub async fn query_all(&self, table: &str, filter: &str) -> Result<Vec<Entity>, ReadError> {
        let mut rows = Vec::new();
        let mut next: Option<Continuation> = None;
        loop {
            let page = self
                .query_page(table, filter, None, MAX_PAGE, next.as_ref())
                .await?;
            rows.extend(page.entities);
            match page.next {
                Some(continuation) => next = Some(continuation),
                None => return Ok(rows),
            }
        }
    }

    /// The blob's bytes, or `None` when it does not exist.
    pub async fn get_blob(
        &self,
        container: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, ReadError> {
        let mut url = resource_url(&self.account.blob_endpoint, &format!("{container}/{name}"))?;
        self.set_query(&mut url, &[]);
        let what = format!("reading blob {container}/{name}");
        let Some(response) = self.blob_get(&url, &what).await? else {
            return Ok(None);
        };
        let bytes = response
            .bytes()
            .await
            .map_err(|source| ReadError::Transport { what, source })?;
        Ok(Some(bytes.to_vec()))
    }

    /// The names of every blob in `container` (empty when it does not exist), `page_size` (at
    /// most 5000) per request.
    pub async fn list_blobs(
        &self,
        container: &str,
        page_size: usize,
    ) -> Result<Vec<String>, ReadError> {
        let what = format!("listing blob container {container}");
        let mut names = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut url = resource_url(&self.account.blob_endpoint, container)?;
            let mut query = vec![
                ("restype", "container".to_owned()),
                ("comp", "list".to_owned()),
                ("maxresults", page_size.clamp(1, 5000).to_string()),
            ];
            if let Some(marker) = &marker {
                query.push(("marker", marker.clone()));
            }
            self.set_query(&mut url, &query);
            let Some(response) = self.blob_get(&url, &what).await? else {
                return Ok(names);
            };
            let xml = response
                .text()
                .await
                .map_err(|source| ReadError::Transport {
                    what: what.clone(),
                    source,
                })?;
            let (page, next) = parse_blob_list(&xml);
            names.extend(page);
            match next {
                Some(next) => marker = Some(next),
                None => return Ok(names),
            }
        }
    }

    /// A signed Blob-service GET with retries; `None` on 404.
    async fn blob_get(
        &self,
        url: &reqwest::Url,
        what: &str,
    ) -> Result<Option<reqwest::Response>, ReadError> {
        let result = send_with_retry(what, || {
            let (mut request, date) = self.dated_get(url, BLOB_API_VERSION);
            if let Credentials::SharedKey { account, key } = &self.account.credentials {
                let headers = [
                    ("x-ms-date", date.as_str()),
                    ("x-ms-version", BLOB_API_VERSION),
                ];
                request = request.header(
                    "Authorization",
                    signing::blob_shared_key(account, key, "GET", url, &headers),
                );
            }
            request
        })
        .await;
        match result {
            Ok(response) => Ok(Some(response)),
            Err(ReadError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A GET with `x-ms-date` (now) and `x-ms-version`; returns the date for signing.
    fn dated_get(&self, url: &reqwest::Url, version: &str) -> (reqwest::RequestBuilder, String) {
        let date = signing::http_date(chrono::Utc::now());
        let request = self
            .http
            .get(url.clone())
            .header("x-ms-date", &date)
            .header("x-ms-version", version);
        (request, date)
    }

    /// Percent-encodes the query (`%20`, never `+`: the services read `+` literally) and appends
    /// the SAS when that is the credential.
    fn set_query(&self, url: &mut reqwest::Url, pairs: &[(&str, String)]) {
        let mut parts: Vec<String> = pairs
            .iter()
            .map(|(name, value)| format!("{}={}", percent_encode(name), percent_encode(value)))
            .collect();
        if let Credentials::Sas(sas) = &self.account.credentials {
            parts.push(sas.clone());
        }
        url.set_query((!parts.is_empty()).then(|| parts.join("&")).as_deref());
    }
}

/// `endpoint` + a table or blob path (names come from code and legacy ids, never a full URL).
fn resource_url(endpoint: &reqwest::Url, path: &str) -> Result<reqwest::Url, ReadError> {
    endpoint.join(path).map_err(|e| ReadError::Decode {
        what: path.to_owned(),
        reason: format!("not a valid resource path: {e}"),
    })
}

/// Everything but unreserved characters (and `$` of `$filter`) is escaped.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'$');

/// The `<Name>`s of a List Blobs response and its `<NextMarker>` (absent or empty at the end).
/// The response is small, flat XML: the two elements are picked out by tag, entities decoded.
pub fn parse_blob_list(xml: &str) -> (Vec<String>, Option<String>) {
    fn unescape(text: &str) -> String {
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&")
    }
    // Only blob names: `<Name>` also appears inside `<Blobs>` only, but a container-level
    // `<Name>` would precede `<Blobs>`; cut to the blob list first.
    let blobs = xml
        .find("<Blobs>")
        .map(|start| &xml[start..])
        .map(|list| list.find("</Blobs>").map_or(list, |end| &list[..end]))
        .unwrap_or("");
    let names = xml_elements(blobs, "Name")
        .into_iter()
        .map(unescape)
        .collect();
    let next = xml_elements(xml, "NextMarker")
        .into_iter()
        .next()
        .map(unescape)
        .filter(|marker| !marker.is_empty());
    (names, next)
}

fn percent_encode(input: &str) -> String {
    percent_encoding::utf8_percent_encode(input, QUERY_VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_lists_give_names_and_the_next_marker() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="http://x/" ContainerName="execution-data"><MaxResults>2</MaxResults><Blobs><Blob><Name>e1/result.json</Name><Properties><Content-Length>9</Content-Length></Properties></Blob><Blob><Name>e&amp;2/variables.json</Name></Blob></Blobs><NextMarker>2!84!MDAwMDI1</NextMarker></EnumerationResults>"#;
        let (names, next) = parse_blob_list(xml);
        assert_eq!(names, ["e1/result.json", "e&2/variables.json"]);
        assert_eq!(next.as_deref(), Some("2!84!MDAwMDI1"));
        let last = "<EnumerationResults><Blobs /><NextMarker /></EnumerationResults>";
        assert_eq!(parse_blob_list(last), (Vec::<String>::new(), None));
        let empty_marker =
            "<EnumerationResults><Blobs></Blobs><NextMarker></NextMarker></EnumerationResults>";
        assert_eq!(parse_blob_list(empty_marker).1, None);
    }

    #[test]
    fn query_encoding_uses_percent_twenty() {
        assert_eq!(
            percent_encode("RowKey ge 'execution:'"),
            "RowKey%20ge%20%27execution%3A%27"
        );
        assert_eq!(percent_encode("$filter"), "$filter");
        assert_eq!(percent_encode("a+b=c/"), "a%2Bb%3Dc%2F");
    }

    /// A stand-in Table endpoint over a real socket: throttles the first request (503 with
    /// `Retry-After: 0`), then serves two pages linked by continuation headers.
    #[tokio::test]
    async fn retries_throttling_and_follows_continuations() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;

        use axum::extract::{Query, State};
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::IntoResponse;

        let calls = Arc::new(AtomicUsize::new(0));
        async fn entities(
            State(calls): State<Arc<AtomicUsize>>,
            headers: HeaderMap,
            Query(query): Query<std::collections::HashMap<String, String>>,
        ) -> axum::response::Response {
            let call = calls.fetch_add(1, Ordering::SeqCst);
            assert!(headers["authorization"]
                .to_str()
                .unwrap()
                .starts_with("SharedKeyLite devstoreaccount1:"));
            assert_eq!(query["$filter"], "PartitionKey eq 'a b'");
            if call == 0 {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [("retry-after", "0")],
                    "{}",
                )
                    .into_response();
            }
            match query.get("NextPartitionKey").map(String::as_str) {
                None => (
                    [
                        ("x-ms-continuation-NextPartitionKey", "1!8!YQ--"),
                        ("x-ms-continuation-NextRowKey", "1!8!cjI-"),
                    ],
                    axum::Json(serde_json::json!({"value": [{"RowKey": "r1"}]})),
                )
                    .into_response(),
                Some(pk) => {
                    assert_eq!((pk, query["NextRowKey"].as_str()), ("1!8!YQ--", "1!8!cjI-"));
                    axum::Json(serde_json::json!({"value": [{"RowKey": "r2"}]})).into_response()
                }
            }
        }
        let app = axum::Router::new()
            .route("/devstoreaccount1/Entities()", axum::routing::get(entities))
            .with_state(calls.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let account = StorageAccount::parse(&format!(
            "AccountName=devstoreaccount1;AccountKey={};TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1",
            crate::migrate::connection::DEV_KEY
        ))
        .unwrap();
        let client = StorageClient::new(account).unwrap();
        let rows = client
            .query_all("Entities", "PartitionKey eq 'a b'")
            .await
            .unwrap();
        let keys: Vec<_> = rows.iter().map(|r| r["RowKey"].as_str().unwrap()).collect();
        assert_eq!(keys, ["r1", "r2"]);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // A missing blob is None, not an error.
        assert_eq!(
            client
                .get_blob("execution-data", "e1/x.json")
                .await
                .unwrap(),
            None
        );
    }
}
