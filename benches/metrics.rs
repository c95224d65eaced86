//! Dashboard cost: reading the daily documents (this design) against the live aggregate over the
//! executions that the plan's daily documents replace, for 50,000 executions in one scope over
//! 30 days. Also measures the change-feed aggregation's throughput building those documents.
//!
//! Run: `cargo bench --bench metrics` (writes the "Metrics" section of bench/REPORT.md).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bifrost_test_support::bench;
use bifrost_test_support::cosmos_emulator;
use bifrost_test_support::principal;
use serde_json::{json, Value};

use bifrost_workers::clock::{Clock, SystemClock};
use bifrost_workers::metrics::aggregate::MetricsAggregate;
use bifrost_workers::metrics::contribution::Contribution;
use bifrost_workers::metrics::routes::GetMetrics;
use bifrost_workers::metrics::summary;
use bifrost_workers::model::{ExecutionDoc, RawDocument};
use bifrost_workers::runtime::HttpRequest;
use bifrost_workers::runtime::{AppContext, Batch, BatchHandler, HttpHandler};
use bifrost_workers::store::{
    sqlite::SqliteStore, Container, FeedPosition, FilterOp, Query, Store,
};

const EXECUTIONS: usize = 50_000;
/// The in-memory emulator evaluates every query by scanning its items, so the Cosmos half runs
/// at a fifth of the size to finish in minutes.
const COSMOS_EXECUTIONS: usize = 10_000;
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
    let principal = principal::admin("bench");
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

/// The store at `url` on the emulator, its database and containers created by `ensure`.
async fn cosmos_store(url: &str) -> Arc<dyn Store> {
    let binary = bifrost_test_support::binary!();
    let ensured = binary.run(&["ensure", "--store", url]);
    assert!(ensured.status.success(), "ensure: {ensured:?}");
    let url = url.parse().expect("a store URL");
    bifrost_workers::store::open(&url, Arc::new(SystemClock))
        .await
        .expect("open the Cosmos store")
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    bench::quantile(&samples, 0.5)
}

/// What one backend measured.
struct Outcome {
    executions: usize,
    batches: usize,
    aggregation: Duration,
    aggregation_ru: Option<f64>,
    daily_docs: u64,
    dashboard: Duration,
    dashboard_ru: Option<f64>,
    live: Duration,
    live_ru: Option<f64>,
    executions_read: usize,
}

fn ru_delta(store: &dyn Store, before: Option<f64>) -> Option<f64> {
    store
        .request_units()
        .zip(before)
        .map(|(after, before)| after - before)
}

