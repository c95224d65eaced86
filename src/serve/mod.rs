//! Standalone mode: the registry's functions driven by this process — change-feed pumps over the
//! store, a scheduler for timers, and the HTTP functions under `/api` — with the live web
//! console at `/` (and its dev sign-in), and graceful shutdown.

pub mod api;
mod checkpoint;
pub mod console;
pub mod cors;
pub mod dev_sign_in;
pub mod hub;
pub mod pump;
pub mod scheduler;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::future::{BoxFuture, FutureExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::realtime::{ConsoleSink, MessageSink, SinkTarget, TeeSink, HUB};
use crate::registry;
use crate::runtime::config::RuntimeConfig;
use crate::runtime::function::{FunctionSpec, Trigger, CHANGE_FEED_RETRY};
use crate::runtime::shutdown::sleep_unless_shutdown;
use crate::runtime::{AppContext, Handler};
use crate::simulate::{self, SimulateOptions};
use dev_sign_in::{DevIdentity, DevSignIn};
use hub::{Hub, HubLimits, HubSink};

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
    /// Also print every real-time message's logs on stdout (the demo).
    pub echo_to_stdout: bool,
    /// The console's dev sign-in (off when serve sits behind real authentication).
    pub dev_sign_in: bool,
    /// Browser origins allowed to call the API and the hub across origins (empty: the loopback
    /// development servers).
    pub cors_origins: Vec<cors::Origin>,
}

/// Binds `--listen`, builds the app and serves until SIGINT/SIGTERM.
pub async fn run(options: ServeOptions) -> anyhow::Result<()> {
    let listener = TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    let app = App::build(options, address).await?;
    app.run(listener, crate::runtime::shutdown::wait_for_signal())
        .await
}

/// Serve mode assembled but not yet running: the context the functions share, the HTTP router
/// (API, and the hub when it is the real-time target) and the background work (pumps,
/// scheduler, purge, demo). The composition root: `run` binds nothing and a test can build an
/// app on a listener of its own.
pub struct App {
    pub address: SocketAddr,
    pub ctx: AppContext,
    router: axum::Router,
    functions: Vec<FunctionSpec>,
    /// The built-in hub, when it is the real-time target (its routes are in `router`).
    hub: Option<Hub>,
    demo: Option<SimulateOptions>,
    dev_sign_in: bool,
}

impl App {
    /// Opens the store and the real-time sink. `address` is where clients reach this process
    /// (the built-in hub's endpoint and negotiate URLs point there).
    pub async fn build(options: ServeOptions, address: SocketAddr) -> anyhow::Result<App> {
        // The built-in hub lives on this listener. The functions deliver to it in process
        // (`HubSink`, the operations its REST routes call), not over loopback HTTP as they would
        // to Azure SignalR Service: that loopback was about 29% of serve's CPU at 1000 logs/s.
        let hub = (options.config.realtime == SinkTarget::BuiltInHub)
            .then(|| Hub::new(&local_endpoint(address), HubLimits::default()));
        let hub_sink = hub
            .clone()
            .map(|hub| Arc::new(HubSink::new(hub, HUB)) as Arc<dyn MessageSink>);
        let mut ctx = options
            .config
            .open_context_with_sink("serve", hub_sink)
            .await?;
        if options.echo_to_stdout {
            ctx.sink = Arc::new(TeeSink::new(ctx.sink.clone(), Arc::new(ConsoleSink)));
        }
        let functions = registry::registry();
        // Every browser that opens the console starts as a platform admin (it can switch).
        let dev = options
            .dev_sign_in
            .then(|| DevSignIn::new(ctx.clone(), DevIdentity::PlatformAdmin));
        if dev.is_some() && !address.ip().is_loopback() {
            tracing::warn!(%address, "dev sign-in is on and serve listens beyond this machine: anyone who can reach it may sign in as a platform admin (use --auth proxy behind real authentication)");
        }
        let mut router =
            api::router(ctx.clone(), &functions).merge(console::router(ctx.clone(), dev.clone()));
        if let Some(hub) = hub.clone() {
            router = router.merge(hub.router());
        }
        if let Some(dev) = dev {
            router = router.layer(axum::middleware::from_fn_with_state(
                dev,
                dev_sign_in::layer,
            ));
        }
        let router = cors::apply(router, &cors::allowed_or_default(&options.cors_origins));
        Ok(App {
            address,
            ctx,
            router,
            functions,
            hub,
            demo: options.demo,
            dev_sign_in: options.dev_sign_in,
        })
    }

