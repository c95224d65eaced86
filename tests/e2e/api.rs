//! The execution query API, black-box: `serve` spawned on a store this test seeds through the
//! library (a second process on the same SQLite file), every route called over HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};

use bifrost_workers::clock::SystemClock;
use bifrost_workers::model::{LogDoc, UserDoc};
use bifrost_workers::store::{sqlite::SqliteStore, Container, Store};

use bifrost_test_support::principal::Principal;
use bifrost_test_support::process::Process;

use crate::helpers::{client, temp_dir, BIN};

const ORG_A: &str = "0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01";
const ORG_B: &str = "7b1d2c3e-2222-4d3f-8a68-4e3c9a2b1b02";
const WORKFLOWS: [&str; 3] = ["onboard_user", "sync_licenses", "nightly_report"];
const STATUSES: [&str; 5] = [
    "Success",
    "Failed",
    "Running",
    "Timeout",
    "CompletedWithErrors",
];

/// One seeded execution, as the test expects to see it.
#[derive(Debug, Clone)]
struct Seeded {
    id: String,
    scope: String,
    workflow: String,
    status: String,
    executed_by: String,
    started_at: String,
}

/// Which seeded executions a filter should keep.
type Keep = Box<dyn Fn(&Seeded) -> bool>;

struct Fixture {
    _dir: tempfile::TempDir,
    app: Process,
    executions: Vec<Seeded>,
    /// The org-A execution with logs, variables and an inline result.
    rich: String,
    /// The org-A execution whose result lives in a blob.
    blob: String,
    blob_result: Value,
    /// An execution of org B.
    foreign: String,
}

fn alice() -> String {
    Principal::member("a11ce")
        .with_email("alice@contoso.com")
        .encode()
}
fn bob() -> String {
    Principal::member("b0b")
        .with_email("bob@fabrikam.com")
        .encode()
}
fn admin() -> String {
    Principal::admin("ad41n")
        .with_email("admin@bifrost.dev")
        .encode()
}

