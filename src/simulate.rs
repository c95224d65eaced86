//! A stand-in for the workflow engine: writes executions and their log, variables, state and
//! result documents to the store at a given log rate, the way the engine does (execution created
//! `Running`, logs with gap-free sequences, terminal status last).

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::model::{
    ExecutionDoc, ExecutionDocType, ExecutionStatus, LogDoc, ResultDoc, Scope, StateDoc,
    VariablesDoc,
};
use crate::store::{Container, Store, StoreError};

#[derive(Debug, Clone)]
pub struct SimulateOptions {
    pub executions: u32,
    pub logs_per_execution: u32,
    /// Log documents per second across all executions; 0 = as fast as the store takes them.
    pub rate: f64,
    /// At most this many documents per store transaction: the logs due at that moment (and the
    /// variables snapshots among them). 1 writes each log alone.
    pub batch: usize,
    pub scope: Scope,
    pub workflow_name: String,
    pub executed_by: String,
}

/// A variables snapshot every this many logs of an execution.
const VARIABLES_EVERY: u32 = 25;
const LEVELS: [&str; 4] = ["info", "info", "debug", "warning"];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimulateReport {
    pub execution_ids: Vec<String>,
    pub logs_written: u64,
}

fn to_value<T: serde::Serialize>(doc: &T) -> serde_json::Value {
    serde_json::to_value(doc).unwrap_or_default()
}

/// Runs the executions concurrently (their logs interleaved round-robin), calling
/// `on_execution` with each id as it starts.
pub async fn run(
    store: &dyn Store,
    clock: &dyn Clock,
    options: &SimulateOptions,
    on_execution: impl FnMut(&str),
) -> Result<SimulateReport, StoreError> {
    run_gated(store, clock, options, on_execution, std::future::ready(())).await
}

/// `run`, but the logs start only once `gate` completes (after every execution exists), so a
/// test can subscribe to the executions before their first log is written.
pub async fn run_gated(
    store: &dyn Store,
    clock: &dyn Clock,
    options: &SimulateOptions,
    mut on_execution: impl FnMut(&str),
    gate: impl std::future::Future<Output = ()>,
) -> Result<SimulateReport, StoreError> {
    let mut executions = Vec::new();
    for index in 0..options.executions {
        let id = uuid::Uuid::new_v4().to_string();
        let doc = ExecutionDoc {
            id: id.clone(),
            doc_type: ExecutionDocType::Execution,
            scope: options.scope.clone(),
            execution_id: id.clone(),
            workflow_name: options.workflow_name.clone(),
            form_id: None,
            executed_by: options.executed_by.clone(),
            executed_by_name: options
                .executed_by
                .split('@')
                .next()
                .unwrap_or_default()
                .to_owned(),
            status: ExecutionStatus::Running,
            input_data: json!({ "simulated": true, "index": index }),
            duration_ms: None,
            started_at: clock.now(),
            completed_at: None,
            error_message: None,
            result_in_blob: false,
            ttl: None,
        };
        store
            .upsert(Container::Executions, to_value(&doc), None)
            .await?;
        on_execution(&id);
        executions.push(doc);
    }

    gate.await;
    let started = Instant::now();
    let mut written: u64 = 0;
    // Round-robin: sequence 1 of every execution, then sequence 2, …
    let total = u64::from(options.logs_per_execution) * executions.len() as u64;
    let batch = options.batch.max(1) as u64;
    while written < total {
        let take = if options.rate > 0.0 {
            let due = started + Duration::from_secs_f64(written as f64 / options.rate);
            tokio::time::sleep_until(due).await;
            // Everything due by now, so a slow write never lowers the rate.
            let due_by_now = (started.elapsed().as_secs_f64() * options.rate).floor() as u64 + 1;
            due_by_now.saturating_sub(written).clamp(1, batch)
        } else {
            batch
        }
        .min(total - written);
        // One time for the whole transaction: each log is stamped just before its write.
        let now = clock.now();
        let mut documents = Vec::with_capacity(take as usize);
        for index in written..written + take {
            let execution = &executions[(index % executions.len() as u64) as usize];
            let sequence = (index / executions.len() as u64) as u32 + 1;
            let log = LogDoc {
                id: LogDoc::id_for(&execution.id, u64::from(sequence)),
                execution_id: execution.id.clone(),
                timestamp: now,
                level: LEVELS[sequence as usize % LEVELS.len()].to_owned(),
                message: format!("step {sequence} of {}", options.logs_per_execution),
                data: Some(json!({ "step": sequence })),
                sequence: u64::from(sequence),
                ttl: None,
            };
            documents.push(tagged("log", &log));
            if sequence % VARIABLES_EVERY == 0 {
                let version = u64::from(sequence / VARIABLES_EVERY);
                let variables = VariablesDoc {
                    id: VariablesDoc::id_for(version),
                    execution_id: execution.id.clone(),
                    timestamp: now,
                    version,
                    variables: json!({ "completedSteps": sequence }),
                    ttl: None,
                };
                documents.push(tagged("variables", &variables));
            }
        }
        store
            .upsert_all(Container::ExecutionData, documents)
            .await?;
        written += take;
    }

    let execution_ids = executions.iter().map(|e| e.id.clone()).collect();
    for (index, mut execution) in executions.into_iter().enumerate() {
        let now = clock.now();
        let failed = index % 10 == 9;
        let result = ResultDoc {
            id: ResultDoc::ID.to_owned(),
            execution_id: execution.id.clone(),
            timestamp: now,
            result: Some(json!({ "success": !failed, "logs": options.logs_per_execution })),
            result_type: "json".to_owned(),
            result_size: 40,
            blob_ref: None,
            ttl: None,
        };
        store
            .upsert(Container::ExecutionData, tagged("result", &result), None)
            .await?;
        let state = StateDoc {
            id: "state".to_owned(),
            execution_id: execution.id.clone(),
            timestamp: now,
            version: 1,
            state: json!({ "phase": "finished" }),
            ttl: None,
        };
        store
            .upsert(Container::ExecutionData, tagged("state", &state), None)
            .await?;
        execution.status = if failed {
            ExecutionStatus::Failed
        } else {
            ExecutionStatus::Success
        };
        execution.error_message = failed.then(|| "simulated failure".to_owned());
        execution.duration_ms =
            Some((now.epoch_millis() - execution.started_at.epoch_millis()).max(0));
        execution.completed_at = Some(now);
        store
            .upsert(Container::Executions, to_value(&execution), None)
            .await?;
    }

    Ok(SimulateReport {
        execution_ids,
        logs_written: written,
    })
}

/// Adds the `type` discriminator the typed sub-documents leave to `ExecutionDataDoc`.
fn tagged<T: serde::Serialize>(kind: &str, doc: &T) -> serde_json::Value {
    let mut value = to_value(doc);
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("type".to_owned(), json!(kind));
    }
    value
}
