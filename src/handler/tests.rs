//! The custom handler's decisions, in process: the real router (`server::router`) answering
//! requests through tower's `oneshot`, on a real SQLite store. Failures come from a change-feed
//! function that fails behind the real `BatchHandler` trait, as one does when what it writes to
//! is down, and from a store whose dead-letter writes fail; nothing else is replaced.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::server::{router, HandlerState};
use crate::clock::SystemClock;
use crate::runtime::{AppContext, Batch, BatchHandler, FunctionError, FunctionSpec, Handler};
use crate::store::sqlite::SqliteStore;
use crate::store::wrapped::Wrapped;
use crate::store::{Container, Query, Store, StoreError};

/// The name the failing function is registered under, beside the registry's functions.
const FAILING: &str = "AlwaysFails";
const FAILURE: &str = "the store is down";

/// A change-feed function whose every run fails.
struct AlwaysFails;

#[async_trait]
impl BatchHandler for AlwaysFails {
    async fn handle(&self, _: &AppContext, _: &Batch<'_>) -> Result<Vec<String>, FunctionError> {
        Err(StoreError::Unavailable(FAILURE.into()).into())
    }
}

/// The SQLite store, except that every write to `deadletters` fails.
fn dead_letters_down(store: Arc<dyn Store>) -> Arc<dyn Store> {
    Arc::new(Wrapped::failing_writes(
        store,
        |container| match container {
            Container::DeadLetters => Err(StoreError::Unavailable("deadletters is down".into())),
            _ => Ok(()),
        },
    ))
}

/// The registry's functions plus `AlwaysFails` (a copy of `LogStream`'s declaration), on a
/// store in a directory of its own.
struct Fixture {
    _dir: tempfile::TempDir,
    state: HandlerState,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_store(|store| store)
    }

    fn with_dead_letters_down() -> Fixture {
        Fixture::with_store(dead_letters_down)
    }

    /// On the SQLite store as `wrap` wraps it.
    fn with_store(wrap: impl FnOnce(Arc<dyn Store>) -> Arc<dyn Store>) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let sqlite = SqliteStore::open(&dir.path().join("bifrost.db"), Arc::new(SystemClock))
            .expect("open the SQLite store");
        let store = wrap(Arc::new(sqlite));
        let ctx = AppContext::standalone(store, Arc::new(SystemClock), dir.path());
        let mut functions = crate::registry::registry();
        let log_stream = functions
            .iter()
            .find(|f| f.name == "LogStream")
            .expect("LogStream is registered")
            .clone();
        functions.push(FunctionSpec {
            name: FAILING,
            handler: Handler::Batch(Arc::new(AlwaysFails)),
            ..log_stream
        });
        Fixture {
            _dir: dir,
            state: HandlerState {
                ctx,
                functions: Arc::new(functions),
            },
        }
    }

    /// `POST /{function}` with `body`: the status and the JSON reply.
    async fn invoke(&self, function: &str, body: impl Into<Body>) -> (StatusCode, Value) {
        let request = Request::post(format!("/{function}"))
            .header("content-type", "application/json")
            .header("x-azure-functions-invocationid", "inv-1")
            .body(body.into())
            .expect("request");
        let response = router(self.state.clone())
            .oneshot(request)
            .await
            .expect("the router always answers");
        let status = response.status();
        let content_type = response.headers().get("content-type").cloned();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        assert_eq!(
            content_type.as_ref().and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "every reply is JSON"
        );
        let reply = serde_json::from_slice(&bytes).expect("a JSON reply");
        (status, reply)
    }

    async fn dead_letters(&self, function: &str) -> Vec<Value> {
        self.state
            .ctx
            .store
            .query(Container::DeadLetters, function, &Query::new(100))
            .await
            .expect("query dead letters")
            .items
    }
}

const DOCUMENTS: &str = r#"[{"id": "log-e1-00000001", "executionId": "e1", "type": "log",
    "sequence": 1, "timestamp": "2025-04-09T04:46:10Z", "level": "info", "message": "hello"}]"#;

/// A change-feed batch of `DOCUMENTS`, on retry `retry_count` of 5 (`None`: no RetryContext).
fn batch(function: &str, retry_count: Option<i64>) -> String {
    let documents: Value = serde_json::from_str(DOCUMENTS).unwrap();
    let mut metadata = json!({"sys": {"MethodName": function}});
    if let Some(count) = retry_count {
        metadata["RetryContext"] = json!({"RetryCount": count, "MaxRetryCount": 5});
    }
    json!({"Data": {"documents": documents}, "Metadata": metadata}).to_string()
}

fn error_of(reply: &Value) -> &str {
    reply["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {reply}"))
}