async fn seed(dir: &Path) -> (Vec<Seeded>, String, String, Value, String) {
    let store = SqliteStore::open(&dir.join("bifrost.db"), Arc::new(SystemClock)).unwrap();
    let now = chrono::Utc::now();
    let mut executions = Vec::new();
    let mut add = |scope: String, i: usize, executed_by: &str| {
        let started = now - chrono::Duration::minutes(i as i64 * 7 + 1);
        let seeded = Seeded {
            id: format!("{:08x}-0000-4000-8000-{:012x}", i, executions.len()),
            scope,
            workflow: WORKFLOWS[i % 3].to_owned(),
            status: STATUSES[i % 5].to_owned(),
            executed_by: executed_by.to_owned(),
            started_at: started.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        };
        executions.push(seeded);
    };
    for i in 0..60 {
        add(
            format!("org-{ORG_A}"),
            i,
            if i % 4 == 0 { "a11ce" } else { "someone-else" },
        );
    }
    for i in 0..5 {
        add(format!("org-{ORG_B}"), i, "b0b");
    }
    for i in 0..5 {
        add("GLOBAL".to_owned(), i, "ad41n");
    }
    for e in &executions {
        let terminal = e.status != "Running";
        store
            .create(
                Container::Executions,
                json!({
                    "id": e.id, "type": "execution", "scope": e.scope, "executionId": e.id,
                    "workflowName": e.workflow, "executedBy": e.executed_by,
                    "executedByName": e.executed_by, "status": e.status,
                    "inputData": {"n": 1}, "startedAt": e.started_at,
                    "completedAt": if terminal { json!(e.started_at) } else { Value::Null },
                    "durationMs": if terminal { json!(1500) } else { Value::Null },
                    "errorMessage": if e.status == "Failed" { json!("Boom") } else { Value::Null },
                }),
            )
            .await
            .unwrap();
    }
    for (user, org) in [("a11ce", ORG_A), ("b0b", ORG_B)] {
        store
            .create(
                Container::Entities,
                json!({
                    "id": UserDoc::id_for(user), "type": "user", "scope": "GLOBAL",
                    "userId": user, "orgScopes": [format!("org-{org}")],
                }),
            )
            .await
            .unwrap();
    }
    let rich = executions[0].id.clone();
    let levels = [
        "INFO",
        "DEBUG",
        "WARNING",
        "TRACEBACK",
        "ERROR",
        "INFO",
        "debug",
        "INFO",
    ];
    for (i, level) in levels.iter().enumerate() {
        let sequence = i as u64 + 1;
        store
            .create(
                Container::ExecutionData,
                json!({
                    "id": LogDoc::id_for(&rich, sequence), "type": "log", "executionId": rich,
                    "timestamp": executions[0].started_at, "level": level,
                    "message": format!("line {sequence}"), "sequence": sequence,
                }),
            )
            .await
            .unwrap();
    }
    for version in [1, 2] {
        store
            .create(
                Container::ExecutionData,
                json!({
                    "id": format!("variables-snapshot-v{version}"), "type": "variables",
                    "executionId": rich, "timestamp": executions[0].started_at,
                    "version": version, "variables": {"counter": version},
                }),
            )
            .await
            .unwrap();
    }
    store
        .create(
            Container::ExecutionData,
            json!({
                "id": "result", "type": "result", "executionId": rich,
                "timestamp": executions[0].started_at, "result": {"greeting": "hello"},
                "resultType": "json", "resultSize": 21,
            }),
        )
        .await
        .unwrap();
    // A result over the 2 MB document limit: kept in blob storage, referenced by blobRef.
    let blob = executions[4].id.clone();
    let rows: Vec<Value> = (0..30_000)
        .map(|i| json!({"row": i, "name": format!("user-{i:06}"), "pad": "x".repeat(40)}))
        .collect();
    let blob_result = Value::Array(rows);
    let blob_text = blob_result.to_string();
    assert!(blob_text.len() > 2 * 1024 * 1024);
    let blob_ref = format!("execution-data/{blob}/result.json");
    let path = dir.join("blobs").join(&blob_ref);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &blob_text).unwrap();
    store
        .create(
            Container::ExecutionData,
            json!({
                "id": "result", "type": "result", "executionId": blob,
                "timestamp": executions[4].started_at, "resultType": "json",
                "resultSize": blob_text.len(), "blobRef": blob_ref,
            }),
        )
        .await
        .unwrap();
    let foreign = executions[60].id.clone();
    (executions, rich, blob, blob_result, foreign)
}

async fn fixture() -> Fixture {
    let dir = temp_dir();
    let (executions, rich, blob, blob_result, foreign) = seed(dir.path()).await;
    let app = BIN.serve(dir.path(), &[]);
    Fixture {
        _dir: dir,
        app,
        executions,
        rich,
        blob,
        blob_result,
        foreign,
    }
}

async fn get(
    app: &Process,
    path: &str,
    principal: Option<&str>,
    org: Option<&str>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut request = client().get(format!("{}{path}", app.base));
    if let Some(p) = principal {
        request = request.header("X-MS-CLIENT-PRINCIPAL", p);
    }
    if let Some(o) = org {
        request = request.header("X-Organization-Id", o);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text:.200}"));
    (status, body, headers)
}

/// Every page of a list, following the continuation token to the end.
async fn all_pages(app: &Process, query: &str, who: &str, org: Option<&str>) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..200 {
        let mut path = format!("/api/executions?{query}");
        if let Some(t) = &token {
            path.push_str(&format!("&continuationToken={}", urlencode(t)));
        }
        let (status, body, _) = get(app, &path, Some(who), org).await;
        assert_eq!(status, 200, "{path}: {body}");
        let page = body["executions"].as_array().unwrap();
        rows.extend(page.iter().cloned());
        assert_eq!(
            body["hasMore"],
            json!(body["continuationToken"].is_string())
        );
        match body["continuationToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => return rows,
        }
    }
    panic!("pagination did not end");
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["executionId"].as_str().unwrap().to_owned())
        .collect()
}

