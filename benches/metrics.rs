//! Dashboard cost: reading the daily documents (this design) against the live aggregate over the
//! executions that the plan's daily documents replace, for 50,000 executions in one scope over
//! 30 days. Also measures the change-feed aggregation's throughput building those documents.
//!
//! Run: `cargo bench --bench metrics` (writes the "Metrics" section of bench/REPORT.md).

#[path = "common/report.rs"]
mod report;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use bifrost_workers::api::metrics::GetMetrics;
use bifrost_workers::clock::{Clock, SystemClock};
use bifrost_workers::functions::{AppContext, BatchHandler, HttpHandler};
use bifrost_workers::host::protocol::HttpRequest;
use bifrost_workers::metrics::aggregate::MetricsAggregate;
use bifrost_workers::metrics::contribution::Contribution;
use bifrost_workers::metrics::summary;
use bifrost_workers::model::ExecutionDoc;
use bifrost_workers::store::{
    sqlite::SqliteStore, Container, FeedPosition, FilterOp, Query, Store,
};

const EXECUTIONS: usize = 50_000;
const DAYS: i64 = 30;
const ORG: &str = "0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01";
const REPEATS: usize = 30;
const STATUSES: [&str; 5] = [
    "Success",
    "Success",
    "Failed",
    "Timeout",
    "CompletedWithErrors",
];

