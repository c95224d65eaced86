//! Commit notices for change-feed readers. This process's writes notify at once; another
//! process's (`simulate` writing to the same file) show as a change of `PRAGMA data_version`,
//! which a watcher thread reads on a connection of its own: a read of the WAL index in shared
//! memory, no I/O.
//!
//! When it looks: every `WATCH_INTERVAL` while anything is written and for `STAY_QUICK_FOR`
//! after (writers write in bursts; backing off between their commits put tens of milliseconds
//! on the live-log latency). Once quiet, on Linux it sleeps until the WAL file is written
//! (`wal_writes`, inotify: a first commit after a quiet spell is seen at once and an idle
//! process wakes once a second, as a safety net); elsewhere it backs off to
//! `MAX_WATCH_INTERVAL` (the first commit after a quiet spell waits up to that; an idle process
//! wakes ten times a second instead of five hundred: looking every 2 ms throughout cost 2.5% of
//! a core idle).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::schema;
use super::wal_writes::WalWrites;

/// How often the watcher looks for other processes' commits while they keep coming.
pub(super) const WATCH_INTERVAL: Duration = Duration::from_millis(2);
/// The longest the watcher waits between two looks once nothing changes (doubling up to it):
/// the most another process's commit waits to be seen after a quiet spell.
pub(super) const MAX_WATCH_INTERVAL: Duration = Duration::from_millis(100);
/// How long after the last change (or WAL write) the watcher keeps looking every `WATCH_INTERVAL`.
pub(super) const STAY_QUICK_FOR: Duration = Duration::from_secs(1);
/// The longest a quiet watcher sleeps when WAL writes wake it: only a safety net, should a
/// wake-up be missed (the WAL file replaced under it).
pub(super) const QUIET_WAKE_WITH_WAL_WRITES: Duration = Duration::from_secs(1);

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
            let wal_writes = WalWrites::watch(&self.path);
            let sender = Arc::downgrade(&self.sender);
            let spawned = std::thread::Builder::new()
                .name("sqlite-commits".into())
                .spawn(move || watch_other_processes(&connection, seen, wal_writes, sender));
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
    wal_writes: Option<WalWrites>,
    sender: Weak<watch::Sender<u64>>,
) {
    let mut interval = WATCH_INTERVAL;
    let mut last_activity = Instant::now();
    loop {
        let quiet = last_activity.elapsed() >= STAY_QUICK_FOR;
        let written = match &wal_writes {
            Some(wal_writes) if quiet => wal_writes.wait(QUIET_WAKE_WITH_WAL_WRITES),
            _ => {
                std::thread::sleep(interval);
                // Consumes what was written meanwhile, so a quiet wait starts from silence.
                wal_writes.as_ref().is_some_and(|w| w.wait(Duration::ZERO))
            }
        };
        if written {
            // Frames are written before the commit shows in the version: look again soon.
            last_activity = Instant::now();
        }
        let Some(sender) = sender.upgrade() else {
            return;
        };
        let now = data_version(connection);
        if now != seen {
            seen = now;
            last_activity = Instant::now();
            sender.send_modify(|count| *count = count.wrapping_add(1));
        }
        interval = next_interval(interval, last_activity.elapsed());
    }
}

/// `WATCH_INTERVAL` until `STAY_QUICK_FOR` has passed since the last change (more commits tend to
/// follow), then twice the last, up to `MAX_WATCH_INTERVAL`.
fn next_interval(last: Duration, since_change: Duration) -> Duration {
    if since_change < STAY_QUICK_FOR {
        WATCH_INTERVAL
    } else {
        (last * 2).min(MAX_WATCH_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watcher_stays_quick_after_a_change_then_backs_off_to_its_cap() {
        let mut interval = WATCH_INTERVAL;
        // Commits 50 ms apart (a writer's rhythm): never a back-off between them.
        for since_change in [0, 2, 50, 999] {
            interval = next_interval(interval, Duration::from_millis(since_change));
            assert_eq!(interval, WATCH_INTERVAL);
        }
        let mut quiet = vec![];
        for _ in 0..8 {
            interval = next_interval(interval, STAY_QUICK_FOR);
            quiet.push(interval.as_millis());
        }
        assert_eq!(quiet, [4, 8, 16, 32, 64, 100, 100, 100]);
        assert_eq!(next_interval(interval, Duration::ZERO), WATCH_INTERVAL);
    }
}
