//! The SignalR Service data-plane REST sender (API version 2022-06-01): group sends and group
//! membership over one pooled, keep-alive reqwest client, each call signed with a fresh HS256
//! token (`aud` = the URL without its query, as the reference documents). The same code talks to
//! Azure and to the built-in hub of serve mode; only the connection string differs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::value::RawValue;

use super::connection_string::ConnectionString;
use super::{jwt, ClientConnection, HubMessage, MessageSink, SinkError};

pub const API_VERSION: &str = "2022-06-01";
/// Groups sent to at once per batch (messages of one group stay in order, one after another).
const SEND_CONCURRENCY: usize = 16;
/// Attempts per REST call before the batch fails (and the function's retry policy takes over).
const MAX_ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
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
        body: Option<&[u8]>,
    ) -> Result<StatusCode, SinkError> {
        let url = self.url(segments);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = jwt::token_for(&url, None, &self.connection.access_key, epoch_seconds());
            let mut request = self
                .client
                .request(method.clone(), &url)
                .query(&[("api-version", API_VERSION)])
                .bearer_auth(token);
            if let Some(body) = body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_vec());
            }
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() || status == StatusCode::NOT_FOUND {
                        return Ok(status);
                    }
                    let text = response.text().await.unwrap_or_default();
                    let message = format!(
                        "{method} {url}: {status} {}",
                        text.chars().take(300).collect::<String>()
                    );
                    if !(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS) {
                        return Err(SinkError::Send(message));
                    }
                    message
                }
                Err(e) => format!("{method} {url}: {e}"),
            };
            if attempt >= MAX_ATTEMPTS {
                return Err(SinkError::Send(format!(
                    "{failure} (gave up after {attempt} attempts)"
                )));
            }
            let backoff = FIRST_BACKOFF * 4u32.pow(attempt - 1);
            tracing::warn!(%failure, attempt, ?backoff, "SignalR REST call failed; retrying");
            tokio::time::sleep(backoff).await;
        }
    }

    async fn send_group(&self, group: &str, messages: &[&HubMessage]) -> Result<(), SinkError> {
        for message in messages {
            // The arguments are copied in as serialized, never parsed again.
            #[derive(Serialize)]
            struct Payload<'a> {
                target: &'a str,
                arguments: &'a RawValue,
            }
            let body = serde_json::to_vec(&Payload {
                target: &message.target,
                arguments: &message.arguments,
            })
            .map_err(|e| SinkError::Send(format!("encoding message: {e}")))?;
            // An empty group is a 202 too; a 404 means a wrong endpoint or hub: a failure, or
            // the batch would be checkpointed with its messages lost.
            let status = self
                .call(Method::POST, &["groups", group, ":send"], Some(&body))
                .await?;
            if !status.is_success() {
                return Err(SinkError::Send(format!(
                    "POST {}: {status}",
                    self.url(&["groups", group, ":send"])
                )));
            }
        }
        Ok(())
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
            .call(Method::HEAD, &["groups", PROBE_GROUP], None)
            .await?;
        if status.is_success() || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(SinkError::Send(format!("probe answered {status}")))
        }
    }

    fn client_connection(&self, user_id: Option<&str>) -> Result<ClientConnection, SinkError> {
        let url = format!(
            "{}/client/?hub={}",
            self.connection.endpoint,
            escape_segment(&self.hub)
        );
        let access_token =
            jwt::token_for(&url, user_id, &self.connection.access_key, epoch_seconds());
        Ok(ClientConnection { url, access_token })
    }

    async fn add_to_group(&self, group: &str, connection_id: &str) -> Result<(), SinkError> {
        let status = self
            .call(
                Method::PUT,
                &["groups", group, "connections", connection_id],
                None,
            )
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Err(SinkError::UnknownConnection(connection_id.to_owned()));
        }
        Ok(())
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
        let claims = jwt::verify(
            &connection.access_token,
            "k",
            &[&connection.url],
            epoch_seconds(),
        )
        .unwrap();
        assert_eq!(claims.nameid.as_deref(), Some("u"));
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
