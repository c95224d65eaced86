//! Naming a full disk as such. SQLite reports a write that found no space as `SQLITE_FULL`, but
//! the same lack of space met while growing the WAL index (its `-shm` file) or syncing comes
//! back as a plain "disk I/O error". So a failure of the file is checked against the device: if
//! the device holding the store has (almost) no space left, that is the cause, whatever SQLite's
//! code said.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::store::StoreError;

/// Under this many bytes free, a device cannot take SQLite's next write (a WAL frame, a grown
/// `-shm` region, a checkpoint): a failure there is the full device.
const NEARLY_FULL_BYTES: u64 = 1 << 20;

/// `error` as `StoreError::NoSpace` naming `path` when it is a backend failure on a full device;
/// otherwise unchanged.
pub(super) fn explain(error: StoreError, path: &Path) -> StoreError {
    match error {
        StoreError::NoSpace { .. } => no_space(path),
        StoreError::Backend(_) | StoreError::Unavailable(_) if device_is_full(path) => {
            no_space(path)
        }
        other => other,
    }
}

/// `std::io::Error` from creating the store's directory or file, with ENOSPC named.
pub(super) fn io_error(error: std::io::Error, what: &Path) -> StoreError {
    if error.kind() == std::io::ErrorKind::StorageFull || device_is_full(what) {
        no_space(what)
    } else {
        StoreError::Backend(format!("creating {}: {error}", what.display()))
    }
}

fn no_space(path: &Path) -> StoreError {
    StoreError::NoSpace {
        path: path.display().to_string(),
    }
}

/// Whether the device holding `path` (or, while it does not exist, its nearest existing
/// ancestor) has less than `NEARLY_FULL_BYTES` available.
pub(super) fn device_is_full(path: &Path) -> bool {
    available_bytes(path).is_some_and(|free| free < NEARLY_FULL_BYTES)
}

fn available_bytes(path: &Path) -> Option<u64> {
    let existing: PathBuf = path.ancestors().find(|p| p.exists())?.to_path_buf();
    let c_path = CString::new(existing.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes only into the zeroed struct we pass; the path is NUL-terminated.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) } != 0 {
        return None;
    }
    // `fsblkcnt_t` and `c_ulong` are u64 here but u32 on 32-bit targets.
    #[allow(clippy::useless_conversion)]
    let (blocks, block_size) = (u64::from(stats.f_bavail), u64::from(stats.f_frsize));
    Some(blocks.saturating_mul(block_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_with_room_is_not_full_and_errors_stay_as_they_are() {
        let dir = std::env::temp_dir();
        assert!(available_bytes(&dir.join("not/yet/there.db")).is_some());
        // /dev/null's device (devtmpfs) reports no free blocks; the temp dir has room here.
        if available_bytes(&dir).is_some_and(|b| b >= NEARLY_FULL_BYTES) {
            let error = explain(StoreError::Backend("disk I/O error".into()), &dir);
            assert!(matches!(error, StoreError::Backend(_)), "{error}");
        }
        let conflict = StoreError::Conflict {
            container: "c",
            id: "x".into(),
        };
        assert!(matches!(
            explain(conflict, &dir),
            StoreError::Conflict { .. }
        ));
    }

    #[test]
    fn sqlite_full_is_named_with_the_path() {
        let error = explain(
            StoreError::NoSpace {
                path: String::new(),
            },
            Path::new("/data/bifrost.db"),
        );
        assert_eq!(
            error.to_string(),
            "no space left on the device holding /data/bifrost.db"
        );
    }
}
