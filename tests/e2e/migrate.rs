//! `migrate` end to end: legacy rows written by the real Azure SDKs into Azurite, the binary
//! migrating them into the embedded store, read back from the SQLite file.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use bifrost_test_support::azurite::{Azurite, DEV_KEY};
use bifrost_test_support::principal::Principal;
use bifrost_test_support::process::{finish, lines, output, remaining_lines, RUN_TIMEOUT};
use bifrost_test_support::tools::require;

use super::helpers::{temp_dir, Run, BIN};

const ORG_A: &str = "org-0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01";
const ORG_B: &str = "org-7c9e6679-7425-40de-944b-e07fc1f90ae7";
const FIXTURE_EXECUTIONS: usize = 5; // migratable named executions in the fixture (plus fillers)
/// How long the first pages of a paged run may take.
const PAGES_TIMEOUT: Duration = Duration::from_secs(120);

fn migrate(azurite: &Azurite, data: &Path, extra: &[&str]) -> Run {
    migrate_from(&azurite.connection_string, data, extra)
}

fn migrate_from(connection_string: &str, data: &Path, extra: &[&str]) -> Run {
    Run::of(
        BIN.command()
            .args(["migrate", "--from", connection_string, "--data"])
            .arg(data)
            .args(extra),
    )
}

/// `key: value` from a summary.
pub(super) fn count(stdout: &str, key: &str) -> u64 {
    let prefix = format!("  {key}: ");
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key:?} in:\n{stdout}"))
        .trim()
        .parse()
        .expect("number")
}

fn days_ago(days: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

/// Seeds the fixture with executions `days` ago (the expired one 30 days ago) and `filler`
/// more executions of `logs` log rows each; returns the day (`YYYY-MM-DD`).
fn seed_fixture(azurite: &Azurite, days: i64, filler: usize, logs: usize) -> String {
    let day = days_ago(days);
    azurite.seed(&[
        "fixture",
        "--day",
        &day,
        "--expired-day",
        &days_ago(30),
        "--filler",
        &filler.to_string(),
        "--filler-logs",
        &logs.to_string(),
    ]);
    day
}

/// Every stored document except the migration's own checkpoint (in `leases`): (container, pk, id)
/// → (body, etag, ts, lsn); plus the change-log head of those containers.
type Snapshot = (
    BTreeMap<(String, String, String), (Value, String, i64, i64)>,
    i64,
);

fn snapshot(data: &Path) -> Snapshot {
    let db = rusqlite::Connection::open(data.join("bifrost.db")).expect("open db");
    let mut statement = db
        .prepare("SELECT container, pk, id, body, etag, ts, lsn FROM documents WHERE container != 'leases'")
        .expect("prepare");
    let rows = statement
        .query_map([], |r| {
            let body: String = r.get(3)?;
            Ok((
                (r.get(0)?, r.get(1)?, r.get(2)?),
                (
                    serde_json::from_str(&body).unwrap_or(Value::Null),
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ),
            ))
        })
        .expect("query")
        .collect::<Result<BTreeMap<_, _>, _>>()
        .expect("rows");
    let head: i64 = db
        .query_row(
            "SELECT COALESCE(MAX(lsn), 0) FROM change_log WHERE container != 'leases'",
            [],
            |r| r.get(0),
        )
        .expect("head");
    (rows, head)
}

fn doc<'a>(snap: &'a Snapshot, container: &str, pk: &str, id: &str) -> &'a Value {
    &snap
        .0
        .get(&(container.to_owned(), pk.to_owned(), id.to_owned()))
        .unwrap_or_else(|| panic!("{container}/{pk}/{id} not migrated"))
        .0
}

/// A body without `ttl`, checked separately: it must be what is left of 14 days.
fn without_ttl(body: &Value, started_at: &str) -> Value {
    let mut body = body.clone();
    let ttl = body
        .as_object_mut()
        .and_then(|o| o.remove("ttl"))
        .and_then(|t| t.as_i64())
        .expect("ttl");
    let started = chrono::DateTime::parse_from_rfc3339(started_at).expect("started");
    let age = (chrono::Utc::now() - started.to_utc()).num_seconds();
    let expected = 1_209_600 - age;
    assert!(
        (expected - 2..=expected + 120).contains(&ttl),
        "ttl {ttl} is not 14 days minus the age {age}"
    );
    body
}

