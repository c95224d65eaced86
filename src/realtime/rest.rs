//! The SignalR Service data-plane REST sender (API version 2022-06-01): group sends and group
//! membership over one pooled, keep-alive reqwest client, each call signed with a fresh HS256
//! token (`aud` = the request URL without its query, as the service's REST API documentation
//! asks; a wrong audience is a 401). The same code talks to Azure and to the built-in
//! hub of serve mode; only the connection string differs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::value::RawValue;

use super::connection_string::ConnectionString;
use super::{jwt, ClientConnection, HubMessage, MessageSink, SinkError};
use crate::retry::{self, Backoff, Jitter, Retryable};

pub const API_VERSION: &str = "2022-06-01";
/// Groups sent to at once per batch (messages of one group stay in order, one after another).
const SEND_CONCURRENCY: usize = 16;
/// Three attempts per REST call (100 ms, then 200 ms apart) before the batch fails and the
/// function's retry policy (1 s, 2 s … 16 s) takes over: this layer only rides out a blip, so it
/// stays short. A 429 or 503 with `Retry-After` waits what the service asks, up to 5 s.
const BACKOFF: Backoff = Backoff {
    attempts: 3,
    base: Duration::from_millis(100),
    cap: Duration::from_secs(5),
    jitter: Jitter::None,
};
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The group the health probe asks about; nobody is ever added to it.
const PROBE_GROUP: &str = "bifrost-health-probe";

/// Path segments are escaped like the service SDK's `Uri.EscapeDataString` (`execution:1` →
/// `execution%3A1`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn escape_segment(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

fn epoch_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[derive(Debug, Clone)]
pub struct RestSender {
    client: reqwest::Client,
    connection: ConnectionString,
    hub: String,
}

impl RestSender {
    pub fn new(connection: ConnectionString, hub: &str) -> Result<Self, SinkError> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_keepalive(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| SinkError::Send(format!("building the HTTP client: {e}")))?;
        Ok(RestSender {
            client,
            connection,
            // The service SDK lowercases hub names; so do we, so both sides agree.
            hub: hub.to_ascii_lowercase(),
        })
    }

    /// `{endpoint}/api/hubs/{hub}/{segments…}`, without the query (this is also the token audience).
    fn url(&self, segments: &[&str]) -> String {
        let mut url = format!(
            "{}/api/hubs/{}",
            self.connection.endpoint,
            escape_segment(&self.hub)
        );
        for segment in segments {
            url.push('/');
            // `:send` is an action, not data: it stays unescaped.
            if segment.starts_with(':') {
                url.push_str(segment);
            } else {
                url.push_str(&escape_segment(segment));
            }
        }
        url
    }

    /// One REST call with bounded retries on transport errors, 429 and 5xx.
    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<Bytes>,
    ) -> Result<StatusCode, SinkError> {
        let url = self.url(segments);
        retry::retry(
            &BACKOFF,
            |failure: &Failure| failure.retryable,
            |failure, next| {
                tracing::warn!(
                    failure = %failure.message,
                    attempt = next.failed,
                    backoff = ?next.wait,
                    "SignalR REST call failed; retrying"
                );
            },
            || self.attempt(&method, &url, query, body.clone()),
        )
        .await
        .map_err(|failure| match failure.retryable {
            Retryable::No => SinkError::Send(failure.message),
            Retryable::Yes | Retryable::After(_) => SinkError::Send(format!(
                "{} (gave up after {} attempts)",
                failure.message, BACKOFF.attempts
            )),
        })
    }

    /// One attempt of a REST call, signed with a fresh token. A 404 is an answer (the group or
    /// connection does not exist), not a failure.
    async fn attempt(
        &self,
        method: &Method,
        url: &str,
        query: &[(&str, String)],
        body: Option<Bytes>,
    ) -> Result<StatusCode, Failure> {
        let token = jwt::token_for(url, None, &self.connection.access_key, epoch_seconds())
            .map_err(|e| Failure {
                message: e.to_string(),
                retryable: Retryable::No,
            })?;
        let mut request = self
            .client
            .request(method.clone(), url)
            .query(&[("api-version", API_VERSION)])
            .query(query)
            .bearer_auth(token);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request.send().await.map_err(|e| Failure {
            message: format!("{method} {url}: {e}"),
            retryable: Retryable::Yes,
        })?;
        let status = response.status();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(status);
        }
        let retryable = classify(status, response.headers());
        let text = response.text().await.unwrap_or_default();
        Err(Failure {
            message: format!(
                "{method} {url}: {status} {}",
                text.chars().take(300).collect::<String>()
            ),
            retryable,
        })
    }

    async fn send_group(&self, group: &str, messages: &[&HubMessage]) -> Result<(), SinkError> {
        let segments = ["groups", group, ":send"];
        for message in messages {
            // Serialized once from borrowed parts (no copy of the arguments), sent as shared
            // bytes by every attempt.
            let body = serde_json::to_vec(&PayloadMessage {
                target: &message.target,
                arguments: &message.arguments,
            })
            .map_err(|e| SinkError::Send(format!("serializing a message: {e}")))?;
            // An empty group is a 202 too; a 404 means a wrong endpoint or hub: a failure, or
            // the batch would be checkpointed with its messages lost.
            let status = self
                .call(Method::POST, &segments, &[], Some(Bytes::from(body)))
                .await?;
            expect_success(status, &self.url(&segments))?;
        }
        Ok(())
    }
}

