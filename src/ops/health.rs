//! `GET /api/health`: is the process up, can it reach its store and its real-time transport
//! (SignalR), and how far behind is each change-feed function: per function the batches and
//! documents seen, the last batch's size and lag (newest `_ts` to processing), and in serve mode
//! the changes still pending behind the checkpoint.

use std::collections::BTreeMap;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Serialize;

use crate::model::Timestamp;
use crate::runtime::{AppContext, HttpHandler, HttpRequest, HttpResponse, Operation, PumpStatus};
use crate::store::Container;

pub struct Health;

/// The answer of `GET /api/health`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    /// `ok`, or `degraded` when the store or the real-time transport fails.
    pub status: String,
    pub version: String,
    /// `serve` or `handler`.
    pub mode: String,
    pub started_at: Timestamp,
    pub now: Timestamp,
    pub store: StoreHealth,
    /// The real-time sink: `signalr`, `none`, `console`, `journal`, …
    pub realtime: String,
    #[serde(rename = "signalR")]
    pub signal_r: SignalRHealth,
    /// Per change-feed function.
    pub change_feed: BTreeMap<String, ChangeFeedHealth>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreHealth {
    /// `sqlite` or `cosmos`.
    pub backend: String,
    /// `ok` or `error`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Request units this process has spent (Cosmos DB only; null on SQLite).
    pub request_units: Option<f64>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignalRHealth {
    pub sink: String,
    /// `ok`, `error`, or `disabled` when no transport is configured.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeFeedHealth {
    #[serde(flatten)]
    pub pump: PumpStatus,
    /// Changes behind the checkpoint (serve mode on SQLite; null elsewhere).
    pub pending_changes: Option<u64>,
}

#[async_trait]
impl HttpHandler for Health {
    async fn handle(&self, ctx: &AppContext, _request: HttpRequest) -> HttpResponse {
        // A point read of a document that never exists: proves the store answers, costs ~1 RU.
        let probe = ctx
            .store
            .read(Container::Leases, "health-probe", "health-probe")
            .await;
        let store = StoreHealth {
            backend: ctx.store.backend().to_owned(),
            status: if probe.is_ok() { "ok" } else { "error" }.to_owned(),
            error: probe.err().map(|e| e.to_string()),
            request_units: ctx.store.request_units(),
        };
        let store_ok = store.error.is_none();

        let mut change_feed = BTreeMap::new();
        for (function, pump) in ctx.status.pumps() {
            let pending_changes = match (Container::from_name(&pump.container), &pump.continuation)
            {
                (Some(container), Some(position)) => ctx
                    .store
                    .pending_changes(container, position)
                    .await
                    .ok()
                    .flatten(),
                _ => None,
            };
            change_feed.insert(
                function,
                ChangeFeedHealth {
                    pump,
                    pending_changes,
                },
            );
        }

        let sink = ctx.sink.name();
        let signal_r = match (sink, ctx.sink.probe().await) {
            ("none", _) => SignalRHealth {
                sink: sink.to_owned(),
                status: "disabled".to_owned(),
                error: None,
            },
            (_, Ok(())) => SignalRHealth {
                sink: sink.to_owned(),
                status: "ok".to_owned(),
                error: None,
            },
            (_, Err(e)) => SignalRHealth {
                sink: sink.to_owned(),
                status: "error".to_owned(),
                error: Some(e.to_string()),
            },
        };
        let signalr_ok = signal_r.status != "error";

        // Only a dead store makes the instance unhealthy (503); a failing SignalR degrades live
        // updates but clients can still poll.
        let status = if store_ok && signalr_ok {
            "ok"
        } else {
            "degraded"
        };
        HttpResponse::json(
            if store_ok { 200 } else { 503 },
            &HealthReport {
                status: status.to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                mode: ctx.status.mode.to_owned(),
                started_at: ctx.status.started_at,
                now: ctx.clock.now(),
                store,
                realtime: sink.to_owned(),
                signal_r,
                change_feed,
            },
        )
    }

    fn operation(&self) -> Operation {
        Operation::new("ops", "Health")
            .description("No principal needed. 503 only when the store does not answer; a failing SignalR transport is `degraded` with 200, since clients can still poll.")
            .ok::<HealthReport>("The process, its store, its real-time transport and its change-feed functions.")
            .response::<HealthReport>(503, "The store does not answer (the same report, `store.status` = error).")
    }
}
