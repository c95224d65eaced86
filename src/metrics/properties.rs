//! Property tests: whatever the deliveries (duplicates, any order, concurrent handlers, retries,
//! lost batches repaired by the rollup), every daily document equals the live aggregate over the
//! executions, on the real SQLite store.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::aggregate::MetricsAggregate;
use super::reconcile::{live_aggregate, reconcile_day};
use super::summary;
use crate::clock::ManualClock;
use crate::model::{ExecutionStatus, MetricsDoc, Timestamp};
use crate::runtime::{AppContext, BatchHandler};
use crate::store::sqlite::SqliteStore;
use crate::store::wrapped::Wrapped;
use crate::store::{Container, Store};

const SCOPES: [&str; 2] = ["GLOBAL", "org-0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01"];
const DAYS: [&str; 3] = ["2026-11-20", "2026-11-21", "2026-11-22"];

#[derive(Debug, Clone)]
struct State {
    status: ExecutionStatus,
    day: usize,
    duration_ms: Option<i64>,
    workflow: usize,
}

#[derive(Debug, Clone)]
struct Execution {
    scope: usize,
    states: Vec<State>,
}

#[derive(Debug, Clone)]
struct Scenario {
    executions: Vec<Execution>,
    /// Priorities that interleave the executions' writes (each execution keeps its own order).
    write_order: Vec<u32>,
    /// Extra deliveries of already-delivered versions (indexes into the version list).
    duplicates: Vec<usize>,
    /// A permutation key per delivery.
    shuffle: Vec<u32>,
    batch_sizes: Vec<usize>,
    handlers: usize,
    /// Deliveries lost for good (only in the rollup property).
    lost: Vec<usize>,
}

fn state() -> impl Strategy<Value = State> {
    (
        prop::sample::select(ExecutionStatus::ALL.to_vec()),
        0..DAYS.len(),
        prop::option::weighted(0.8, 0i64..200_000),
        0..2usize,
    )
        .prop_map(|(status, day, duration_ms, workflow)| State {
            status,
            day,
            duration_ms,
            workflow,
        })
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(
            (0..SCOPES.len(), prop::collection::vec(state(), 1..5))
                .prop_map(|(scope, states)| Execution { scope, states }),
            1..7,
        ),
        prop::collection::vec(any::<u32>(), 40),
        prop::collection::vec(0..100usize, 0..8),
        prop::collection::vec(any::<u32>(), 60),
        prop::collection::vec(1..6usize, 30),
        1..4usize,
        prop::collection::vec(0..100usize, 0..4),
    )
        .prop_map(
            |(executions, write_order, duplicates, shuffle, batch_sizes, handlers, lost)| {
                Scenario {
                    executions,
                    write_order,
                    duplicates,
                    shuffle,
                    batch_sizes,
                    handlers,
                    lost,
                }
            },
        )
}

fn document(index: usize, execution: &Execution, state: &State) -> Value {
    let id = format!("exec-{index}");
    let terminal = state.status.is_terminal();
    json!({
        "id": id, "type": "execution", "scope": SCOPES[execution.scope], "executionId": id,
        "workflowName": format!("w{}", state.workflow), "executedBy": "u",
        "status": state.status, "startedAt": format!("{}T08:00:00Z", DAYS[0]),
        "completedAt": if terminal { json!(format!("{}T23:59:59.5Z", DAYS[state.day])) } else { Value::Null },
        "durationMs": state.duration_ms,
    })
}

/// Cosmos returns `_lsn` only in change-feed documents, not from point reads or queries: the
/// SQLite store given that behaviour, so reconciliation is tested with the positions it gets on
/// Cosmos (`_ts` only).
fn lsn_only_in_feed(store: Arc<dyn Store>) -> Arc<dyn Store> {
    Arc::new(Wrapped {
        on_read: strip_lsn,
        ..Wrapped::new(store)
    })
}

fn strip_lsn(mut doc: Value) -> Value {
    if let Value::Object(map) = &mut doc {
        map.remove("_lsn");
    }
    doc
}

struct World {
    _dir: tempfile::TempDir,
    ctx: AppContext,
    /// Every version written, as the change feed shows it (with `_lsn`).
    versions: Vec<Value>,
}

/// Writes every state of every execution in the interleaving the scenario chose.
async fn write_all(scenario: &Scenario) -> World {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(
        Timestamp::parse("2026-11-22T12:00:00Z").unwrap(),
    ));
    let store = Arc::new(SqliteStore::open(&dir.path().join("p.db"), clock.clone()).unwrap());
    let reads_without_lsn = lsn_only_in_feed(store.clone());
    let ctx = AppContext::standalone(reads_without_lsn, clock.clone(), dir.path());
    let mut cursors = vec![0usize; scenario.executions.len()];
    let mut versions = Vec::new();
    let mut turn = 0;
    loop {
        let pending: Vec<usize> = (0..scenario.executions.len())
            .filter(|i| cursors[*i] < scenario.executions[*i].states.len())
            .collect();
        if pending.is_empty() {
            break;
        }
        let pick = pending
            [scenario.write_order[turn % scenario.write_order.len()] as usize % pending.len()];
        turn += 1;
        let execution = &scenario.executions[pick];
        let doc = document(pick, execution, &execution.states[cursors[pick]]);
        cursors[pick] += 1;
        // One write per second: versions differ in `_ts` as well as `_lsn`.
        clock.advance_secs(1);
        let written = store
            .upsert(Container::Executions, doc, None)
            .await
            .unwrap();
        versions.push(written.body);
    }
    World {
        _dir: dir,
        ctx,
        versions,
    }
}

