//! `GET /api/health`: is the process up, can it reach its store and its real-time transport
//! (SignalR), and how far behind is each change-feed function: per function the batches and
//! documents seen, the last batch's size and lag (newest `_ts` to processing), and in serve mode
//! the changes still pending behind the checkpoint.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::json;

use crate::runtime::{AppContext, HttpHandler, HttpRequest, HttpResponse};
use crate::store::Container;

pub struct Health;

#[async_trait]
impl HttpHandler for Health {
    async fn handle(&self, ctx: &AppContext, _request: HttpRequest) -> HttpResponse {
        // A point read of a document that never exists: proves the store answers, costs ~1 RU.
        let store = match ctx
            .store
            .read(Container::Leases, "health-probe", "health-probe")
            .await
        {
            Ok(_) => json!({ "backend": ctx.store.backend(), "status": "ok" }),
            Err(e) => {
                json!({ "backend": ctx.store.backend(), "status": "error", "error": e.to_string() })
            }
        };
        let store_ok = store["status"] == "ok";
        // Request units this process has spent (Cosmos only; `null` on SQLite).
        let mut store = store;
        store["requestUnits"] = json!(ctx.store.request_units());

        let mut pumps = BTreeMap::new();
        for (function, pump) in ctx.status.pumps() {
            let lag = match (Container::from_name(&pump.container), &pump.continuation) {
                (Some(container), Some(position)) => ctx
                    .store
                    .pending_changes(container, position)
                    .await
                    .ok()
                    .flatten(),
                _ => None,
            };
            let mut entry = serde_json::to_value(&pump).unwrap_or_default();
            entry["pendingChanges"] = json!(lag);
            pumps.insert(function, entry);
        }

        let signalr = match (ctx.sink.name(), ctx.sink.probe().await) {
            ("none", _) => json!({ "sink": "none", "status": "disabled" }),
            (sink, Ok(())) => json!({ "sink": sink, "status": "ok" }),
            (sink, Err(e)) => json!({ "sink": sink, "status": "error", "error": e.to_string() }),
        };
        let signalr_ok = signalr["status"] != "error";

        // Only a dead store makes the instance unhealthy (503); a failing SignalR degrades live
        // updates but clients can still poll.
        let status = if store_ok && signalr_ok {
            "ok"
        } else {
            "degraded"
        };
        HttpResponse::json(
            if store_ok { 200 } else { 503 },
            &json!({
                "status": status,
                "version": env!("CARGO_PKG_VERSION"),
                "mode": ctx.status.mode,
                "startedAt": ctx.status.started_at,
                "now": ctx.clock.now(),
                "store": store,
                "realtime": ctx.sink.name(),
                "signalR": signalr,
                "changeFeed": pumps,
            }),
        )
    }
}
