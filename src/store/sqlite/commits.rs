//! Commit notices for change-feed readers. This process's writes notify at once; another
//! process's (`simulate` writing to the same file) show as a change of `PRAGMA data_version`,
//! which a watcher thread reads every `WATCH_INTERVAL` on a connection of its own: a read of the
//! WAL index in shared memory, no I/O, so an idle store costs a few microseconds per check.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once, Weak};
use std::time::Duration;

use tokio::sync::watch;

use super::schema;

/// How often the watcher looks for other processes' commits: the most they wait to be seen.
pub(super) const WATCH_INTERVAL: Duration = Duration::from_millis(2);

#[derive(Debug)]
pub(super) struct Commits {
    sender: Arc<watch::Sender<u64>>,
    path: PathBuf,
    watcher: Once,
}

impl Commits {
    pub(super) fn new(path: &Path) -> Self {
        Commits {
            sender: Arc::new(watch::Sender::new(0)),
            path: path.to_owned(),
            watcher: Once::new(),
        }
    }

    /// After a commit of this process.
    pub(super) fn committed(&self) {
        self.sender
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// A receiver of commit notices; the first one starts the watcher (stores that nobody reads
    /// a feed of, like `simulate`'s, never run it).
    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.watcher.call_once(|| {
            let sender = Arc::downgrade(&self.sender);
            let path = self.path.clone();
            let spawned = std::thread::Builder::new()
                .name("sqlite-commits".into())
                .spawn(move || watch_other_processes(&path, sender));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot watch the store for other processes' commits; their changes are seen with ours");
            }
        });
        self.sender.subscribe()
    }
}

/// Until the store is gone: notify whenever the file's data version moves.
fn watch_other_processes(path: &Path, sender: Weak<watch::Sender<u64>>) {
    let connection = match schema::open_connection(path, true) {
        Ok(connection) => connection,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the store for other processes' commits");
            return;
        }
    };
    let version = |c: &rusqlite::Connection| {
        c.query_row("PRAGMA data_version", [], |row| row.get::<_, i64>(0))
            .ok()
    };
    let mut seen = version(&connection);
    loop {
        std::thread::sleep(WATCH_INTERVAL);
        let Some(sender) = sender.upgrade() else {
            return;
        };
        let now = version(&connection);
        if now != seen {
            seen = now;
            sender.send_modify(|count| *count = count.wrapping_add(1));
        }
    }
}
