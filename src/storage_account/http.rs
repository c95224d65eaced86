//! Requests to the Storage services, shared by the migrator's reader and the blob store: the
//! error type, the retry loop and the service's error bodies.

use std::time::Duration;

use serde_json::Value;

use crate::retry::{self, Backoff, Jitter, Retryable};

/// 200 ms, 400 ms … 6.4 s between seven attempts (about 13 s in all), or what the service's
/// `Retry-After` says, up to 10 s: long enough to ride out a throttled account or a restarting
/// emulator, short enough that a migration run notices a real outage.
const BACKOFF: Backoff = Backoff {
    attempts: 7,
    base: Duration::from_millis(200),
    cap: Duration::from_secs(10),
    jitter: Jitter::None,
};

/// A failed request to the Table or Blob service.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{what}: HTTP {status} {code}: {message}")]
    Status {
        what: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{what}: {source}")]
    Transport {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what}: unexpected response: {reason}")]
    Decode { what: String, reason: String },
}

impl ReadError {
    pub fn is_transient(&self) -> bool {
        match self {
            ReadError::Status { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
            ReadError::Transport { source, .. } => {
                source.is_connect() || source.is_timeout() || source.is_request()
            }
            ReadError::Decode { .. } => false,
        }
    }
}

/// Sends the request `build` makes (a fresh one per attempt: dates and bodies are per request)
/// until it succeeds, retrying throttling (honouring `Retry-After`), 5xx and connection failures
/// with exponential backoff; any other failure is returned at once, with the service's error
/// code and message.
pub async fn send_with_retry(
    what: &str,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, ReadError> {
    // The error travels with the wait the service asked for, for the classifier.
    let attempt = || async {
        match build().send().await {
            Ok(response) if response.status().is_success() => Ok(response),
            Ok(response) => {
                let hint = retry::retry_after(response.headers());
                Err((status_error(what, response).await, hint))
            }
            Err(source) => Err((
                ReadError::Transport {
                    what: what.to_owned(),
                    source,
                },
                None,
            )),
        }
    };
    retry::retry(
        &BACKOFF,
        |(error, hint): &(ReadError, Option<Duration>)| match (error.is_transient(), hint) {
            (false, _) => Retryable::No,
            (true, Some(wait)) => Retryable::After(*wait),
            (true, None) => Retryable::Yes,
        },
        |(error, _), next| {
            tracing::warn!(
                attempt = next.failed,
                wait_ms = next.wait.as_millis() as u64,
                "{error}; retrying"
            );
        },
        attempt,
    )
    .await
    .map_err(|(error, _)| error)
}

/// Reads the service's error code and message (JSON `odata.error` for tables, XML for blobs and
/// auth failures) into a `ReadError::Status`.
async fn status_error(what: &str, response: reqwest::Response) -> ReadError {
    let status = response.status().as_u16();
    let header_code = response
        .headers()
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.text().await.unwrap_or_default();
    let (code, message) = match serde_json::from_str::<Value>(&body) {
        Ok(json) => {
            let error = &json["odata.error"];
            (
                error["code"].as_str().map(str::to_owned),
                error["message"]["value"].as_str().map(str::to_owned),
            )
        }
        Err(_) => (xml_element(&body, "Code"), xml_element(&body, "Message")),
    };
    ReadError::Status {
        what: what.to_owned(),
        status,
        code: code.or(header_code).unwrap_or_else(|| "Unknown".into()),
        message: message
            .unwrap_or_else(|| body.chars().take(200).collect())
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

/// The text of every `<name>…</name>` in `body`, in order (flat service XML: no nesting of the
/// same element, no attributes on it).
pub fn xml_elements<'a>(body: &'a str, name: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut found = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else {
            break;
        };
        found.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    found
}

fn xml_element(body: &str, name: &str) -> Option<String> {
    xml_elements(body, name)
        .first()
        .map(|text| (*text).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_errors_are_read() {
        let body = "<?xml version=\"1.0\"?><Error><Code>AuthorizationFailure</Code><Message>Server failed to authenticate</Message></Error>";
        assert_eq!(
            xml_element(body, "Code").as_deref(),
            Some("AuthorizationFailure")
        );
        assert_eq!(xml_element(body, "Missing"), None);
    }

    #[test]
    fn every_element_in_order() {
        let body = "<A><Name>a</Name><Name>b&amp;c</Name><Name>unclosed";
        assert_eq!(xml_elements(body, "Name"), ["a", "b&amp;c"]);
    }
}
