//! Fault injection for the fault-injection tests: a store that fails the writes to some
//! containers while a control file says so, so a test can make the spawned binary's store fail
//! (a full disk, a backend down) for a while and then recover, without root or a real full
//! filesystem.
//!
//! Honoured in debug builds only (`cfg!(debug_assertions)`): the tests run the debug binary,
//! and in a release build (what is deployed) `maybe_inject` returns the store untouched
//! whatever the environment says, so no setting can turn it on by accident in production. A
//! cargo feature would not do: `cargo test` builds the binary with the package's default
//! features, so a test-only feature would have to be on by default.
//!
//! The control file (named by `BIFROST_FAULT_FILE`) holds words separated by whitespace: a
//! container name (`*` for every container) makes each write to it fail with "database or disk
//! is full (injected)"; `poison:TEXT` makes each write whose document holds TEXT fail, except
//! to `deadletters` (a poison document: whatever batch carries it fails every time, and its
//! dead letter is where it goes). It is read on every write, so a test
//! starts and ends the fault by writing and removing the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::wrapped::Wrapped;
use super::{Container, Store, StoreError};

/// The setting naming the control file (debug builds only).
pub const FAULT_FILE_ENV: &str = "BIFROST_FAULT_FILE";

/// `inner`, whose writes fail as the control file says while it exists.
pub fn faulty(inner: Arc<dyn Store>, control: PathBuf) -> Arc<dyn Store> {
    Arc::new(Wrapped {
        before_write: Arc::new(move |container, written| check_write(&control, container, written)),
        ..Wrapped::new(inner)
    })
}

/// Fails the write to `container` of what `written` renders when the control file says so.
fn check_write(
    control: &Path,
    container: Container,
    written: &dyn Fn() -> String,
) -> Result<(), StoreError> {
    let Ok(text) = std::fs::read_to_string(control) else {
        return Ok(());
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.iter().any(|w| *w == "*" || *w == container.name()) {
        return Err(StoreError::Backend(format!(
            "database or disk is full (injected for {})",
            container.name()
        )));
    }
    let poisons: Vec<&str> = words
        .iter()
        .filter_map(|w| w.strip_prefix("poison:"))
        .collect();
    if !poisons.is_empty() && container != Container::DeadLetters {
        let written = written();
        if let Some(poison) = poisons.iter().find(|p| written.contains(*p)) {
            return Err(StoreError::Backend(format!(
                "a poison document (injected: it holds {poison:?})"
            )));
        }
    }
    Ok(())
}

/// `store` with fault injection when this is a debug build and `BIFROST_FAULT_FILE` is set.
pub fn maybe_inject(store: Arc<dyn Store>) -> Arc<dyn Store> {
    if !cfg!(debug_assertions) {
        return store;
    }
    match std::env::var_os(FAULT_FILE_ENV) {
        Some(path) if !path.is_empty() => {
            tracing::warn!(control = ?path, "fault injection is on (debug build, {FAULT_FILE_ENV})");
            faulty(store, PathBuf::from(path))
        }
        _ => store,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, SystemClock};

    #[tokio::test]
    async fn writes_to_the_named_containers_fail_while_the_file_exists() {
        let dir = tempfile::tempdir().unwrap();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        // Through `open`, as the binary does (a test of the store folder may not reach into a
        // backend's folder directly).
        let url = super::super::StoreUrl::Sqlite(dir.path().join("f.db"));
        let sqlite = super::super::open(&url, clock).await.unwrap();
        let control = dir.path().join("faults");
        let store = faulty(sqlite, control.clone());
        let doc = serde_json::json!({"id": "a", "scope": "GLOBAL"});
        store
            .upsert(Container::Entities, doc.clone(), None)
            .await
            .unwrap();
        std::fs::write(&control, "entities leases").unwrap();
        let error = store
            .upsert(Container::Entities, doc.clone(), None)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("disk is full"), "{error}");
        assert!(store.read(Container::Entities, "GLOBAL", "a").await.is_ok());
        std::fs::write(&control, "poison:exec-bad").unwrap();
        store
            .upsert(Container::Entities, doc.clone(), None)
            .await
            .unwrap();
        let poison = serde_json::json!({"id": "b", "scope": "GLOBAL", "executionId": "exec-bad"});
        let error = store
            .upsert(Container::Executions, poison, None)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("poison"), "{error}");
        std::fs::remove_file(&control).unwrap();
        store.upsert(Container::Entities, doc, None).await.unwrap();
    }
}
