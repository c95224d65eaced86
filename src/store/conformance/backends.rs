//! The backends the suite runs on, each a fresh, empty store per check: SQLite in a temporary
//! directory on a `ManualClock`; the Cosmos backend on the in-memory emulator; and on a real
//! account when `COSMOS_ENDPOINT` and `COSMOS_KEY` are set (otherwise `open` prints why not).

use std::any::Any;
use std::sync::Arc;

use tokio::runtime::{Builder, Runtime};

use crate::clock::ManualClock;
use crate::model::Timestamp;
use crate::store::cosmos::{testing as cosmos, CosmosSettings};
use crate::store::sqlite::SqliteStore;
use crate::store::Store;

pub(super) trait Backend {
    /// The fewest runtime worker threads every check needs on this backend (1: current-thread).
    const THREADS: usize;

    /// A fresh, empty store, or `None` (with the reason printed) where this backend is not
    /// available.
    async fn open() -> Option<Subject>;
}

/// A store under test and what it needs kept alive for, or cleaned up after, the check.
pub(super) struct Subject {
    store: Arc<dyn Store>,
    /// The clock the store reads, where the test may move it.
    clock: Option<Arc<ManualClock>>,
    /// Alive until the check is done: the store's directory, its emulator.
    _alive: Box<dyn Any>,
    /// A real account's database of this check, dropped once the check has passed.
    database: Option<CosmosSettings>,
}

impl Subject {
    pub(super) fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    pub(super) fn clock(&self) -> &ManualClock {
        self.clock
            .as_deref()
            .expect("this backend's clock is not the test's to move")
    }

    pub(super) async fn close(self) {
        if let Some(settings) = &self.database {
            cosmos::drop_database(settings).await;
        }
    }
}

/// The runtime of one check on backend `B`: `#[tokio::test]`'s, current-thread for one thread,
/// else multi-thread with that many workers (the most of `B::THREADS` and what the check needs).
pub(super) fn runtime<B: Backend>(check_needs: &[usize]) -> Runtime {
    let threads = check_needs.iter().fold(B::THREADS, |most, n| most.max(*n));
    let mut builder = if threads <= 1 {
        Builder::new_current_thread()
    } else {
        let mut builder = Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    builder.enable_all().build().expect("a test runtime")
}

pub(super) struct Sqlite;

impl Backend for Sqlite {
    const THREADS: usize = 1;

    async fn open() -> Option<Subject> {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(
            Timestamp::parse("2025-01-01T00:00:00Z").unwrap(),
        ));
        let store = SqliteStore::open(&dir.path().join("t.db"), clock.clone()).unwrap();
        Some(Subject {
            store: Arc::new(store),
            clock: Some(clock),
            _alive: Box::new(dir),
            database: None,
        })
    }
}

pub(super) struct CosmosEmulator;

impl Backend for CosmosEmulator {
    /// The emulator's server runs on the test's runtime, beside the SDK's requests.
    const THREADS: usize = 2;

    async fn open() -> Option<Subject> {
        let (emulator, store) = cosmos::emulated().await;
        Some(Subject {
            store,
            clock: None,
            _alive: Box::new(emulator),
            database: None,
        })
    }
}

pub(super) struct CosmosAccount;

impl Backend for CosmosAccount {
    const THREADS: usize = 2;

    async fn open() -> Option<Subject> {
        let (store, settings) = cosmos::real_account().await?;
        Some(Subject {
            store,
            clock: None,
            _alive: Box::new(()),
            database: Some(settings),
        })
    }
}
