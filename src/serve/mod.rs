//! Standalone mode: the registry's functions driven by this process — change-feed pumps over the
//! store, a scheduler for timers, and the HTTP functions under `/api` — with graceful shutdown.

pub mod api;
mod cors;
pub mod pump;
pub mod scheduler;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::config::RuntimeConfig;
use crate::functions::{AppContext, Handler};
use crate::host::registry::{self, FunctionSpec, Trigger};
use crate::realtime::hub::{Hub, HubLimits};
use crate::realtime::SinkTarget;
use crate::simulate::{self, SimulateOptions};

/// How often serve mode removes expired documents from the embedded store.
const PURGE_SCHEDULE: &str = "0 * * * * *";
/// How long in-flight batches get to finish after SIGINT/SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub config: RuntimeConfig,
    /// Keep writing simulated executions so logs visibly stream.
    pub demo: Option<SimulateOptions>,
}

pub async fn run(options: ServeOptions) -> anyhow::Result<()> {
    let listener = TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    // The first stdout line is a contract: scripts and tests read the address from it.
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{address}")?;
        out.flush()?;
    }

    // The built-in hub lives on this listener; the functions reach it through the same REST
    // sender (and connection string) they would use against Azure SignalR Service.
    let mut config = options.config.clone();
    let hub = (config.realtime == SinkTarget::BuiltInHub).then(|| {
        let hub = Hub::new(&local_endpoint(address), HubLimits::default());
        config.realtime = SinkTarget::SignalR(hub.connection_string().clone());
        hub
    });
    let ctx = config.open_context("serve").await?;
    tracing::info!(%address, store = %options.config.store, realtime = ctx.sink.name(), "serve mode started");

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let functions = registry::registry();
    let mut tasks = JoinSet::new();
    spawn_functions(&mut tasks, &ctx, &functions, &shutdown_rx)?;
    spawn_purge(&mut tasks, &ctx, &shutdown_rx)?;
    if let Some(demo) = options.demo {
        spawn_demo(&mut tasks, &ctx, demo, shutdown_rx.clone());
    }

    let mut app = api::router(ctx.clone(), &functions);
    if let Some(hub) = hub {
        app = app.merge(hub.router());
    }
    let app = app.layer(axum::middleware::from_fn(cors::layer));
    let mut server_shutdown = shutdown_rx.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = server_shutdown.wait_for(|stop| *stop).await;
    });
    let signals = tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested; finishing in-flight work");
        let _ = shutdown_tx.send(true);
    });

    server.await.context("HTTP server failed")?;
    signals.abort();
    if tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!("background tasks did not stop within {SHUTDOWN_GRACE:?}; their batches will be redelivered");
    }
    tracing::info!("stopped");
    Ok(())
}

/// `http://ADDR` as clients and the sender reach it: an unspecified bind address (0.0.0.0, ::)
/// is reached on loopback.
fn local_endpoint(address: SocketAddr) -> String {
    let ip = match address.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => std::net::Ipv4Addr::LOCALHOST.into(),
        ip if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, address.port()))
}

fn spawn_functions(
    tasks: &mut JoinSet<()>,
    ctx: &AppContext,
    functions: &[FunctionSpec],
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    for spec in functions {
        match (&spec.trigger, &spec.handler) {
            (Trigger::CosmosDb(trigger), Handler::Batch(handler)) => {
                let pump = pump::Pump {
                    function: spec.name,
                    container: trigger.container,
                    handler: handler.clone(),
                    retry: spec.retry.unwrap_or(registry::CHANGE_FEED_RETRY),
                    poll_interval: Duration::from_millis(u64::from(trigger.feed_poll_delay_ms)),
                    max_items: trigger.max_items_per_invocation as usize,
                };
                let span = tracing::info_span!("pump", function = spec.name);
                tasks.spawn(pump.run(ctx.clone(), shutdown.clone()).instrument(span));
            }
            (Trigger::Timer(trigger), Handler::Timer(handler)) => {
                let schedule: scheduler::Schedule = trigger.schedule.parse()?;
                let (ctx, handler, name) = (ctx.clone(), handler.clone(), spec.name);
                tasks.spawn(scheduler::run(name, schedule, shutdown.clone(), move |timer| {
                    let (ctx, handler) = (ctx.clone(), handler.clone());
                    async move {
                        match handler.handle(&ctx, timer).await {
                            Ok(logs) => logs.iter().for_each(|l| tracing::info!(function = name, "{l}")),
                            Err(e) => tracing::error!(function = name, error = %e, "timer function failed"),
                        }
                    }
                }));
            }
            _ => {}
        }
    }
    Ok(())
}

fn spawn_purge(
    tasks: &mut JoinSet<()>,
    ctx: &AppContext,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let schedule: scheduler::Schedule = PURGE_SCHEDULE.parse()?;
    let store = ctx.store.clone();
    tasks.spawn(scheduler::run(
        "purge-expired",
        schedule,
        shutdown.clone(),
        move |_| {
            let store = store.clone();
            async move {
                match store.purge_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(documents = n, "expired documents removed"),
                    Err(e) => tracing::warn!(error = %e, "purging expired documents failed"),
                }
            }
        },
    ));
    Ok(())
}

fn spawn_demo(
    tasks: &mut JoinSet<()>,
    ctx: &AppContext,
    options: SimulateOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let ctx = ctx.clone();
    tasks.spawn(async move {
        loop {
            let run = simulate::run(ctx.store.as_ref(), ctx.clock.as_ref(), &options, |id| {
                tracing::info!(execution_id = id, "demo execution started");
            });
            tokio::select! {
                result = run => if let Err(e) = result {
                    tracing::warn!(error = %e, "demo run failed");
                },
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    });
}

/// SIGINT (Ctrl-C) or SIGTERM.
pub async fn wait_for_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