fn request() -> HttpRequest {
    let principal = base64::engine::general_purpose::STANDARD
        .encode(json!({"userId": "bench", "userRoles": ["PlatformAdmin"]}).to_string());
    HttpRequest {
        method: "GET".into(),
        url: "http://localhost/api/metrics".into(),
        query: Default::default(),
        headers: [
            ("x-ms-client-principal".to_owned(), vec![principal]),
            ("x-organization-id".to_owned(), vec![ORG.to_owned()]),
        ]
        .into_iter()
        .collect(),
        params: Default::default(),
        body: None,
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    report::quantile(&samples, 0.5)
}

#[tokio::main]
async fn main() {
    let data = tempfile::tempdir().expect("tempdir");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store =
        Arc::new(SqliteStore::open(&data.path().join("bifrost.db"), clock.clone()).expect("store"));
    let ctx = AppContext::standalone(store.clone(), clock.clone(), data.path());
    let scope = format!("org-{ORG}");
    let now = chrono::Utc::now();
    for i in 0..EXECUTIONS {
        let completed =
            now - chrono::Duration::seconds((i as i64 * DAYS * 86_400) / EXECUTIONS as i64);
        let completed = completed.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        store
            .create(
                Container::Executions,
                json!({
                    "id": format!("exec-{i:06}"), "type": "execution", "scope": scope,
                    "executionId": format!("exec-{i:06}"), "workflowName": format!("w{}", i % 12),
                    "executedBy": "u", "status": STATUSES[i % STATUSES.len()],
                    "startedAt": completed, "completedAt": completed,
                    "durationMs": 500 + (i % 977) as i64 * 13, "inputData": {"i": i},
                }),
            )
            .await
            .expect("seed");
    }

    // Build the daily documents through the change-feed function, batch by batch as the host
    // would deliver them.
    let started = Instant::now();
    let mut position = FeedPosition::Beginning;
    let mut batches = 0;
    loop {
        let page = store
            .read_change_feed(Container::Executions, &position, 500)
            .await
            .expect("feed");
        if page.documents.is_empty() {
            break;
        }
        MetricsAggregate
            .handle(&ctx, &page.documents)
            .await
            .expect("aggregate");
        batches += 1;
        position = FeedPosition::Continuation(page.continuation);
    }
    let aggregation = started.elapsed();
    let aggregation_rate = EXECUTIONS as f64 / aggregation.as_secs_f64();
    println!(
        "aggregation: {EXECUTIONS} executions in {batches} batches, {:.1} s ({aggregation_rate:.0} executions/s)",
        aggregation.as_secs_f64()
    );

    // The dashboard read: GET /api/metrics from the daily documents.
    let mut dashboard = Vec::new();
    let mut dashboard_body = Value::Null;
    for _ in 0..REPEATS {
        let started = Instant::now();
        let response = GetMetrics.handle(&ctx, request()).await;
        dashboard.push(started.elapsed());
        assert_eq!(response.status, 200, "{}", response.body);
        dashboard_body = serde_json::from_str(&response.body).expect("json");
    }
    let daily_docs = dashboard_body["window"]["dailyDocumentsRead"]
        .as_u64()
        .unwrap_or(0);

    // The live aggregate the daily documents replace: one pass over every execution of the
    // window (one paged query, as the legacy dashboard scanned), aggregated in memory.
    let from = bifrost_workers::model::Timestamp(
        (now.date_naive() - chrono::Duration::days(DAYS - 1))
            .and_time(chrono::NaiveTime::MIN)
            .and_utc(),
    );
    let mut live = Vec::new();
    let mut live_total = summary::empty(&scope, "window");
    let mut executions_read = 0;
    for repeat in 0..REPEATS.min(5) {
        let started = Instant::now();
        let mut query = Query::new(1000)
            .filter("type", FilterOp::Eq(json!("execution")))
            .filter("completedAt", FilterOp::Ge(json!(from.canonical())));
        let mut contributions = Vec::new();
        loop {
            let page = store
                .query(Container::Executions, &scope, &query)
                .await
                .expect("live query");
            for item in page.items {
                if let Ok(doc) = serde_json::from_value::<ExecutionDoc>(item) {
                    contributions.extend(Contribution::of(&doc));
                }
            }
            match page.continuation {
                Some(next) => query.continuation = Some(next),
                None => break,
            }
        }
        let total = summary::from_contributions(&scope, "window", contributions.iter());
        live.push(started.elapsed());
        if repeat == 0 {
            executions_read = contributions.len();
            live_total = total;
        }
    }
    let stats = &dashboard_body["executionStats"];
    assert_eq!(
        stats["totalExecutions"].as_u64(),
        Some(live_total.total_executions),
        "the dashboard must report what the live aggregate counts"
    );
    let (dash, live) = (median(dashboard), median(live));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    // Documents read per dashboard call: the daily documents, plus the two live gauges
    // (running/pending, none here) and one page of recent failures (10).
    let dashboard_docs = daily_docs + 10;
    println!(
        "dashboard read: {daily_docs} daily documents (+10 recent failures), median {:.2} ms",
        ms(dash)
    );
    println!(
        "live aggregate: {} executions read, median {:.1} ms",
        live_total.total_executions,
        ms(live)
    );
    let doc_ratio = dashboard_docs as f64 / executions_read.max(1) as f64;
    let time_ratio = dash.as_secs_f64() / live.as_secs_f64();
    println!(
        "dashboard / live: documents {:.4} ({:.2}% fewer), time {:.4} ({:.1}% less)",
        doc_ratio,
        (1.0 - doc_ratio) * 100.0,
        time_ratio,
        (1.0 - time_ratio) * 100.0
    );
    let section = format!(
        "## Metrics: dashboard read vs live aggregate\n\n\
         `cargo bench --bench metrics`: {EXECUTIONS} executions in one scope over {DAYS} days, on the \
         embedded store (release build, in process, so only store and compute are timed).\n\n\
         | | documents read | median time |\n|---|---|---|\n\
         | `GET /api/metrics` from daily documents | {dashboard_docs} ({daily_docs} daily + 10 recent failures) | {:.2} ms |\n\
         | live aggregate over the executions (what the plan replaces) | {} | {:.1} ms |\n\
         | ratio | {:.4} ({:.2}% fewer) | {:.4} ({:.1}% less) |\n\n\
         Both report the same totals (asserted). Building the daily documents through the change-feed \
         function (`MetricsAggregate`, {batches} batches of ≤ 500): {:.1} s, {aggregation_rate:.0} executions/s \
         (per execution: 1 marker read + 1 marker write; per batch and day: 1 read + 1 write of the daily \
         document). RUs on Cosmos are not measured here: the Cosmos backend and its RU counter are another \
         issue's; the document counts above are what RUs scale with.\n",
        ms(dash),
        live_total.total_executions,
        ms(live),
        doc_ratio,
        (1.0 - doc_ratio) * 100.0,
        time_ratio,
        (1.0 - time_ratio) * 100.0,
        aggregation.as_secs_f64(),
    );
    report::write_section("## Metrics:", &section);
}