/// Seeds `executions` over 30 days, builds the daily documents through the change-feed
/// function, then times the dashboard read and the live aggregate on `store`.
async fn compare(store: Arc<dyn Store>, dir: &std::path::Path, executions: usize) -> Outcome {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ctx = AppContext::standalone(store.clone(), clock.clone(), dir);
    let scope = format!("org-{ORG}");
    let now = chrono::Utc::now();
    for i in 0..executions {
        let completed =
            now - chrono::Duration::seconds((i as i64 * DAYS * 86_400) / executions as i64);
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
    let ru_before = store.request_units();
    let mut position = FeedPosition::Beginning;
    let mut batches = 0;
    loop {
        let page = store
            .read_change_feed_text(Container::Executions, &position, 500)
            .await
            .expect("feed");
        if page.documents.is_empty() {
            break;
        }
        let documents: Vec<RawDocument> =
            page.documents.iter().map(|d| RawDocument::new(d)).collect();
        MetricsAggregate
            .handle(&ctx, &Batch::new(&documents, 0))
            .await
            .expect("aggregate");
        batches += 1;
        position = FeedPosition::Continuation(page.continuation);
    }
    let aggregation = started.elapsed();
    let aggregation_ru = ru_delta(store.as_ref(), ru_before);
    let aggregation_rate = executions as f64 / aggregation.as_secs_f64();
    println!(
        "aggregation: {executions} executions in {batches} batches, {:.1} s ({aggregation_rate:.0} executions/s)",
        aggregation.as_secs_f64()
    );

    // The dashboard read: GET /api/metrics from the daily documents.
    let mut dashboard = Vec::new();
    let mut dashboard_body = Value::Null;
    let ru_before = store.request_units();
    for _ in 0..REPEATS {
        let started = Instant::now();
        let response = GetMetrics.handle(&ctx, request()).await;
        dashboard.push(started.elapsed());
        assert_eq!(response.status, 200, "{}", response.body);
        dashboard_body = serde_json::from_str(&response.body).expect("json");
    }
    let dashboard_ru = ru_delta(store.as_ref(), ru_before).map(|ru| ru / REPEATS as f64);
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
    let ru_before = store.request_units();
    let live_passes = REPEATS.min(5);
    for repeat in 0..live_passes {
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
    let live_ru = ru_delta(store.as_ref(), ru_before).map(|ru| ru / live_passes as f64);
    Outcome {
        executions,
        batches,
        aggregation,
        aggregation_ru,
        daily_docs,
        dashboard: median(dashboard),
        dashboard_ru,
        live: median(live),
        live_ru,
        executions_read,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ru(value: Option<f64>) -> String {
    value
        .map(|v| format!("{v:.1} RU"))
        .unwrap_or_else(|| "n/a".into())
}

/// Prints the comparison and renders its table.
fn table(o: &Outcome) -> String {
    // Documents read per dashboard call: the daily documents plus one page of recent failures
    // (the running/pending gauges find none here).
    let dashboard_docs = o.daily_docs + 10;
    let doc_ratio = dashboard_docs as f64 / o.executions_read.max(1) as f64;
    let time_ratio = o.dashboard.as_secs_f64() / o.live.as_secs_f64();
    let ru_ratio = o.dashboard_ru.zip(o.live_ru).map(|(d, l)| d / l);
    println!(
        "{} executions: aggregation {:.1} s ({} batches, {}); dashboard {dashboard_docs} docs {:.2} ms {}; live {} docs {:.1} ms {}",
        o.executions,
        o.aggregation.as_secs_f64(),
        o.batches,
        ru(o.aggregation_ru),
        ms(o.dashboard),
        ru(o.dashboard_ru),
        o.executions_read,
        ms(o.live),
        ru(o.live_ru)
    );
    let ru_ratio_text = ru_ratio
        .map(|r| format!("{r:.4} ({:.1}% fewer)", (1.0 - r) * 100.0))
        .unwrap_or_else(|| "n/a".into());
    format!(
        "| | documents read | median time | request units |\n|---|---|---|---|\n\
         | `GET /api/metrics` from daily documents | {dashboard_docs} ({} daily + 10 recent failures) | {:.2} ms | {} |\n\
         | live aggregate over the executions (what the plan replaces) | {} | {:.1} ms | {} |\n\
         | ratio | {doc_ratio:.4} ({:.2}% fewer) | {time_ratio:.4} ({:.1}% less) | {ru_ratio_text} |\n\n\
         Both report the same totals (asserted). Building the daily documents through the change-feed \
         function (`MetricsAggregate`, {} batches of ≤ 500): {:.1} s, {:.0} executions/s, {} in all \
         (per execution: 1 marker read + 1 marker write; per batch and day: 1 read + 1 write of the daily document).\n",
        o.daily_docs,
        ms(o.dashboard),
        ru(o.dashboard_ru),
        o.executions_read,
        ms(o.live),
        ru(o.live_ru),
        (1.0 - doc_ratio) * 100.0,
        (1.0 - time_ratio) * 100.0,
        o.batches,
        o.aggregation.as_secs_f64(),
        o.executions as f64 / o.aggregation.as_secs_f64(),
        ru(o.aggregation_ru),
    )
}

#[tokio::main]
async fn main() {
    let data = tempfile::tempdir().expect("tempdir");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let sqlite: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&data.path().join("bifrost.db"), clock.clone()).expect("store"));
    let outcome = compare(sqlite, data.path(), EXECUTIONS).await;
    let section = format!(
        "## Metrics: dashboard read vs live aggregate\n\n\
         `cargo bench --bench metrics`: {EXECUTIONS} executions in one scope over {DAYS} days, on the \
         embedded store (release build, in process, so only store and compute are timed).\n\n{}\n\
         Plan target: dashboard < 100 ms and > 90% cheaper than the live aggregate; ours: {:.2} ms, \
         {:.2}% fewer documents read.\n",
        table(&outcome),
        ms(outcome.dashboard),
        (1.0 - (outcome.daily_docs + 10) as f64 / outcome.executions_read.max(1) as f64) * 100.0
    );
    bench::write_section("## Metrics: dashboard", &section);

    // The same on the Cosmos backend (the SDK's in-memory emulator over HTTP), where request
    // units are counted from every response's request charge.
    let emulator = cosmos_emulator::start().await.expect("cosmos emulator");
    let cosmos = cosmos_store(&emulator.store_url("metrics")).await;
    let cosmos_dir = tempfile::tempdir().expect("tempdir");
    let outcome = compare(cosmos, cosmos_dir.path(), COSMOS_EXECUTIONS).await;
    let section = format!(
        "## Metrics on the Cosmos backend (local emulator)\n\n\
         `cargo bench --bench metrics` (second part): {COSMOS_EXECUTIONS} executions, the Cosmos backend \
         against the SDK's in-memory emulator over HTTP in the bench process. Request units are the \
         store's counter of every response's request charge. The emulator's charge does not grow with \
         what a query returns (it bills the 10,000-document live aggregate about as much as a page), and \
         it evaluates queries by scanning its items (hence the times): neither the RUs nor the times \
         predict Azure. The documents-read column is what Azure's RUs scale with.\n\n{}",
        table(&outcome)
    );
    bench::write_section("## Metrics on the Cosmos", &section);
}
