//! Commit notices for change-feed readers. This process's writes notify at once; another
//! process's (`simulate` writing to the same file) show as a change of `PRAGMA data_version`,
//! which a watcher thread reads on a connection of its own: a read of the WAL index in shared
//! memory, no I/O. It looks every `WATCH_INTERVAL` while the version moves and backs off to
//! `MAX_WATCH_INTERVAL` while it does not, so an idle process wakes ten times a second instead
//! of five hundred (2 ms throughout cost 1.9% of a core idle), and another process's first
//! commit after a quiet spell is seen within `MAX_WATCH_INTERVAL`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once, Weak};
use std::time::Duration;

use tokio::sync::watch;

use super::schema;

/// How often the watcher looks for other processes' commits while they keep coming.
pub(super) const WATCH_INTERVAL: Duration = Duration::from_millis(2);
/// The longest the watcher waits between two looks once nothing changes (doubling up to it):
/// the most another process's commit waits to be seen after a quiet spell.
pub(super) const MAX_WATCH_INTERVAL: Duration = Duration::from_millis(100);

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
            // The connection and its first version are taken here, not on the thread, so a
            // commit made right after this returns is a change the watcher sees.
            let connection = match schema::open_connection(&self.path, true) {
                Ok(connection) => connection,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch the store for other processes' commits");
                    return;
                }
            };
            let seen = data_version(&connection);
            let sender = Arc::downgrade(&self.sender);
            let spawned = std::thread::Builder::new()
                .name("sqlite-commits".into())
                .spawn(move || watch_other_processes(&connection, seen, sender));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot watch the store for other processes' commits; their changes are seen with ours");
            }
        });
        self.sender.subscribe()
    }
}

fn data_version(connection: &rusqlite::Connection) -> Option<i64> {
    connection
        .query_row("PRAGMA data_version", [], |row| row.get::<_, i64>(0))
        .ok()
}

/// Until the store is gone: notify whenever the file's data version moves from `seen`.
fn watch_other_processes(
    connection: &rusqlite::Connection,
    mut seen: Option<i64>,
    sender: Weak<watch::Sender<u64>>,
) {
    let mut interval = WATCH_INTERVAL;
    loop {
        std::thread::sleep(interval);
        let Some(sender) = sender.upgrade() else {
            return;
        };
        let now = data_version(connection);
        interval = next_interval(interval, now != seen);
        if now != seen {
            seen = now;
            sender.send_modify(|count| *count = count.wrapping_add(1));
        }
    }
}

/// Back to the shortest interval after a change (more commits tend to follow), else twice the
/// last, up to `MAX_WATCH_INTERVAL`.
fn next_interval(last: Duration, changed: bool) -> Duration {
    if changed {
        WATCH_INTERVAL
    } else {
        (last * 2).min(MAX_WATCH_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watcher_backs_off_to_its_cap_while_quiet_and_returns_at_a_change() {
        let mut interval = WATCH_INTERVAL;
        let mut quiet = vec![];
        for _ in 0..8 {
            interval = next_interval(interval, false);
            quiet.push(interval.as_millis());
        }
        assert_eq!(quiet, [4, 8, 16, 32, 64, 100, 100, 100]);
        assert_eq!(next_interval(interval, true), WATCH_INTERVAL);
    }
}
