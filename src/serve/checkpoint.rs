//! A pump's checkpoint in the `leases` container: read once at start, then saved off the pump's
//! path. The pump hands each new continuation to a `Saver` and goes on reading; the saver's task
//! writes the latest one it was handed, so continuations handed over while a write is under way
//! are folded into the next (only the last matters). A pump that waited for each save waited for
//! SQLite's write lock whenever another process (`simulate`) held it, and its next batch, with the
//! live logs in it, waited with it.
//!
//! After a write the saver rests for `SAVE_SPACING`, so a pump woken by every commit of a
//! writer that commits a log at a time (1,000 commits a second in the live-log bench) costs a
//! checkpoint write ten times a second, not a thousand: a profile of `serve` at 1,000 logs/s
//! had 13% of its CPU in these writes. A crash then redelivers up to that much more (the
//! Functions host's Cosmos trigger offers the same trade as its checkpoint interval).
//!
//! Nothing is skipped: a continuation is only ever handed over after its batch succeeded or was
//! dead-lettered, and a crash before a save redelivers from the last saved one (at-least-once).

use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::runtime::shutdown::sleep_unless_shutdown;
use crate::runtime::{AppContext, FailureKind};
use crate::store::{string_field, Container, FeedPosition, StoreError};

/// The least time between two writes of one pump's checkpoint.
const SAVE_SPACING: std::time::Duration = std::time::Duration::from_millis(100);

/// How long to wait after a failed save before trying again.
const RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

fn checkpoint_id(function: &str) -> String {
    format!("serve-{function}")
}

/// Where `function`'s feed continues: its saved checkpoint, or the beginning on first start.
pub async fn load(ctx: &AppContext, function: &str) -> Result<FeedPosition, StoreError> {
    let id = checkpoint_id(function);
    let saved = ctx.store.read(Container::Leases, &id, &id).await?;
    Ok(saved
        .as_ref()
        .and_then(|doc| string_field(&doc.body, "continuation"))
        .map(|c| FeedPosition::Continuation(c.to_owned()))
        // First start: process everything already in the store.
        .unwrap_or(FeedPosition::Beginning))
}

async fn save(
    ctx: &AppContext,
    function: &str,
    container: Container,
    continuation: &str,
) -> Result<(), StoreError> {
    let id = checkpoint_id(function);
    let doc = json!({
        "id": id,
        "type": "checkpoint",
        "functionName": function,
        "container": container.name(),
        "continuation": continuation,
        "updatedAt": ctx.clock.now(),
    });
    ctx.store
        .upsert(Container::Leases, doc, None)
        .await
        .map(|_| ())
}

/// Saves one pump's checkpoint in the background (see the module).
pub struct Saver {
    latest: watch::Sender<Option<String>>,
    task: JoinHandle<()>,
}

impl Saver {
    /// Starts the saver of `function`'s checkpoint, `saved` being what the store holds now.
    pub fn start(
        ctx: AppContext,
        function: &'static str,
        container: Container,
        saved: Option<String>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let (latest, handed_over) = watch::channel(saved.clone());
        let task = tokio::spawn(save_each_latest(
            ctx,
            function,
            container,
            saved,
            handed_over,
            shutdown,
        ));
        Saver { latest, task }
    }

    /// Hands over the continuation past the batches done so far, to be saved.
    pub fn save(&self, continuation: &str) {
        // A page with nothing new hands over the same continuation: no copy, no wake-up.
        self.latest.send_if_modified(|latest| {
            let changed = latest.as_deref() != Some(continuation);
            if changed {
                *latest = Some(continuation.to_owned());
            }
            changed
        });
    }

    /// Saves what was handed over last, then stops; gives up only on shutdown while the store
    /// refuses the write (the checkpoint then stays behind: the batches come again).
    pub async fn finish(self) {
        drop(self.latest);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the checkpoint saver panicked");
        }
    }
}