/// A log document as (sequence, level, message, timestamp).
fn log_view(log: &Value) -> (u64, String, String, String) {
    let text = |field: &str| log[field].as_str().unwrap_or_default().to_owned();
    (
        log["sequence"].as_u64().expect("sequence"),
        text("level"),
        text("message"),
        text("timestamp"),
    )
}

fn execute_sql(data: &Path, sql: &str) {
    let db = rusqlite::Connection::open(data.join("bifrost.db")).expect("open db");
    let changed = db.execute(sql, []).expect("tamper");
    assert_eq!(changed, 1, "{sql}");
}

#[test]
fn migrates_legacy_rows_field_for_field_reruns_as_a_no_op_and_verify_catches_tampering() {
    let Some(azurite) = require(Azurite::start()) else {
        return;
    };
    let day = seed_fixture(&azurite, 1, 30, 2);
    let data = temp_dir();

    // Dry run: reads and maps everything, writes no document.
    let dry = migrate(&azurite, data.path(), &["--dry-run"]);
    assert_eq!(
        count(&dry.stdout, "would be migrated"),
        35,
        "{}",
        dry.stdout
    );
    assert!(
        snapshot(data.path()).0.is_empty(),
        "dry run wrote documents"
    );

    let first = migrate(&azurite, data.path(), &[]);
    // One bad row: reported with its keys and reason, the run completes, the exit code says so.
    assert_eq!(first.code, Some(1), "{}\n{}", first.stdout, first.stderr);
    assert_eq!(
        count(&first.stdout, "migrated"),
        30 + FIXTURE_EXECUTIONS as u64
    );
    assert_eq!(count(&first.stdout, "skipped expired"), 1);
    assert_eq!(count(&first.stdout, "failed"), 1);
    assert!(
        first
            .stdout
            .contains("failed: Entities row (\"GLOBAL\", \"execution:")
            && first
                .stdout
                .contains("00000000bad0\"): unknown execution status \"Exploded\""),
        "{}",
        first.stdout
    );
    assert!(first
        .stderr
        .contains("1 source row(s) could not be migrated"));
    assert!(
        first.stderr.contains("progress: 37/37 executions"),
        "{}",
        first.stderr
    );

    let snap = snapshot(data.path());
    // Org-scoped, inline JSON result, form, naive timestamps → canonical UTC.
    let started = format!("{day}T19:05:07.369578Z");
    assert_eq!(
        without_ttl(
            doc(
                &snap,
                "executions",
                ORG_A,
                "00000000-0000-0000-0000-00000000b1f0"
            ),
            &started
        ),
        json!({
            "id": "00000000-0000-0000-0000-00000000b1f0", "type": "execution", "scope": ORG_A,
            "executionId": "00000000-0000-0000-0000-00000000b1f0", "workflowName": "user_onboarding",
            "formId": "form-123", "executedBy": "d75b260a64504067bfc5b2905e3b8182",
            "executedByName": "jack", "status": "Success", "inputData": {"first_name": "Ada", "n": 0},
            "durationMs": 1234, "startedAt": started,
            "completedAt": format!("{day}T19:05:07.462281Z"), "errorMessage": null,
            "resultInBlob": false
        })
    );
    let execution_id = "00000000-0000-0000-0000-00000000b1f0";
    let logs: Vec<(u64, String, String, String)> = (1..=3)
        .map(|sequence| {
            let log = without_ttl(
                doc(
                    &snap,
                    "execution_data",
                    execution_id,
                    &format!("log-{execution_id}-{sequence:08}"),
                ),
                &started,
            );
            assert_eq!(log["type"], "log");
            assert_eq!(log["source"], "workflow");
            assert_eq!(log["legacyLogId"].as_str().map(str::len), Some(36));
            log_view(&log)
        })
        .collect();
    assert_eq!(
        logs,
        vec![
            (
                1,
                "INFO".into(),
                "step one of 2".into(),
                format!("{day}T19:05:07.400000Z")
            ),
            (
                2,
                "DEBUG".into(),
                "debug detail".into(),
                format!("{day}T19:05:07.400001Z")
            ),
            (
                3,
                "WARNING".into(),
                "step two of 2".into(),
                format!("{day}T19:05:07.400002Z")
            ),
        ]
    );
    assert_eq!(
        without_ttl(
            doc(&snap, "execution_data", execution_id, "result"),
            &started
        ),
        json!({"id": "result", "type": "result", "executionId": execution_id,
               "timestamp": format!("{day}T19:05:07.462281Z"),
               "result": {"success": true, "message": "done"}, "resultType": "json", "resultSize": 36})
    );
    assert_eq!(
        doc(
            &snap,
            "execution_data",
            execution_id,
            "variables-snapshot-v1"
        )["variables"],
        json!({"counter": 2, "user": {"email": "a@b.c"}})
    );
    // GLOBAL, HTML result read from its blob.
    let html = doc(
        &snap,
        "execution_data",
        "00000000-0000-0000-0000-00000000b1f2",
        "result",
    );
    assert_eq!(html["resultType"], "html");
    assert_eq!(
        html["resultSize"],
        "<table>".len() + "<tr><td>row</td></tr>".len() * 200 + "</table>".len()
    );
    assert!(html["result"]
        .as_str()
        .is_some_and(|r| r.starts_with("<table><tr>")));
    assert_eq!(
        doc(
            &snap,
            "executions",
            "GLOBAL",
            "00000000-0000-0000-0000-00000000b1f2"
        )["resultInBlob"],
        true
    );
    // Failed: unparsable InputData becomes {}, microsecond-less time, inline text result.
    let failed = doc(
        &snap,
        "executions",
        "GLOBAL",
        "00000000-0000-0000-0000-00000000b1f1",
    );
    assert_eq!(failed["inputData"], json!({}));
    assert_eq!(failed["errorMessage"], "Boom: KeyError 'x'");
    assert_eq!(failed["completedAt"], format!("{day}T19:05:08.000000Z"));
    let text = doc(
        &snap,
        "execution_data",
        "00000000-0000-0000-0000-00000000b1f1",
        "result",
    );
    assert_eq!(
        (&text["result"], &text["resultType"]),
        (&json!("plain text result"), &json!("text"))
    );
    // Its logs come from the logs.json archive: levels upper-cased, times canonical.
    let archived: Vec<(u64, String, String, String)> = (1..=2)
        .map(|sequence| {
            let log = doc(
                &snap,
                "execution_data",
                "00000000-0000-0000-0000-00000000b1f1",
                &format!("log-00000000-0000-0000-0000-00000000b1f1-{sequence:08}"),
            );
            assert_eq!(
                (&log["type"], &log["source"], &log["legacyArchive"]),
                (&json!("log"), &json!("workflow"), &json!("logs.json"))
            );
            log_view(log)
        })
        .collect();
    assert_eq!(
        archived,
        vec![
            (
                1,
                "INFO".into(),
                "greeting".into(),
                format!("{day}T19:05:07.600000Z")
            ),
            (
                2,
                "ERROR".into(),
                "Boom: KeyError 'x'".into(),
                format!("{day}T19:05:08.000000Z")
            ),
        ]
    );
    // Sparse Running row: absent properties are null.
    let running = doc(
        &snap,
        "executions",
        ORG_B,
        "00000000-0000-0000-0000-00000000b1f3",
    );
    assert_eq!(
        (
            &running["status"],
            &running["completedAt"],
            &running["durationMs"]
        ),
        (&json!("Running"), &Value::Null, &Value::Null)
    );
    assert!(running.get("formId").is_none());
    // Over 2 MB: referenced, not copied.
    let big = doc(
        &snap,
        "execution_data",
        "00000000-0000-0000-0000-00000000b1f4",
        "result",
    );
    assert_eq!(big["result"], Value::Null);
    assert_eq!(
        big["blobRef"],
        "execution-data/00000000-0000-0000-0000-00000000b1f4/result.json"
    );
    assert!(big["resultSize"]
        .as_u64()
        .is_some_and(|s| s > 2 * 1024 * 1024));
    // Memberships from userperm rows (orgperm rows are the reverse index: ignored).
    let ada = doc(&snap, "entities", "GLOBAL", "user-ada@example.com");
    assert_eq!(ada["orgScopes"], json!([ORG_A, ORG_B]));
    assert_eq!(
        doc(&snap, "entities", "GLOBAL", "user-bob@example.com")["orgScopes"],
        json!([ORG_B])
    );
    // Expired, bad and non-execution rows are not migrated.
    let executions = snap.0.keys().filter(|(c, _, _)| c == "executions").count();
    assert_eq!(executions, 35);
    assert!(!snap
        .0
        .keys()
        .any(|(_, _, id)| id.ends_with("e0e0") || id.ends_with("bad0")));

    // Metrics backfill: one daily document per scope for the migrated day, counting terminal
    // executions (org B's Running one is not counted; the expired one was not migrated).
    assert_eq!(count(&first.stdout, "metrics days rebuilt"), 3);
    let metrics_id = format!("metrics-daily-{day}");
    let daily = |scope: &str| {
        let doc = doc(&snap, "entities", scope, &metrics_id);
        (
            doc["totalExecutions"].as_u64(),
            doc["successCount"].as_u64(),
            doc["failedCount"].as_u64(),
            doc["completedWithErrorsCount"].as_u64(),
        )
    };
    assert_eq!(daily(ORG_A), (Some(12), Some(11), Some(0), Some(1)));
    assert_eq!(daily("GLOBAL"), (Some(12), Some(11), Some(1), Some(0)));
    assert_eq!(daily(ORG_B), (Some(10), Some(10), Some(0), Some(0)));

    // Rerun: no document is written (same ETags, same change-feed head); only the checkpoint is.
    let rerun = migrate(&azurite, data.path(), &[]);
    assert_eq!(count(&rerun.stdout, "unchanged"), 35, "{}", rerun.stdout);
    assert_eq!(count(&rerun.stdout, "documents written"), 0);
    assert_eq!(count(&rerun.stdout, "metrics days rebuilt"), 0);
    let after = snapshot(data.path());
    let changed: Vec<_> = after
        .0
        .iter()
        .filter(|(key, value)| snap.0.get(*key) != Some(value))
        .map(|(key, _)| key)
        .collect();
    assert!(changed.is_empty(), "a rerun rewrote {changed:?}");
    assert_eq!(
        (after.0.len(), after.1),
        (snap.0.len(), snap.1),
        "a rerun changed the store"
    );

    let verified = migrate(&azurite, data.path(), &["--verify"]);
    assert_eq!(
        verified.code,
        Some(0),
        "{}\n{}",
        verified.stdout,
        verified.stderr
    );
    assert_eq!(count(&verified.stdout, "matching in target"), 35);

    // Tamper with the target: a changed status and a deleted log line.
    execute_sql(
        data.path(),
        "UPDATE documents SET body = json_set(body, '$.status', 'Success') \
         WHERE container = 'executions' AND id = '00000000-0000-0000-0000-00000000b1f1'",
    );
    execute_sql(
        data.path(),
        "DELETE FROM documents WHERE container = 'execution_data' \
         AND id = 'log-00000000-0000-0000-0000-00000000b1f2-00000002'",
    );
    let big_blob = "execution-data/00000000-0000-0000-0000-00000000b1f4/result.json";
    std::fs::remove_file(data.path().join("blobs").join(big_blob)).expect("delete copied blob");
    // An execution the source never had (a copy of a migrated one under a new id), and one that
    // started after every source execution (the new system's own run: counted, not a mismatch).
    for (id, started) in [
        ("planted-0001", None),
        ("after-the-move-0001", Some("2999-01-01T00:00:00.000000Z")),
    ] {
        let started = started
            .map(|t| format!(", '$.startedAt', '{t}'"))
            .unwrap_or_default();
        execute_sql(
            data.path(),
            &format!(
                "INSERT INTO documents (container, pk, id, body, etag, ts, lsn, expires_at) \
                 SELECT container, pk, '{id}', \
                        json_set(body, '$.id', '{id}', '$.executionId', '{id}'{started}), \
                        etag, ts, lsn, expires_at \
                 FROM documents WHERE container = 'executions' \
                 AND id = '00000000-0000-0000-0000-00000000b1f1'"
            ),
        );
        execute_sql(
            data.path(),
            &format!(
                "INSERT INTO change_log (container, pk, id) VALUES ('executions', 'GLOBAL', '{id}')"
            ),
        );
    }
    let caught = migrate(&azurite, data.path(), &["--verify"]);
    assert_eq!(caught.code, Some(1), "{}", caught.stdout);
    assert_eq!(count(&caught.stdout, "matching in target"), 32);
    assert!(
        caught
            .stdout
            .contains("mismatch: GLOBAL planted-0001: execution in target but not in the source"),
        "{}",
        caught.stdout
    );
    assert!(
        !caught.stdout.contains("after-the-move-0001"),
        "{}",
        caught.stdout
    );
    assert_eq!(
        count(
            &caught.stdout,
            "target executions newer than the source (not compared)"
        ),
        1
    );
    assert!(
        caught
            .stdout
            .contains(&format!("blob {big_blob}: missing in target")),
        "{}",
        caught.stdout
    );
    assert!(
        caught.stdout.lines().any(|l| l
            .starts_with("mismatch: GLOBAL 00000000-0000-0000-0000-00000000b1f1")
            && l.contains("status: source \"Failed\" ≠ target \"Success\"")),
        "{}",
        caught.stdout
    );
    assert!(
        caught
            .stdout
            .contains("log-00000000-0000-0000-0000-00000000b1f2-00000002: missing in target"),
        "{}",
        caught.stdout
    );
    // Tamper with the source: verify sees the target no longer matches it.
    azurite.seed(&[
        "tamper-source",
        "--partition",
        "0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01",
        "--row-key",
        &format!(
            "execution:{}_00000000-0000-0000-0000-00000000b1f0",
            reverse_ts(&format!("{day}T19:05:07.369578Z"))
        ),
        "--property",
        "WorkflowName",
        "--value",
        "renamed",
    ]);
    let source_changed = migrate(&azurite, data.path(), &["--verify"]);
    assert!(
        source_changed
            .stdout
            .contains("workflowName: source \"renamed\" ≠ target \"user_onboarding\""),
        "{}",
        source_changed.stdout
    );

    // A migration repairs all of it (the planted execution is removed by hand: migrate never
    // deletes), and verify passes again.
    for id in ["planted-0001", "after-the-move-0001"] {
        execute_sql(
            data.path(),
            &format!("DELETE FROM documents WHERE id = '{id}'"),
        );
        execute_sql(
            data.path(),
            &format!("DELETE FROM change_log WHERE id = '{id}'"),
        );
    }
    // Two rows and two blob names per request: the blob listing (4 blobs) pages too.
    let repair = migrate(&azurite, data.path(), &["--page-size", "2"]);
    assert_eq!(count(&repair.stdout, "updated"), 4, "{}", repair.stdout);
    assert_eq!(count(&repair.stdout, "blobs copied"), 1);
    let verified = migrate(&azurite, data.path(), &["--verify"]);
    assert_eq!(verified.code, Some(0), "{}", verified.stdout);

    // --keep-expired brings the old execution too, never expiring.
    let keep = migrate(&azurite, data.path(), &["--keep-expired"]);
    assert_eq!(count(&keep.stdout, "migrated"), 1, "{}", keep.stdout);
    let snap = snapshot(data.path());
    assert_eq!(
        doc(
            &snap,
            "executions",
            "GLOBAL",
            "00000000-0000-0000-0000-00000000e0e0"
        )["ttl"],
        -1
    );
    // Its logs, variables and error/state columns (the 2025-10 row shape) are documents too.
    let old_id = "00000000-0000-0000-0000-00000000e0e0";
    let old_log = |sequence: u64| {
        doc(
            &snap,
            "execution_data",
            old_id,
            &format!("log-{old_id}-{sequence:08}"),
        )
    };
    assert_eq!(
        (log_view(old_log(1)).1, log_view(old_log(2)).2),
        ("INFO".to_owned(), "halo answered 502".to_owned())
    );
    assert_eq!(old_log(1)["data"], Value::Null);
    assert_eq!(old_log(2)["data"], json!({"status": 502}));
    assert_eq!(old_log(2)["legacyArchive"], "Logs column");
    assert_eq!(
        doc(&snap, "execution_data", old_id, "variables-snapshot-v1")["variables"],
        json!({"ticket": 42})
    );
    assert_eq!(
        doc(&snap, "execution_data", old_id, "state")["state"],
        json!({
            "errorType": "IntegrationError",
            "errorDetails": {"integration": "halo", "status_code": 502},
            "stateSnapshots": [{"timestamp": format!("{}T10:00:01", days_ago(30)), "name": "fetched", "data": {"n": 3}}]
        })
    );
}