/// The expected list: matching executions, newest first.
fn expected(f: &Fixture, keep: impl Fn(&Seeded) -> bool) -> Vec<String> {
    let mut matching: Vec<&Seeded> = f.executions.iter().filter(|e| keep(e)).collect();
    matching.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
    matching.iter().map(|e| e.id.clone()).collect()
}

#[tokio::test]
async fn lists_paginate_to_the_end_in_order_with_every_filter_pushed_down() {
    let f = fixture().await;
    let org_a = format!("org-{ORG_A}");

    // Pagination to the end: no duplicates, no gaps, newest first.
    let rows = all_pages(&f.app, "limit=7", &alice(), None).await;
    assert_eq!(ids(&rows), expected(&f, |e| e.scope == org_a));
    let unique: BTreeSet<String> = ids(&rows).into_iter().collect();
    assert_eq!(unique.len(), 60);
    for row in &rows {
        assert_eq!(row.as_object().unwrap().len(), 16, "{row}");
        assert_eq!(row["orgId"], ORG_A);
    }

    // Each filter alone and combined, compared with the seeded truth.
    let cases: Vec<(String, Keep)> = vec![
        (
            "workflowName=sync_licenses".into(),
            Box::new(|e: &Seeded| e.workflow == "sync_licenses"),
        ),
        (
            "status=completed".into(),
            Box::new(|e: &Seeded| e.status == "Success"),
        ),
        (
            "status=Failed".into(),
            Box::new(|e: &Seeded| e.status == "Failed"),
        ),
        (
            "status=failed,timeout".into(),
            Box::new(|e: &Seeded| e.status == "Failed" || e.status == "Timeout"),
        ),
        (
            "executedBy=a11ce".into(),
            Box::new(|e: &Seeded| e.executed_by == "a11ce"),
        ),
        (
            "workflowName=onboard_user&status=running".into(),
            Box::new(|e: &Seeded| e.workflow == "onboard_user" && e.status == "Running"),
        ),
    ];
    for (query, keep) in cases {
        let got = ids(&all_pages(&f.app, &format!("{query}&limit=4"), &alice(), None).await);
        let want = expected(&f, |e| e.scope == org_a && keep(e));
        assert!(
            !want.is_empty(),
            "{query}: the seed must make this case non-trivial"
        );
        assert_eq!(got, want, "{query}");
    }

    // Date window: inclusive bounds on startedAt.
    let a_rows = expected(&f, |e| e.scope == org_a);
    let by_id: BTreeMap<&str, &Seeded> = f.executions.iter().map(|e| (e.id.as_str(), e)).collect();
    let (newer, older) = (by_id[a_rows[10].as_str()], by_id[a_rows[20].as_str()]);
    let query = format!(
        "startDate={}&endDate={}&limit=4",
        urlencode(&older.started_at),
        urlencode(&newer.started_at)
    );
    let got = ids(&all_pages(&f.app, &query, &alice(), None).await);
    assert_eq!(got, a_rows[10..=20].to_vec());

    // Filters are pushed into the store: a filtered page is full when enough rows match.
    let (_, body, _) = get(
        &f.app,
        "/api/executions?status=completed&limit=5",
        Some(&alice()),
        None,
    )
    .await;
    assert_eq!(body["executions"].as_array().unwrap().len(), 5);

    // Default page size is 25; the POST form takes the same filters as a body.
    let (_, body, _) = get(&f.app, "/api/executions", Some(&alice()), None).await;
    assert_eq!(body["executions"].as_array().unwrap().len(), 25);
    let response = client()
        .post(format!("{}/api/executions/query", f.app.base))
        .header("X-MS-CLIENT-PRINCIPAL", alice())
        .json(&json!({"status": ["failed"], "limit": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        ids(body["executions"].as_array().unwrap()),
        expected(&f, |e| e.scope == org_a && e.status == "Failed")
    );
}

#[tokio::test]
async fn callers_only_ever_see_their_own_scope() {
    let f = fixture().await;
    let org_b = format!("org-{ORG_B}");

    // No or a broken principal: 401 JSON on every route; a function key is not an identity.
    let routes = [
        "/api/executions".to_owned(),
        format!("/api/executions/{}", f.rich),
        format!("/api/executions/{}/logs", f.rich),
        format!("/api/executions/{}/variables", f.rich),
        format!("/api/executions/{}/result", f.rich),
    ];
    for route in &routes {
        let (status, body, _) = get(&f.app, route, None, None).await;
        assert_eq!(status, 401, "{route}");
        assert!(body["error"]
            .as_str()
            .unwrap()
            .contains("X-MS-CLIENT-PRINCIPAL"));
        let (status, _, _) = get(&f.app, route, Some("bm90IGpzb24="), None).await;
        assert_eq!(status, 401, "{route}");
        let keyed = client()
            .get(format!("{}{route}?code=anything", f.app.base))
            .header("x-functions-key", "anything")
            .send()
            .await
            .unwrap();
        assert_eq!(keyed.status(), 401, "{route}");
    }

    // Bob (org B) sees org B only; Alice (org A) cannot reach org B's execution by any route.
    let bob_rows = all_pages(&f.app, "limit=2", &bob(), None).await;
    assert_eq!(ids(&bob_rows), expected(&f, |e| e.scope == org_b));
    for route in [
        format!("/api/executions/{}", f.foreign),
        format!("/api/executions/{}/logs", f.foreign),
        format!("/api/executions/{}/variables", f.foreign),
        format!("/api/executions/{}/result", f.foreign),
    ] {
        let (status, body, _) = get(&f.app, &route, Some(&alice()), None).await;
        assert_eq!(status, 404, "{route}: {body}");
        let (status, _, _) = get(&f.app, &route, Some(&bob()), None).await;
        assert_ne!(status, 404, "{route}: bob owns it");
    }
    // Alice cannot switch to org B or to GLOBAL with the header.
    for org in [ORG_B, "GLOBAL"] {
        let (status, body, _) = get(&f.app, "/api/executions", Some(&alice()), Some(org)).await;
        assert_eq!(status, 403, "{org}: {body}");
    }
    // A user with no membership is refused, not shown GLOBAL.
    let stranger = bifrost_test_support::principal::member("nobody");
    let (status, _, _) = get(&f.app, "/api/executions", Some(&stranger), None).await;
    assert_eq!(status, 403);

    // Admins: GLOBAL by default, any org with X-Organization-Id; lookups stay within that scope.
    let global = all_pages(&f.app, "limit=100", &admin(), None).await;
    assert_eq!(ids(&global), expected(&f, |e| e.scope == "GLOBAL"));
    assert!(global.iter().all(|r| r["orgId"] == "GLOBAL"));
    let as_b = all_pages(&f.app, "limit=100", &admin(), Some(ORG_B)).await;
    assert_eq!(ids(&as_b), expected(&f, |e| e.scope == org_b));
    let route = format!("/api/executions/{}", f.foreign);
    assert_eq!(
        get(&f.app, &route, Some(&admin()), Some(ORG_B)).await.0,
        200
    );
    assert_eq!(get(&f.app, &route, Some(&admin()), None).await.0, 404);
}

#[tokio::test]
async fn detail_logs_variables_and_results() {
    let f = fixture().await;
    let route = |suffix: &str| format!("/api/executions/{}{suffix}", f.rich);

    let (status, detail, headers) = get(&f.app, &route(""), Some(&alice()), None).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(detail.as_object().unwrap().len(), 16);
    assert_eq!(detail["result"], json!({"greeting": "hello"}));
    assert_eq!(detail["resultType"], "json");
    assert!(detail["variables"].is_null(), "variables are admin-only");
    let levels: Vec<&str> = detail["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["INFO", "WARNING", "ERROR", "INFO", "INFO"]);

    // Logs: members never see a DEBUG/TRACEBACK line's content (any casing), only its place as
    // a placeholder, so `sequence` stays gap-free; admins see all, in sequence order.
    let sequences = |body: &Value| -> Vec<u64> {
        body.as_array()
            .unwrap()
            .iter()
            .map(|l| l["sequence"].as_u64().unwrap())
            .collect()
    };
    let (_, logs, _) = get(&f.app, &route("/logs"), Some(&alice()), None).await;
    assert_eq!(sequences(&logs), (1..=8).collect::<Vec<_>>());
    for line in logs.as_array().unwrap() {
        let hidden = [2, 4, 7].contains(&line["sequence"].as_u64().unwrap());
        if hidden {
            let mut keys: Vec<&str> = line
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            keys.sort();
            assert_eq!(
                keys,
                ["id", "level", "redacted", "sequence", "timestamp"],
                "{line}"
            );
            assert_eq!(line["redacted"], true);
        } else {
            assert!(
                line["message"].is_string() && line.get("redacted").is_none(),
                "{line}"
            );
        }
    }
    let admin_org = Some(ORG_A);
    let (_, logs, _) = get(&f.app, &route("/logs"), Some(&admin()), admin_org).await;
    assert_eq!(sequences(&logs), (1..=8).collect::<Vec<_>>());
    assert_eq!(logs[0]["executionLogId"], logs[0]["id"]);
    // Resume after a sequence, and page with limit + the next-page header.
    let (_, logs, _) = get(
        &f.app,
        &route("/logs?afterSequence=5"),
        Some(&admin()),
        admin_org,
    )
    .await;
    assert_eq!(sequences(&logs), [6, 7, 8]);
    let (_, logs, headers) = get(&f.app, &route("/logs?limit=3"), Some(&admin()), admin_org).await;
    assert_eq!(sequences(&logs), [1, 2, 3]);
    assert_eq!(headers["x-next-after-sequence"], "3");
    let (_, logs, headers) = get(
        &f.app,
        &route("/logs?afterSequence=6&limit=3"),
        Some(&admin()),
        admin_org,
    )
    .await;
    assert_eq!(sequences(&logs), [7, 8]);
    assert!(headers.get("x-next-after-sequence").is_none());

    // Variables: the latest snapshot, for admins only; `{}` when there is none.
    let (status, vars, _) = get(&f.app, &route("/variables"), Some(&admin()), admin_org).await;
    assert_eq!((status, vars), (200, json!({"counter": 2})));
    let (status, body, _) = get(&f.app, &route("/variables"), Some(&alice()), None).await;
    assert_eq!(status, 403, "{body}");
    let other = format!("/api/executions/{}/variables", f.executions[1].id);
    assert_eq!(
        get(&f.app, &other, Some(&admin()), admin_org).await.1,
        json!({})
    );

    // Results: inline, through a blob reference when over 2 MB, and null when there is none.
    let (_, result, _) = get(&f.app, &route("/result"), Some(&alice()), None).await;
    assert_eq!(
        result,
        json!({"result": {"greeting": "hello"}, "resultType": "json"})
    );
    let blob_route = format!("/api/executions/{}/result", f.blob);
    let (status, result, _) = get(&f.app, &blob_route, Some(&alice()), None).await;
    assert_eq!(status, 200);
    assert_eq!(result["resultType"], "json");
    assert!(result["result"] == f.blob_result, "blob result differs");
    let none = format!("/api/executions/{}/result", f.executions[1].id);
    assert_eq!(
        get(&f.app, &none, Some(&alice()), None).await.1,
        json!({"result": null, "resultType": null})
    );
}

#[tokio::test]
async fn bad_input_is_a_400_json_with_a_message_never_a_500() {
    let f = fixture().await;
    let long_id = "a".repeat(300);
    let bad = [
        "/api/executions?limit=abc".to_owned(),
        "/api/executions?limit=-1".to_owned(),
        "/api/executions?limit=0".to_owned(),
        "/api/executions?limit=1e3".to_owned(),
        "/api/executions?continuationToken=garbage".to_owned(),
        "/api/executions?continuationToken=c1.bm90LWEtdG9rZW4".to_owned(),
        "/api/executions?startDate=yesterday".to_owned(),
        "/api/executions?endDate=2026-02-30".to_owned(),
        "/api/executions?startDate=2026-11-02&endDate=2026-11-01".to_owned(),
        "/api/executions?status=bogus".to_owned(),
        format!("/api/executions?workflowName={}", "w".repeat(300)),
        format!("/api/executions/{long_id}"),
        format!("/api/executions/{}", urlencode("x' OR 1=1 --")),
        format!("/api/executions/{}/logs", urlencode("\") OR true --")),
        format!("/api/executions/{}/logs?afterSequence=-3", f.rich),
        format!("/api/executions/{}/logs?limit=many", f.rich),
    ];
    for path in &bad {
        let (status, body, _) = get(&f.app, path, Some(&alice()), None).await;
        assert_eq!(status, 400, "{path}: {body}");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(message.len() > 10, "{path}: {body}");
    }
    // Injection-looking filter values are just values: no match, no error.
    for query in [
        "workflowName=x'%20OR%201=1%20--",
        "executedBy=%22)%20OR%20true%20--",
    ] {
        let (status, body, _) = get(
            &f.app,
            &format!("/api/executions?{query}"),
            Some(&alice()),
            None,
        )
        .await;
        assert_eq!(status, 200, "{query}");
        assert_eq!(body["executions"], json!([]), "{query}");
    }
    // A token is bound to its query: reusing it with other filters is refused.
    let (_, page, _) = get(&f.app, "/api/executions?limit=2", Some(&alice()), None).await;
    let token = page["continuationToken"].as_str().unwrap();
    let path = format!(
        "/api/executions?limit=2&status=failed&continuationToken={}",
        urlencode(token)
    );
    let (status, body, _) = get(&f.app, &path, Some(&alice()), None).await;
    assert_eq!(status, 400, "{body}");
    // A bad organization header and malformed POST bodies.
    let (status, _, _) = get(
        &f.app,
        "/api/executions",
        Some(&admin()),
        Some("not-an-org"),
    )
    .await;
    assert_eq!(status, 400);
    for body in ["{", "[]", r#"{"limit":"x"}"#, r#"{"n":20}"#] {
        let response = client()
            .post(format!("{}/api/executions/query", f.app.base))
            .header("X-MS-CLIENT-PRINCIPAL", alice())
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let json: Value = response.json().await.unwrap();
        assert!(json["error"].is_string());
    }
    // A wrong method on a GET route is a JSON 405.
    let response = client()
        .delete(format!("{}/api/executions", f.app.base))
        .header("X-MS-CLIENT-PRINCIPAL", alice())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
}

/// Handler mode serves the same functions: the host's GetExecution payload
/// (`http_get_execution.json`) with a function key but no principal is a 401 in `Outputs.res`,
/// not an admin read.
#[tokio::test]
async fn handler_mode_get_execution_requires_a_principal() {
    let data = temp_dir();
    let (app, _) = BIN.handler(data.path());
    let payload = crate::helpers::fixture("http_get_execution.json");
    let response = client()
        .post(format!("{}/GetExecution", app.base))
        .body(payload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["Outputs"]["res"]["statusCode"], 401);

    // With a principal of an admin, the same payload reaches the store: a clean 404.
    let mut payload: Value = serde_json::from_slice(&payload).unwrap();
    payload["Data"]["req"]["Headers"]["X-MS-CLIENT-PRINCIPAL"] = json!([admin()]);
    let response = client()
        .post(format!("{}/GetExecution", app.base))
        .json(&payload)
        .send()
        .await
        .unwrap();
    let reply: Value = response.json().await.unwrap();
    let res = &reply["Outputs"]["res"];
    assert_eq!(res["statusCode"], 404, "{reply}");
    let body: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"], "execution exec-42 not found");
}