#[tokio::test]
async fn a_batch_that_succeeds_is_200_with_its_logs() {
    let fixture = Fixture::new();
    let body = include_str!("../../tests/fixtures/host/cosmos_logstream.json");
    let (status, reply) = fixture.invoke("LogStream", body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert!(reply.get("error").is_none(), "{reply}");
    assert_eq!(reply["ReturnValue"], Value::Null);
    assert!(
        reply["Logs"].to_string().contains("LogStream: 1 documents"),
        "{reply}"
    );
    assert!(fixture.dead_letters("LogStream").await.is_empty());
}

#[tokio::test]
async fn a_failure_before_the_last_attempt_is_500_so_the_host_redelivers() {
    let fixture = Fixture::new();
    for retry in [0, 1, 4] {
        let (status, reply) = fixture.invoke(FAILING, batch(FAILING, Some(retry))).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{reply}");
        assert!(error_of(&reply).contains(FAILURE), "{reply}");
    }
    assert!(fixture.dead_letters(FAILING).await.is_empty());
}

#[tokio::test]
async fn the_last_attempt_writes_a_dead_letter_and_answers_200_with_the_error() {
    let fixture = Fixture::new();
    let (status, reply) = fixture.invoke(FAILING, batch(FAILING, Some(5))).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert!(error_of(&reply).contains(FAILURE), "{reply}");
    assert!(
        reply["Logs"][0].as_str().unwrap().contains("dead-lettered"),
        "{reply}"
    );
    let letters = fixture.dead_letters(FAILING).await;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(
        letter["documents"],
        serde_json::from_str::<Value>(DOCUMENTS).unwrap()
    );
    assert_eq!(letter["attempts"], 6);
    assert_eq!(letter["invocationId"], "inv-1");
    assert!(letter["reason"].as_str().unwrap().contains(FAILURE));
}

#[tokio::test]
async fn without_a_retry_context_the_first_failure_is_dead_lettered() {
    // No retry policy reached the host: it will not redeliver, so this is the last attempt.
    let fixture = Fixture::new();
    let (status, reply) = fixture.invoke(FAILING, batch(FAILING, None)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert!(error_of(&reply).contains(FAILURE), "{reply}");
    let letters = fixture.dead_letters(FAILING).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["attempts"], 1);
}

#[tokio::test]
async fn an_undecodable_batch_is_dead_lettered_verbatim_with_a_200_that_says_why() {
    let fixture = Fixture::new();
    let body = r#"{"Data":{"documents":"[{\"id\": 1,"},"Metadata":{}}"#;
    let (status, reply) = fixture.invoke("LogStream", body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert!(
        error_of(&reply).starts_with("undecodable batch: "),
        "{reply}"
    );
    let letters = fixture.dead_letters("LogStream").await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["rawPayload"], body);
    assert_eq!(letters[0]["attempts"], 1);
}

#[tokio::test]
async fn a_dead_letter_that_cannot_be_written_is_500_so_nothing_is_lost() {
    let fixture = Fixture::with_dead_letters_down();
    let (status, reply) = fixture.invoke(FAILING, batch(FAILING, Some(5))).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{reply}");
    let error = error_of(&reply);
    assert!(
        error.contains(FAILURE) && error.contains("writing the dead letter failed"),
        "{reply}"
    );
    // The same for a batch that cannot even be decoded.
    let (status, reply) = fixture.invoke("LogStream", "{not json").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{reply}");
    assert!(
        error_of(&reply).contains("writing the dead letter failed"),
        "{reply}"
    );
    assert!(fixture.dead_letters(FAILING).await.is_empty());
}

#[tokio::test]
async fn an_unknown_function_is_404_json_naming_the_known_ones() {
    let fixture = Fixture::new();
    let (status, reply) = fixture.invoke("NoSuchFunction", "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{reply}");
    let error = error_of(&reply);
    assert!(
        error.contains("\"NoSuchFunction\"") && error.contains("LogStream"),
        "{reply}"
    );
}

#[tokio::test]
async fn an_http_functions_error_travels_in_outputs_res_with_its_status() {
    let fixture = Fixture::new();
    // The host's replayed GetExecution request carries no principal: the function answers 401.
    let body = include_str!("../../tests/fixtures/host/http_get_execution.json");
    let (status, reply) = fixture.invoke("GetExecution", body).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the invocation itself succeeded: {reply}"
    );
    let res = &reply["Outputs"]["res"];
    assert_eq!(res["statusCode"], 401, "{reply}");
    let answer: Value = serde_json::from_str(res["body"].as_str().expect("a body")).unwrap();
    let message = answer["error"].as_str().expect("a JSON error");
    assert_eq!(error_of(&reply), message);
    assert_eq!(reply["Logs"], json!(["GetExecution: 401"]));
}