fn reverse_ts(started: &str) -> i64 {
    let started = chrono::DateTime::parse_from_rfc3339(started).expect("time");
    9_999_999_999_999 - started.timestamp_millis()
}

/// Starts `migrate` with pages of 10 rows and a progress line per page, and returns once `pages`
/// pages are checkpointed (with the rest of its stderr).
fn spawn_paged_migrate(
    azurite: &Azurite,
    data: &Path,
    pages: usize,
) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = BIN
        .command()
        .args(["migrate", "--from", &azurite.connection_string, "--data"])
        .arg(data)
        .args([
            "--page-size",
            "10",
            "--parallelism",
            "2",
            "--progress-interval",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn migrate");
    let stderr = lines(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + PAGES_TIMEOUT;
    let mut seen = 0;
    while seen < pages {
        let line = stderr
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("{seen} of {pages} pages within {PAGES_TIMEOUT:?}"));
        // Execution pages only (the log spool's progress lines come first).
        if line.starts_with("progress: ") && line.contains(" executions (") {
            seen += 1;
        }
    }
    (child, stderr)
}

/// Documents without per-run properties (system properties differ by write).
fn end_state(data: &Path) -> BTreeMap<(String, String, String), Value> {
    snapshot(data)
        .0
        .into_iter()
        .map(|(key, (mut body, ..))| {
            if let Some(object) = body.as_object_mut() {
                object.remove("ttl");
                // The metrics ledger's bookkeeping is per run by nature: when, and at which
                // change-feed position, it last applied an execution's contribution.
                if object.get("type").and_then(Value::as_str) == Some("metricsContribution") {
                    object.remove("source");
                }
                object.remove("updatedAt");
            }
            (key, body)
        })
        .collect()
}

#[test]
fn a_run_killed_halfway_resumes_to_the_same_end_state() {
    let Some(azurite) = require(Azurite::start()) else {
        return;
    };
    seed_fixture(&azurite, 2, 300, 3);
    let total = 300 + FIXTURE_EXECUTIONS;

    // The reference reads the logs one partition per execution; the runs below scan the table
    // into the spool (the default for a whole-account run): both must give the same documents.
    let reference = temp_dir();
    migrate(
        &azurite,
        reference.path(),
        &["--page-size", "50", "--log-read", "per-execution"],
    );
    let expected = end_state(reference.path());
    assert_eq!(
        expected
            .keys()
            .filter(|(c, _, _)| c == "executions")
            .count(),
        total
    );

    let data = temp_dir();
    let (mut child, _stderr) = spawn_paged_migrate(&azurite, data.path(), 3);
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    let partial = end_state(data.path());
    let migrated = partial.keys().filter(|(c, _, _)| c == "executions").count();
    assert!(
        (1..total).contains(&migrated),
        "the kill should land mid-run, but {migrated} of {total} executions were migrated"
    );

    let resumed = migrate(&azurite, data.path(), &["--resume", "--page-size", "10"]);
    let read = count(&resumed.stdout, "executions read") as usize;
    assert!(
        read < total + 2 && read + 20 >= total + 2 - migrated,
        "resume should start at the checkpoint (read {read}, {migrated} were done)\n{}",
        resumed.stdout
    );
    assert_eq!(end_state(data.path()), expected);
    let verified = migrate(&azurite, data.path(), &["--verify"]);
    assert_eq!(verified.code, Some(0), "{}", verified.stdout);

    // Resuming a finished run has nothing left to do.
    let again = migrate(&azurite, data.path(), &["--resume"]);
    assert_eq!(
        count(&again.stdout, "executions read"),
        0,
        "{}",
        again.stdout
    );
}

#[test]
fn bad_arguments_are_clear_errors() {
    let data = temp_dir();
    let run = |args: &[&str]| {
        output(
            Command::new(BIN.path())
                .arg("migrate")
                .args(args)
                .arg("--data")
                .arg(data.path()),
        )
    };
    let out = run(&["--from", "AccountName=x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("--from: connection string lacks AccountKey or SharedAccessSignature"));
    let out = run(&["--from", "UseDevelopmentStorage=true", "--scope", "acme"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid scope \"acme\""));
    let out = run(&[
        "--from",
        "UseDevelopmentStorage=true",
        "--since",
        "yesterday",
    ]);
    assert_eq!(out.status.code(), Some(2));
    // Nothing listens: a connection error after retries, not a hang or a panic.
    let port = bifrost_test_support::ports::free_port();
    let out = run(&[
        "--from",
        &format!("AccountName=devstoreaccount1;AccountKey={};TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1", DEV_KEY),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("querying table Entities"));
}

fn ada() -> String {
    Principal::member("5eed0ada")
        .with_email("ada@example.com")
        .encode()
}

#[test]
fn with_a_sas_connection_string_serve_shows_the_migrated_executions_right_after() {
    let Some(azurite) = require(Azurite::start()) else {
        return;
    };
    let (day, old) = (days_ago(1), days_ago(20));
    let seeded: Value =
        serde_json::from_str(&azurite.seed(&["fixture", "--day", &day, "--expired-day", &old]))
            .expect("seed output");
    // Authenticate with an account SAS (read/list, Blob and Table) instead of the key.
    let sas = azurite.seed(&["sas"]);
    assert!(sas.contains("SharedAccessSignature=") && !sas.contains("AccountKey"));
    let data = temp_dir();
    let run = migrate_from(sas.trim(), data.path(), &[]);
    assert_eq!(
        count(&run.stdout, "migrated"),
        FIXTURE_EXECUTIONS as u64,
        "{}",
        run.stdout
    );
    assert_eq!(count(&run.stdout, "blobs copied"), 1);
    // The result over 2 MB is copied where serve reads blobs (same size as seeded).
    let copied = data
        .path()
        .join("blobs/execution-data/00000000-0000-0000-0000-00000000b1f4/result.json");
    let size = std::fs::metadata(&copied).expect("blob copied").len();
    assert_eq!(Some(size), seeded["big_result_bytes"].as_u64());
    assert!(size > 2 * 1024 * 1024);

    let app = super::helpers::BIN.serve(data.path(), &[]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let get = |path: String| {
            let base = app.base.clone();
            async move {
                let response = super::helpers::client()
                    .get(format!("{base}{path}"))
                    .header("X-MS-CLIENT-PRINCIPAL", ada())
                    .header("X-Organization-Id", "0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01")
                    .send()
                    .await
                    .expect("request");
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.expect("json"))
            }
        };
        // Ada is a member of org A by her migrated userperm rows: she sees its two executions.
        let (status, list) = get("/api/executions".into()).await;
        assert_eq!(status, 200, "{list}");
        let mut ids: Vec<&str> = list["executions"]
            .as_array()
            .expect("executions")
            .iter()
            .filter_map(|e| e["executionId"].as_str())
            .collect();
        ids.sort();
        assert_eq!(
            ids,
            [
                "00000000-0000-0000-0000-00000000b1f0",
                "00000000-0000-0000-0000-00000000b1f4"
            ]
        );
        let (status, logs) =
            get("/api/executions/00000000-0000-0000-0000-00000000b1f0/logs".into()).await;
        assert_eq!(status, 200, "{logs}");
        let messages: Vec<&str> = logs
            .as_array()
            .expect("logs")
            .iter()
            .filter_map(|l| l["message"].as_str())
            .collect();
        assert!(messages.contains(&"step one of 2"), "{logs}");
        let (status, result) =
            get("/api/executions/00000000-0000-0000-0000-00000000b1f4/result".into()).await;
        assert_eq!(status, 200, "{result}");
        assert_eq!(result["resultType"], "json");
        assert_eq!(
            result["result"]["rows"].as_array().map(Vec::len),
            Some(2200)
        );
    });
}

/// Results over 2 MB in an Azure Storage account (`azblob:`), as in Azure: migrate copies the
/// legacy blob into another account with its key (PUT, SharedKey), verify reads it back, and
/// serve streams it from there with a SAS (GET), never from a local directory.
#[test]
fn results_over_2_mb_are_copied_to_and_served_from_azure_blob_storage() {
    let Some(legacy) = require(Azurite::start()) else {
        return;
    };
    legacy.seed(&[
        "fixture",
        "--day",
        &days_ago(1),
        "--expired-day",
        &days_ago(20),
    ]);
    // The new deployment's account: its `execution-data` container exists (the Bicep creates
    // it; here the seed script's client setup does), and nothing is in it yet.
    let target = Azurite::start().expect("a second azurite: the first one started");
    let sas = target.seed(&["sas"]);
    let keyed = format!("azblob:{}", target.connection_string);
    let data = temp_dir();
    let run = migrate(&legacy, data.path(), &["--blobs", &keyed]);
    assert_eq!(count(&run.stdout, "blobs copied"), 1, "{}", run.stdout);
    assert!(!data.path().join("blobs").exists(), "copied to a directory");
    let verified = migrate(&legacy, data.path(), &["--verify", "--blobs", &keyed]);
    assert_eq!(verified.code, Some(0), "{}", verified.stdout);

    let from_sas = format!("azblob:{}", sas.trim());
    let app = super::helpers::BIN.serve(data.path(), &["--blobs", &from_sas]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let response = super::helpers::client()
            .get(format!(
                "{}/api/executions/00000000-0000-0000-0000-00000000b1f4/result",
                app.base
            ))
            .header("X-MS-CLIENT-PRINCIPAL", ada())
            .header("X-Organization-Id", "0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01")
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
        let result: Value = response.json().await.expect("json");
        assert_eq!(result["resultType"], "json");
        assert_eq!(
            result["result"]["rows"].as_array().map(Vec::len),
            Some(2200)
        );
    });
    drop(app);

    // A location that cannot be an account is refused before anything starts.
    let refused = super::helpers::BIN.run(&["serve", "--blobs", "azblob:AccountName=x"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("AccountKey or SharedAccessSignature")
    );
}

#[test]
fn a_source_that_goes_away_stops_the_run_cleanly_and_resume_finishes_it() {
    let Some(azurite) = require(Azurite::start()) else {
        return;
    };
    let day = seed_fixture(&azurite, 2, 300, 3);
    let reference = temp_dir();
    migrate(&azurite, reference.path(), &["--page-size", "50"]);

    let data = temp_dir();
    let (child, stderr) = spawn_paged_migrate(&azurite, data.path(), 2);
    // The storage account disappears mid-run (all its data with it: Azurite is in memory).
    drop(azurite);
    let rest = remaining_lines(&stderr, RUN_TIMEOUT);
    let output = finish(child, RUN_TIMEOUT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{rest:?}");
    assert!(stdout.contains("stopped early: "), "{stdout}");
    assert!(
        rest.iter()
            .any(|l| l.contains("migration stopped early") && l.contains("--resume")),
        "{rest:?}"
    );

    // The same account comes back (same rows, reseeded): --resume finishes the job.
    let azurite = Azurite::start().expect("azurite again: it started before");
    assert_eq!(seed_fixture(&azurite, 2, 300, 3), day);
    let resumed = migrate_from(&azurite.connection_string, data.path(), &["--resume"]);
    assert!(
        count(&resumed.stdout, "executions read") < 307,
        "{}",
        resumed.stdout
    );
    assert_eq!(end_state(data.path()), end_state(reference.path()));
}

/// The same migration into the Cosmos backend (the Cosmos-compatible server of the tests, on a
/// real socket): everything migrated, verify passes field by field, a rerun writes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn migrates_into_the_cosmos_backend() {
    let Some(azurite) = require(Azurite::start()) else {
        return;
    };
    seed_fixture(&azurite, 1, 20, 2);
    let emulator = crate::cosmos_emulator::start().await.expect("emulator");
    let store = emulator.store_url("bifrost");
    let ensure = super::helpers::BIN.run(&["ensure", "--store", &store]);
    assert!(
        ensure.status.success(),
        "{}",
        String::from_utf8_lossy(&ensure.stderr)
    );
    let data = temp_dir();
    let to = ["--to", store.as_str()];

    let first = migrate(&azurite, data.path(), &to);
    assert_eq!(first.code, Some(1), "{}\n{}", first.stdout, first.stderr);
    assert_eq!(
        count(&first.stdout, "migrated"),
        20 + FIXTURE_EXECUTIONS as u64,
        "{}",
        first.stdout
    );
    assert_eq!(count(&first.stdout, "failed"), 1);
    // With --to the big result stays in the legacy account, referenced, not copied.
    assert_eq!(count(&first.stdout, "blobs copied"), 0);
    assert_eq!(count(&first.stdout, "metrics days rebuilt"), 3);

    let verified = migrate(&azurite, data.path(), &["--verify", "--to", &store]);
    assert_eq!(
        verified.code,
        Some(0),
        "{}\n{}",
        verified.stdout,
        verified.stderr
    );
    assert_eq!(count(&verified.stdout, "matching in target"), 25);

    let rerun = migrate(&azurite, data.path(), &to);
    assert_eq!(count(&rerun.stdout, "unchanged"), 25, "{}", rerun.stdout);
    assert_eq!(count(&rerun.stdout, "documents written"), 0);
    // Nothing went to the embedded store.
    assert!(!data.path().join("bifrost.db").exists());
}