async fn save_each_latest(
    ctx: AppContext,
    function: &'static str,
    container: Container,
    mut saved: Option<String>,
    mut handed_over: watch::Receiver<Option<String>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        // After the pump is done (the sender dropped), what it handed over last is still saved.
        let pump_done = handed_over.changed().await.is_err();
        // The latest each time round: what was handed over during a write (or a failing one's
        // pause) is saved next, in place of what the write was for.
        loop {
            let latest = handed_over.borrow_and_update().clone();
            let Some(continuation) = latest.filter(|latest| saved.as_ref() != Some(latest)) else {
                break;
            };
            match save(&ctx, function, container, &continuation).await {
                Ok(()) => {
                    ctx.status
                        .succeeded(function, FailureKind::Checkpoint, ctx.clock.now());
                    ctx.status
                        .advanced(function, Some(continuation.clone()), ctx.clock.now());
                    saved = Some(continuation);
                    // At shutdown the rest is cut short: what was handed over last is saved now.
                    sleep_unless_shutdown(&mut shutdown, SAVE_SPACING).await;
                }
                Err(e) => {
                    // Keep trying: a pump whose checkpoint cannot be written is better visible
                    // in health than silently redoing work after the next start.
                    tracing::warn!(function, error = %e, "saving the checkpoint failed; retrying");
                    ctx.status.failed(
                        function,
                        FailureKind::Checkpoint,
                        &format!("saving the checkpoint failed: {e}"),
                        ctx.clock.now(),
                    );
                    if sleep_unless_shutdown(&mut shutdown, RETRY_DELAY).await {
                        return;
                    }
                }
            }
        }
        if pump_done {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::clock::SystemClock;
    use crate::store::sqlite::SqliteStore;
    use crate::store::wrapped::Wrapped;

    const FUNCTION: &str = "LogStream";

    static FAILING: AtomicBool = AtomicBool::new(false);
    /// `leases` writes let through.
    static WRITES: AtomicUsize = AtomicUsize::new(0);

    /// A store whose `leases` writes fail while `FAILING` is set, and are counted otherwise.
    fn context(dir: &std::path::Path) -> AppContext {
        let clock = Arc::new(SystemClock);
        let store = Arc::new(SqliteStore::open(&dir.join("c.db"), clock.clone()).unwrap());
        let store = Wrapped {
            before_write: Arc::new(|container, _| match container {
                Container::Leases if FAILING.load(Ordering::SeqCst) => {
                    Err(StoreError::Unavailable("injected".into()))
                }
                Container::Leases => {
                    WRITES.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
                _ => Ok(()),
            }),
            ..Wrapped::new(store)
        };
        AppContext::standalone(Arc::new(store), clock, dir)
    }

    async fn saved(ctx: &AppContext) -> FeedPosition {
        load(ctx, FUNCTION).await.unwrap()
    }

    async fn until_saved(ctx: &AppContext, continuation: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let wanted = FeedPosition::Continuation(continuation.to_owned());
        while saved(ctx).await != wanted {
            assert!(Instant::now() < deadline, "{continuation} never saved");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// One test, since `FAILING` and `WRITES` are shared: writes spaced however often the pump
    /// hands over, saving the latest, through a failing store and back, and a shutdown that
    /// gives up on a store that still fails.
    #[tokio::test]
    async fn the_latest_continuation_is_saved_spaced_through_failures_and_shutdown_does_not_wait_on_them(
    ) {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path());
        let (stop, shutdown) = watch::channel(false);

        assert_eq!(saved(&ctx).await, FeedPosition::Beginning);
        let saver = Saver::start(
            ctx.clone(),
            FUNCTION,
            Container::ExecutionData,
            None,
            shutdown.clone(),
        );
        // A pump handing over every 5 ms for 0.5 s: a write per `SAVE_SPACING` (and the first).
        let started = Instant::now();
        for continuation in 1..=100 {
            saver.save(&continuation.to_string());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let most = started.elapsed().as_millis() / SAVE_SPACING.as_millis() + 2;
        for continuation in ["101", "102", "103"] {
            saver.save(continuation);
        }
        saver.finish().await;
        let writes = WRITES.load(Ordering::SeqCst);
        assert!(
            (2..=most as usize).contains(&writes),
            "{writes} checkpoint writes over {:?}",
            started.elapsed()
        );
        assert_eq!(saved(&ctx).await, FeedPosition::Continuation("103".into()));
        assert_eq!(
            ctx.status.pumps()[FUNCTION].continuation.as_deref(),
            Some("103")
        );

        // Failing: the save is retried, with what was handed over meanwhile, once it works.
        let saver = Saver::start(
            ctx.clone(),
            FUNCTION,
            Container::ExecutionData,
            Some("103".into()),
            shutdown,
        );
        FAILING.store(true, Ordering::SeqCst);
        saver.save("4");
        let deadline = Instant::now() + Duration::from_secs(10);
        while ctx.status.pumps()[FUNCTION].last_error.is_none() {
            assert!(
                Instant::now() < deadline,
                "the failure never showed in health"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        saver.save("5");
        FAILING.store(false, Ordering::SeqCst);
        until_saved(&ctx, "5").await;

        // A shutdown while the store fails: finish gives up at once; the checkpoint stays behind
        // and the batches after it come again.
        FAILING.store(true, Ordering::SeqCst);
        saver.save("6");
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), saver.finish())
            .await
            .expect("finish gave up on a failing store at shutdown");
        FAILING.store(false, Ordering::SeqCst);
        assert_eq!(saved(&ctx).await, FeedPosition::Continuation("5".into()));
    }
}
