//! Query API latency over HTTP against the release binary's `serve` on the embedded store:
//! 50,000 executions in one scope plus 19 smaller scopes (20 scopes, ~97,500 executions), then
//! p50/p99 of the first page, the tenth page, a filtered page and a detail read.
//!
//! Run: `cargo bench --bench query_api` (writes the "Query API" section of bench/REPORT.md).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bifrost_test_support::process::{Binary, Process};
use bifrost_test_support::{bench, cosmos_emulator, principal};
use serde_json::{json, Value};

use bifrost_workers::clock::SystemClock;
use bifrost_workers::model::LogDoc;
use bifrost_workers::store::{sqlite::SqliteStore, Container, Store};

const BIG_SCOPE_EXECUTIONS: usize = 50_000;
const SMALL_SCOPES: usize = 19;
const SMALL_SCOPE_EXECUTIONS: usize = 2_500;
const DETAIL_EXECUTIONS: usize = 200;
const LOGS_PER_DETAIL: u64 = 20;
const SAMPLES: usize = 400;
/// The in-memory emulator evaluates every query by scanning its items: fewer samples there.
const COSMOS_SAMPLES: usize = 40;
const COSMOS_BIG_SCOPE: usize = 10_000;
const WORKFLOWS: [&str; 10] = [
    "onboard_user",
    "offboard_user",
    "sync_licenses",
    "nightly_report",
    "reset_password",
    "create_team",
    "archive_mailbox",
    "audit_groups",
    "rotate_keys",
    "export_data",
];
const STATUSES: [&str; 4] = ["Success", "Failed", "Success", "CompletedWithErrors"];

fn org(i: usize) -> String {
    format!("{:08x}-0000-4000-8000-000000000000", i + 1)
}

async fn seed(store: &dyn Store, big: usize, small_scopes: usize) -> Vec<String> {
    let base = chrono::Utc::now();
    let mut detail_ids = Vec::new();
    let scopes: Vec<(String, usize)> = std::iter::once((org(0), big))
        .chain((1..=small_scopes).map(|i| (org(i), SMALL_SCOPE_EXECUTIONS)))
        .collect();
    for (scope_index, (org_id, count)) in scopes.iter().enumerate() {
        for i in 0..*count {
            let id = format!("{:08x}-{:04x}-4000-8000-{:012x}", i, scope_index, i);
            let started = base - chrono::Duration::seconds((i * 13) as i64);
            let started = started.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            store
                .create(
                    Container::Executions,
                    json!({
                        "id": id, "type": "execution", "scope": format!("org-{org_id}"),
                        "executionId": id, "workflowName": WORKFLOWS[i % WORKFLOWS.len()],
                        "executedBy": format!("user-{}", i % 50), "executedByName": "bench",
                        "status": STATUSES[i % STATUSES.len()], "inputData": {"i": i},
                        "startedAt": started, "completedAt": started, "durationMs": 1000 + i % 500,
                    }),
                )
                .await
                .expect("seed execution");
            if scope_index == 0 && i % (big / DETAIL_EXECUTIONS) == 0 {
                for sequence in 1..=LOGS_PER_DETAIL {
                    store
                        .create(
                            Container::ExecutionData,
                            json!({
                                "id": LogDoc::id_for(&id, sequence), "type": "log",
                                "executionId": id, "timestamp": started, "level": "INFO",
                                "message": format!("step {sequence}"), "sequence": sequence,
                            }),
                        )
                        .await
                        .expect("seed log");
                }
                detail_ids.push(id);
            }
        }
    }
    detail_ids
}

const BIN: Binary = bifrost_test_support::binary!();

/// The release `serve` on `data`, or on the store at `store_url`.
fn spawn_serve(data: &std::path::Path, store_url: Option<&str>) -> Process {
    match store_url {
        Some(url) => BIN.serve(data, &["--store", url]),
        None => BIN.serve(data, &[]),
    }
}

fn admin() -> String {
    principal::Principal::admin("bench-admin")
        .with_email("admin@bench")
        .encode()
}

struct Timings {
    name: String,
    p50: Duration,
    p99: Duration,
    rows: usize,
    /// Request units per call, from the serve process's own counter (Cosmos only).
    ru_per_call: Option<f64>,
}