/// The service's `PayloadMessage` body of a send.
#[derive(Serialize)]
struct PayloadMessage<'a> {
    target: &'a str,
    /// The arguments' JSON array text, copied in as serialized, never parsed again.
    arguments: &'a RawValue,
}

/// A failed REST attempt: what to report, and whether (and when) to try again.
#[derive(Debug)]
struct Failure {
    message: String,
    retryable: Retryable,
}

/// Throttling (429) and server errors are retried, after the service's `Retry-After` when it
/// sends one (429 and 503 do); any other status is a mistake of ours that a retry cannot fix.
fn classify(status: StatusCode, headers: &reqwest::header::HeaderMap) -> Retryable {
    if !(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS) {
        return Retryable::No;
    }
    match retry::retry_after(headers) {
        Some(wait) => Retryable::After(wait),
        None => Retryable::Yes,
    }
}

/// Messages grouped by group name, each group's messages in their original order.
fn by_group(messages: &[HubMessage]) -> Vec<(&str, Vec<&HubMessage>)> {
    let mut groups: Vec<(&str, Vec<&HubMessage>)> = Vec::new();
    for message in messages {
        match groups.iter_mut().find(|(g, _)| *g == message.group) {
            Some((_, list)) => list.push(message),
            None => groups.push((&message.group, vec![message])),
        }
    }
    groups
}

#[async_trait]
impl MessageSink for RestSender {
    fn name(&self) -> &'static str {
        "signalr"
    }

    async fn send(&self, messages: &[HubMessage]) -> Result<(), SinkError> {
        let groups = by_group(messages);
        // Indices, not borrowed tuples, keep the closure free of higher-ranked lifetimes.
        stream::iter(0..groups.len())
            .map(|index| self.send_group(groups[index].0, &groups[index].1))
            .buffer_unordered(SEND_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }

    /// "Any connection in this group?" on a group nobody joins: 404 (or 200) proves the service
    /// answers and accepts our key (a wrong key is 401), and sends nothing to anyone.
    async fn probe(&self) -> Result<(), SinkError> {
        let status = self
            .call(Method::HEAD, &["groups", PROBE_GROUP], &[], None)
            .await?;
        if status.is_success() || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(SinkError::Send(format!("probe answered {status}")))
        }
    }

    fn client_connection(&self, user_id: Option<&str>) -> Result<ClientConnection, SinkError> {
        client_connection(&self.connection, &self.hub, user_id)
    }

    /// `PUT …/users/{user}/groups/{group}?ttl=`: the service adds the user's connections, those
    /// open now and those opened later, until the TTL runs out.
    async fn add_user_to_group(
        &self,
        group: &str,
        user_id: &str,
        ttl: Duration,
    ) -> Result<(), SinkError> {
        let segments = ["users", user_id, "groups", group];
        let status = self
            .call(
                Method::PUT,
                &segments,
                &[("ttl", ttl.as_secs().to_string())],
                None,
            )
            .await?;
        expect_success(status, &self.url(&segments))
    }

    /// `DELETE …/users/{user}/groups/{group}`.
    async fn remove_user_from_group(&self, group: &str, user_id: &str) -> Result<(), SinkError> {
        let segments = ["users", user_id, "groups", group];
        let status = self.call(Method::DELETE, &segments, &[], None).await?;
        expect_success(status, &self.url(&segments))
    }
}

/// Where a client of `hub` on the service (or the built-in hub) connects, and its token: the
/// client URL as `aud`, the user id as `nameid`, signed with the access key. serve's in-process
/// sink hands out the same, so a client cannot tell the two apart.
pub fn client_connection(
    connection: &ConnectionString,
    hub: &str,
    user_id: Option<&str>,
) -> Result<ClientConnection, SinkError> {
    let url = format!(
        "{}/client/?hub={}",
        connection.endpoint,
        escape_segment(hub)
    );
    let access_token = jwt::token_for(&url, user_id, &connection.access_key, epoch_seconds())
        .map_err(|e| SinkError::Send(e.to_string()))?;
    Ok(ClientConnection { url, access_token })
}