/// The deliveries: every version, some twice, in a scenario-chosen order, minus `lost` ones.
fn deliveries(scenario: &Scenario, versions: &[Value], lose: bool) -> Vec<Value> {
    let mut all: Vec<Value> = versions.to_vec();
    for d in &scenario.duplicates {
        all.push(versions[d % versions.len()].clone());
    }
    let mut keyed: Vec<(u32, usize, Value)> = all
        .into_iter()
        .enumerate()
        .map(|(i, v)| (scenario.shuffle[i % scenario.shuffle.len()], i, v))
        .collect();
    keyed.sort_by_key(|(key, i, _)| (*key, *i));
    let mut out: Vec<Value> = keyed.into_iter().map(|(_, _, v)| v).collect();
    if lose && !out.is_empty() {
        let mut lost: Vec<usize> = scenario.lost.iter().map(|l| l % out.len()).collect();
        lost.sort_unstable();
        lost.dedup();
        for index in lost.into_iter().rev() {
            out.remove(index);
        }
    }
    out
}

/// Splits deliveries into batches and runs them on `handlers` concurrent handler instances.
async fn process(ctx: &AppContext, scenario: &Scenario, deliveries: Vec<Value>) {
    let mut batches: Vec<Vec<Value>> = Vec::new();
    let mut rest = deliveries.as_slice();
    let mut i = 0;
    while !rest.is_empty() {
        let size = scenario.batch_sizes[i % scenario.batch_sizes.len()].min(rest.len());
        batches.push(rest[..size].to_vec());
        rest = &rest[size..];
        i += 1;
    }
    let mut lanes: Vec<Vec<Vec<Value>>> = vec![Vec::new(); scenario.handlers];
    for (i, batch) in batches.into_iter().enumerate() {
        lanes[i % scenario.handlers].push(batch);
    }
    let tasks = lanes.into_iter().map(|lane| {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            for batch in lane {
                // A failed invocation is redelivered by the host's retry policy: same here.
                let mut attempts = 0;
                let held = crate::runtime::batch::TestBatch::of(&batch);
                let documents = held.documents();
                while MetricsAggregate
                    .handle(&ctx, &crate::runtime::Batch::new(&documents, 0))
                    .await
                    .is_err()
                {
                    attempts += 1;
                    assert!(attempts < 5, "batch kept failing");
                }
            }
        })
    });
    for task in tasks {
        task.await.unwrap();
    }
}

async fn assert_equal_to_live(ctx: &AppContext) -> Result<(), TestCaseError> {
    for scope in SCOPES {
        for day in DAYS {
            let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
            let live = live_aggregate(ctx.store.as_ref(), scope, date)
                .await
                .unwrap();
            let stored = ctx
                .store
                .read(Container::Entities, scope, &MetricsDoc::id_for(day))
                .await
                .unwrap()
                .map(|d| serde_json::from_value::<MetricsDoc>(d.body).unwrap())
                .unwrap_or_else(|| summary::empty(scope, day));
            prop_assert!(
                summary::same_metrics(&stored, &live),
                "{scope} {day}\nstored {stored:?}\nlive   {live:?}"
            );
        }
    }
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Duplicates, reordering, status changes, retries and concurrent handlers: the change-feed
    /// aggregation alone keeps every daily document equal to the live aggregate.
    #[test]
    fn aggregation_equals_the_live_aggregate(scenario in scenario()) {
        runtime().block_on(async {
            let world = write_all(&scenario).await;
            let deliveries = deliveries(&scenario, &world.versions, false);
            process(&world.ctx, &scenario, deliveries).await;
            assert_equal_to_live(&world.ctx).await
        })?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Lost batches leave documents wrong; one reconciliation per day repairs them.
    #[test]
    fn reconciliation_repairs_lost_batches(scenario in scenario()) {
        runtime().block_on(async {
            let world = write_all(&scenario).await;
            let lossy = deliveries(&scenario, &world.versions, true);
            process(&world.ctx, &scenario, lossy).await;
            reconcile_all(&world.ctx).await;
            assert_equal_to_live(&world.ctx).await?;
            // And the aggregation stays right after a repair: redeliver everything once more.
            let again = deliveries(&scenario, &world.versions, false);
            process(&world.ctx, &scenario, again).await;
            assert_equal_to_live(&world.ctx).await
        })?;
    }
}

/// Reconciles every day of every scope (what one rollup pass does for recent days).
async fn reconcile_all(ctx: &AppContext) {
    let now = ctx.clock.now();
    for scope in SCOPES {
        for day in DAYS {
            let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
            // A conflict-exhausted pass is retried, as the next hourly run would.
            while reconcile_day(ctx.store.as_ref(), now, scope, date)
                .await
                .is_err()
            {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// The rollup running while the change feed is being processed never undoes a newer
    /// version the feed applied: with no delivery lost, the result is exact without any
    /// further repair.
    #[test]
    fn reconciliation_racing_the_change_feed_never_breaks_it(scenario in scenario()) {
        runtime().block_on(async {
            let world = write_all(&scenario).await;
            let deliveries = deliveries(&scenario, &world.versions, false);
            let feed = process(&world.ctx, &scenario, deliveries);
            let rollup = reconcile_all(&world.ctx);
            tokio::join!(feed, rollup);
            assert_equal_to_live(&world.ctx).await
        })?;
    }
}