    /// Prepares the background work (each pump reads its checkpoint: a store that cannot be read
    /// stops the start here), announces the address, then starts that work and serves `listener`
    /// until `shutdown` completes; then gives in-flight batches `SHUTDOWN_GRACE` to finish. The
    /// `listening on` line is printed once everything is ready and before anything runs that
    /// could write to stdout (the demo's echo: delivery to the built-in hub is in process, so a
    /// batch can be echoed within microseconds of its pump starting).
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let App {
            address,
            ctx,
            router,
            functions,
            hub,
            demo,
            dev_sign_in,
        } = self;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut background = function_tasks(&ctx, &functions, &shutdown_rx).await?;
        background.push(purge_task(&ctx, &shutdown_rx)?);
        let is_demo = demo.is_some();
        if let Some(demo) = demo {
            background.push(demo_task(&ctx, demo, shutdown_rx.clone()));
        }
        // The first stdout line is a contract: scripts and tests read the address from it. The
        // second says where to look.
        {
            let console = format!("{}/", local_endpoint(address));
            let who = if dev_sign_in {
                "signed in as a platform admin; switch identity on the page"
            } else {
                "signed in by the authentication in front of serve"
            };
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on http://{address}")?;
            if is_demo {
                writeln!(
                    out,
                    "open {console} to watch the demo executions stream ({who})"
                )?;
            } else {
                writeln!(out, "console: {console} ({who})")?;
            }
            out.flush()?;
        }
        let mut tasks = JoinSet::new();
        for task in background {
            tasks.spawn(task);
        }
        tracing::info!(%address, realtime = ctx.sink.name(), "serve mode started");

        let mut server_shutdown = shutdown_rx.clone();
        let server = crate::runtime::server::serve(
            listener,
            router,
            crate::runtime::server::ServerLimits::default(),
            async move {
                let _ = server_shutdown.wait_for(|stop| *stop).await;
                // The hub goes when the listener goes, as it did when the functions reached it
                // over HTTP: a batch still sending now fails and is redelivered at the next start.
                if let Some(hub) = hub {
                    hub.shut_down();
                }
            },
        );
        let signals = tokio::spawn(async move {
            shutdown.await;
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

/// Background work, made but not yet running.
type Task = BoxFuture<'static, ()>;

async fn function_tasks(
    ctx: &AppContext,
    functions: &[FunctionSpec],
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<Task>> {
    let mut tasks = Vec::new();
    for spec in functions {
        match (&spec.trigger, &spec.handler) {
            (Trigger::CosmosDb(trigger), Handler::Batch(handler)) => {
                let pump = pump::Pump {
                    function: spec.name,
                    container: trigger.container,
                    handler: handler.clone(),
                    retry: spec.retry.unwrap_or(CHANGE_FEED_RETRY),
                    poll_interval: Duration::from_millis(u64::from(trigger.feed_poll_delay_ms)),
                    max_items: trigger.max_items_per_invocation as usize,
                };
                let position = pump
                    .load_position(ctx)
                    .await
                    .with_context(|| format!("reading the checkpoint of {}", spec.name))?;
                let span = tracing::info_span!("pump", function = spec.name);
                tasks.push(
                    pump.run(ctx.clone(), position, shutdown.clone())
                        .instrument(span)
                        .boxed(),
                );
            }
            (Trigger::Timer(trigger), Handler::Timer(handler)) => {
                let schedule: scheduler::Schedule = trigger.schedule.parse()?;
                let (ctx, handler, name) = (ctx.clone(), handler.clone(), spec.name);
                tasks.push(scheduler::run(name, schedule, shutdown.clone(), move |timer| {
                    let (ctx, handler) = (ctx.clone(), handler.clone());
                    async move {
                        match handler.handle(&ctx, timer).await {
                            Ok(logs) => logs.iter().for_each(|l| tracing::info!(function = name, "{l}")),
                            Err(e) => tracing::error!(function = name, error = %e, "timer function failed"),
                        }
                    }
                }).boxed());
            }
            _ => {}
        }
    }
    Ok(tasks)
}

fn purge_task(ctx: &AppContext, shutdown: &watch::Receiver<bool>) -> anyhow::Result<Task> {
    let schedule: scheduler::Schedule = PURGE_SCHEDULE.parse()?;
    let store = ctx.store.clone();
    Ok(
        scheduler::run("purge-expired", schedule, shutdown.clone(), move |_| {
            let store = store.clone();
            async move {
                match store.purge_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(documents = n, "expired documents removed"),
                    Err(e) => tracing::warn!(error = %e, "purging expired documents failed"),
                }
            }
        })
        .boxed(),
    )
}

fn demo_task(
    ctx: &AppContext,
    options: SimulateOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Task {
    let ctx = ctx.clone();
    async move {
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
            if sleep_unless_shutdown(&mut shutdown, Duration::from_secs(2)).await {
                return;
            }
        }
    }
    .boxed()
}