/// A 404 on a user or group call means a wrong endpoint or hub (these calls answer 200/204
/// whether or not the user is connected): a failure, not an answer.
fn expect_success(status: StatusCode, url: &str) -> Result<(), SinkError> {
    if status.is_success() {
        Ok(())
    } else {
        Err(SinkError::Send(format!("{url}: {status}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(group: &str, target: &str) -> HubMessage {
        HubMessage::without_arguments(group.into(), target)
    }

    #[test]
    fn urls_escape_groups_but_not_actions() {
        let sender = RestSender::new(
            "Endpoint=https://res.service.signalr.net;AccessKey=k;Version=1.0;"
                .parse()
                .unwrap(),
            "Bifrost",
        )
        .unwrap();
        assert_eq!(
            sender.url(&["groups", "execution:a b", ":send"]),
            "https://res.service.signalr.net/api/hubs/bifrost/groups/execution%3Aa%20b/:send"
        );
        let connection = sender.client_connection(Some("u")).unwrap();
        assert_eq!(
            connection.url,
            "https://res.service.signalr.net/client/?hub=bifrost"
        );
        let claims = jwt::verify(&connection.access_token, "k", &[&connection.url]).unwrap();
        assert_eq!(claims.nameid.as_deref(), Some("u"));
    }

    #[test]
    fn throttling_and_server_errors_are_retried_after_the_services_wait() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &headers),
            Retryable::Yes
        );
        assert_eq!(classify(StatusCode::BAD_GATEWAY, &headers), Retryable::Yes);
        assert_eq!(classify(StatusCode::UNAUTHORIZED, &headers), Retryable::No);
        assert_eq!(classify(StatusCode::BAD_REQUEST, &headers), Retryable::No);
        headers.insert("retry-after", "2".parse().unwrap());
        for status in [
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            assert_eq!(
                classify(status, &headers),
                Retryable::After(Duration::from_secs(2))
            );
        }
        assert_eq!(classify(StatusCode::FORBIDDEN, &headers), Retryable::No);
    }

    /// A local stand-in for the service that answers each request with the next of `replies`
    /// (status, `Retry-After`), then 202; returns its connection string and the request count.
    async fn scripted_service(
        replies: Vec<(u16, Option<&'static str>)>,
    ) -> (
        ConnectionString,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        let calls = Arc::new(AtomicUsize::new(0));
        let replies = Arc::new(Mutex::new(replies.into_iter()));
        let counter = calls.clone();
        let app = axum::Router::new().fallback(move || {
            let next = replies.lock().unwrap().next();
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                let (status, retry_after) = next.unwrap_or((202, None));
                let mut response = axum::response::Response::new(axum::body::Body::empty());
                *response.status_mut() = StatusCode::from_u16(status).unwrap();
                if let Some(value) = retry_after {
                    response
                        .headers_mut()
                        .insert("retry-after", value.parse().unwrap());
                }
                response
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let connection = format!("Endpoint=http://{address};AccessKey=k;Version=1.0;")
            .parse()
            .unwrap();
        (connection, calls)
    }

    #[tokio::test]
    async fn a_throttled_send_waits_what_the_service_asks_then_succeeds() {
        use std::sync::atomic::Ordering;
        let (connection, calls) = scripted_service(vec![(429, Some("1"))]).await;
        let sender = RestSender::new(connection, "bifrost").unwrap();
        let started = std::time::Instant::now();
        sender
            .send(&[message("execution:1", "executionLogs")])
            .await
            .unwrap();
        let took = started.elapsed();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // The backoff alone would have waited 100 ms.
        assert!(took >= Duration::from_secs(1), "waited only {took:?}");
        assert!(took < BACKOFF.cap, "{took:?}");
    }

    #[tokio::test]
    async fn a_refused_call_is_not_retried_and_exhaustion_says_so() {
        use std::sync::atomic::Ordering;
        let (connection, calls) = scripted_service(vec![(401, None)]).await;
        let sender = RestSender::new(connection, "bifrost").unwrap();
        let error = sender.send(&[message("g", "t")]).await.unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{error}");
        assert!(!error.to_string().contains("gave up"), "{error}");

        let (connection, calls) = scripted_service(vec![(503, None); 3]).await;
        let sender = RestSender::new(connection, "bifrost").unwrap();
        let error = sender.send(&[message("g", "t")]).await.unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(
            error.to_string().contains("gave up after 3 attempts"),
            "{error}"
        );
    }

    #[test]
    fn grouping_keeps_order_within_a_group() {
        let messages = vec![message("a", "1"), message("b", "2"), message("a", "3")];
        let groups = by_group(&messages);
        assert_eq!(groups.len(), 2);
        let a: Vec<&str> = groups[0].1.iter().map(|m| m.target.as_str()).collect();
        assert_eq!(a, vec!["1", "3"]);
    }
}