/// The serve process's request-unit total (`/api/health` → `store.requestUnits`).
async fn request_units(client: &reqwest::Client, base: &str) -> Option<f64> {
    let body: Value = client
        .get(format!("{base}/api/health"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body["store"]["requestUnits"].as_f64()
}

async fn measure(
    client: &reqwest::Client,
    base: &str,
    name: &str,
    urls: &[String],
    org_id: &str,
    samples_wanted: usize,
) -> Timings {
    let principal = admin();
    // Health itself costs a point read: measure it, then subtract it.
    let probe_a = request_units(client, base).await;
    let probe_b = request_units(client, base).await;
    let health_cost = probe_a.zip(probe_b).map(|(a, b)| b - a);
    let mut samples = Vec::with_capacity(samples_wanted);
    let mut rows = 0;
    for i in 0..samples_wanted + 20 {
        let url = &urls[i % urls.len()];
        let started = Instant::now();
        let response = client
            .get(url)
            .header("X-MS-CLIENT-PRINCIPAL", &principal)
            .header("X-Organization-Id", org_id)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let body: Value = response.json().await.expect("json body");
        let elapsed = started.elapsed();
        assert!(status.is_success(), "{url}: {status} {body}");
        rows = body["executions"]
            .as_array()
            .map(Vec::len)
            .unwrap_or_else(|| body["logs"].as_array().map(Vec::len).unwrap_or(0));
        if i >= 20 {
            samples.push(elapsed); // the first 20 warm caches and connections
        }
    }
    samples.sort();
    let after = request_units(client, base).await;
    let ru_per_call = probe_b
        .zip(after)
        .zip(health_cost)
        .map(|((before, after), health)| (after - before - health) / (samples_wanted + 20) as f64);
    Timings {
        name: name.to_owned(),
        p50: bench::quantile(&samples, 0.5),
        p99: bench::quantile(&samples, 0.99),
        rows,
        ru_per_call,
    }
}

async fn token_of_page(client: &reqwest::Client, base: &str, org_id: &str, page: usize) -> String {
    let mut token: Option<String> = None;
    for _ in 1..page {
        let mut url = format!("{base}/api/executions?limit=25");
        if let Some(t) = &token {
            url.push_str(&format!("&continuationToken={t}"));
        }
        let body: Value = client
            .get(&url)
            .header("X-MS-CLIENT-PRINCIPAL", admin())
            .header("X-Organization-Id", org_id)
            .send()
            .await
            .expect("page")
            .json()
            .await
            .expect("json");
        token = body["continuationToken"].as_str().map(str::to_owned);
    }
    token.expect("a token for the requested page")
}

#[tokio::main]
async fn main() {
    let data = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&data.path().join("bifrost.db"), Arc::new(SystemClock))
        .expect("open store");
    let seed_started = Instant::now();
    let detail_ids = seed(&store, BIG_SCOPE_EXECUTIONS, SMALL_SCOPES).await;
    let total = BIG_SCOPE_EXECUTIONS + SMALL_SCOPES * SMALL_SCOPE_EXECUTIONS;
    println!(
        "seeded {total} executions in {} scopes in {:.1} s",
        SMALL_SCOPES + 1,
        seed_started.elapsed().as_secs_f64()
    );
    drop(store);
    let serve = spawn_serve(data.path(), None);
    let results = suite(&serve.base, &detail_ids, true, SAMPLES).await;
    drop(serve);
    let worst = results.iter().map(|t| t.p99).max().unwrap_or_default();
    let section = format!(
        "## Query API: latency over HTTP (embedded store)\n\n\
         `cargo bench --bench query_api`: release `serve` on SQLite, {total} executions in {} scopes \
         (one with {BIG_SCOPE_EXECUTIONS}), {SAMPLES} sequential requests per row over one keep-alive \
         connection as a platform admin, after 20 warm-up requests. Times are client-side, \
         request sent → body parsed. Target p99 < 10 ms: worst p99 here {:.2} ms.\n\n{}\n\
         Plan target: execution queries < 100 ms; ours: worst p99 {:.2} ms.\n",
        SMALL_SCOPES + 1,
        worst.as_secs_f64() * 1000.0,
        table(&results, false),
        worst.as_secs_f64() * 1000.0
    );
    bench::write_section("## Query API: latency over HTTP (embedded", &section);

    // The same requests against the Cosmos backend: `serve --store` on the SDK's in-memory
    // emulator (crates/test-support), one scope of 50,000 plus one small scope.
    let emulator = cosmos_emulator::start().await.expect("cosmos emulator");
    let url = emulator.store_url("bench");
    let ensured = BIN.run(&["ensure", "--store", &url]);
    assert!(ensured.status.success(), "ensure: {ensured:?}");
    let store =
        bifrost_workers::store::open(&url.parse().expect("a store URL"), Arc::new(SystemClock))
            .await
            .expect("open the Cosmos store");
    let seed_started = Instant::now();
    let detail_ids = seed(store.as_ref(), COSMOS_BIG_SCOPE, 1).await;
    let seeded = seed_started.elapsed();
    println!("seeded the emulator in {:.1} s", seeded.as_secs_f64());
    drop(store);
    let cosmos_data = tempfile::tempdir().expect("tempdir");
    let serve = spawn_serve(cosmos_data.path(), Some(&url));
    let results = suite(&serve.base, &detail_ids, false, COSMOS_SAMPLES).await;
    let worst = results.iter().map(|t| t.p99).max().unwrap_or_default();
    let section = format!(
        "## Query API: latency over HTTP (Cosmos backend, local emulator)\n\n\
         `cargo bench --bench query_api` (second part): release `serve --store cosmos+http://…` against \
         the Cosmos SDK's in-memory emulator served over HTTP in the bench process, {COSMOS_BIG_SCOPE} \
         executions in one scope plus {SMALL_SCOPE_EXECUTIONS} in another (the emulator evaluates every \
         query by scanning its items, so this half is smaller), same requests, {COSMOS_SAMPLES} samples \
         per row. RU per call is the serve process's own request-charge counter (`/api/health` \
         `store.requestUnits`) over the row's {COSMOS_SAMPLES} + 20 requests; the emulator charges by its own model, so these are indications, \
         not Azure figures, and the latency has no network hop to an Azure region. Worst p99 {:.2} ms \
         (the plan's target on Cosmos: < 100 ms). These times are the emulator's full scans, not Cosmos': \
         they show the Cosmos code path works end to end, and the RU column which requests cost more; the \
         latency target can only be checked against a real account.\n\n{}",
        worst.as_secs_f64() * 1000.0,
        table(&results, true)
    );
    bench::write_section("## Query API: latency over HTTP (Cosmos", &section);
}

/// The measured requests against one running `serve`.
async fn suite(
    base: &str,
    detail_ids: &[String],
    with_small_scopes: bool,
    samples: usize,
) -> Vec<Timings> {
    let client = reqwest::Client::new();
    let big = org(0);
    let small = if with_small_scopes { org(7) } else { org(1) };
    let tenth = token_of_page(&client, base, &big, 10).await;
    let three_days_ago = (chrono::Utc::now() - chrono::Duration::days(3)).format("%Y-%m-%d");
    let cases: Vec<(&str, Vec<String>, &String)> = vec![
        (
            "first page (largest scope)",
            vec![format!("{base}/api/executions")],
            &big,
        ),
        (
            "tenth page (largest scope)",
            vec![format!(
                "{base}/api/executions?limit=25&continuationToken={tenth}"
            )],
            &big,
        ),
        (
            "filtered page: status=failed & workflowName (1 in 20 match)",
            vec![format!(
                "{base}/api/executions?status=failed&workflowName=offboard_user"
            )],
            &big,
        ),
        (
            "filtered page: one day window",
            vec![format!(
                "{base}/api/executions?startDate={three_days_ago}&endDate={three_days_ago}"
            )],
            &big,
        ),
        (
            "detail read (execution + 20 logs + result)",
            detail_ids
                .iter()
                .map(|id| format!("{base}/api/executions/{id}"))
                .collect(),
            &big,
        ),
        (
            "first page (2,500-execution scope)",
            vec![format!("{base}/api/executions")],
            &small,
        ),
    ];
    let mut results = Vec::with_capacity(cases.len());
    for (name, urls, org_id) in &cases {
        results.push(measure(&client, base, name, urls, org_id, samples).await);
    }
    results
}

/// Prints the rows and renders them as a Markdown table.
fn table(results: &[Timings], with_ru: bool) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut table = if with_ru {
        String::from("| request | rows | p50 | p99 | RU per call |\n|---|---|---|---|---|\n")
    } else {
        String::from("| request | rows | p50 | p99 |\n|---|---|---|---|\n")
    };
    for t in results {
        let ru = t
            .ru_per_call
            .map(|r| format!("{r:.1}"))
            .unwrap_or_else(|| "n/a".into());
        println!(
            "{:<62} rows {:>3}  p50 {:>6.2} ms  p99 {:>6.2} ms  RU {ru}",
            t.name,
            t.rows,
            ms(t.p50),
            ms(t.p99)
        );
        table.push_str(&format!(
            "| {} | {} | {:.2} ms | {:.2} ms |",
            t.name,
            t.rows,
            ms(t.p50),
            ms(t.p99)
        ));
        if with_ru {
            table.push_str(&format!(" {ru} |"));
        }
        table.push('\n');
    }
    table
}
