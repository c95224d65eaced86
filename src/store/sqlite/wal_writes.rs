//! Wake-ups on writes to the store's WAL file by any process (Linux `inotify`), so the commit
//! watcher can sleep while nobody writes instead of polling: a commit's frames are written to
//! the `-wal` file with `write`, which inotify reports whichever process made it. Elsewhere (and
//! when the file cannot be watched) `WalWrites::watch` is `None` and the watcher polls.

use std::path::{Path, PathBuf};

#[cfg(target_os = "linux")]
pub(super) use linux::WalWrites;
#[cfg(not(target_os = "linux"))]
pub(super) use polling_only::WalWrites;

#[cfg(not(target_os = "linux"))]
mod polling_only {
    use std::path::Path;
    use std::time::Duration;

    /// Never made: the watcher polls.
    pub(in crate::store::sqlite) enum WalWrites {}

    impl WalWrites {
        pub(in crate::store::sqlite) fn watch(_database: &Path) -> Option<Self> {
            None
        }

        pub(in crate::store::sqlite) fn wait(&self, _timeout: Duration) -> bool {
            match *self {}
        }
    }
}

/// The WAL file SQLite keeps beside `database`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn wal_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-wal");
    name.into()
}

#[cfg(target_os = "linux")]
mod linux {
    use std::ffi::CString;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::time::Duration;

    /// An inotify instance watching one WAL file for modification (the descriptor closes on drop).
    pub(in crate::store::sqlite) struct WalWrites {
        fd: OwnedFd,
    }

    impl WalWrites {
        /// Watches `database`'s WAL file; `None` if it does not exist (not in WAL mode yet) or
        /// inotify is unavailable (limits reached), and the watcher then polls.
        pub(in crate::store::sqlite) fn watch(database: &Path) -> Option<Self> {
            let wal = CString::new(super::wal_path(database).as_os_str().as_bytes()).ok()?;
            // SAFETY: plain system calls; the descriptor is owned right after it is made.
            let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
            if raw < 0 {
                return None;
            }
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            // SAFETY: `wal` is NUL-terminated and outlives the call.
            let watch =
                unsafe { libc::inotify_add_watch(fd.as_raw_fd(), wal.as_ptr(), libc::IN_MODIFY) };
            (watch >= 0).then_some(WalWrites { fd })
        }

        /// Blocks until the WAL file was written (since the last call) or `timeout` passed;
        /// `true` on a write. Pending events are consumed, so one burst is one wake-up.
        pub(in crate::store::sqlite) fn wait(&self, timeout: Duration) -> bool {
            let mut poll = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
            // SAFETY: one valid pollfd for the duration of the call.
            let ready = unsafe { libc::poll(&mut poll, 1, millis) };
            if ready <= 0 {
                return false;
            }
            self.drain();
            true
        }

        /// Reads every queued event (their content does not matter: only that a write happened).
        fn drain(&self) {
            let mut buffer = [0u8; 4096];
            loop {
                // SAFETY: reads at most `buffer.len()` bytes into the buffer; non-blocking.
                let read = unsafe {
                    libc::read(
                        self.fd.as_raw_fd(),
                        buffer.as_mut_ptr().cast(),
                        buffer.len(),
                    )
                };
                if read <= 0 {
                    return;
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use std::io::Write;
        use std::time::Instant;

        use super::*;

        #[test]
        fn a_write_by_another_handle_wakes_the_waiter_and_silence_times_out() {
            let dir = tempfile::tempdir().unwrap();
            let database = dir.path().join("store.db");
            assert!(WalWrites::watch(&database).is_none(), "no WAL file yet");
            let mut wal = std::fs::File::create(super::super::wal_path(&database)).unwrap();
            let writes = WalWrites::watch(&database).expect("inotify on a temp dir");

            assert!(
                !writes.wait(Duration::from_millis(20)),
                "nothing written yet"
            );
            let writer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                wal.write_all(b"frame").unwrap();
                wal
            });
            let started = Instant::now();
            assert!(writes.wait(Duration::from_secs(10)), "the write woke it");
            assert!(started.elapsed() < Duration::from_secs(5));
            let mut wal = writer.join().unwrap();
            // Several writes before the next wait are one wake-up, and then it is quiet again.
            for _ in 0..10 {
                wal.write_all(b"frame").unwrap();
            }
            assert!(writes.wait(Duration::ZERO));
            assert!(!writes.wait(Duration::from_millis(20)));
        }
    }
}
