//! Daily metrics, black-box: `serve` aggregates what `simulate` (a second process) writes, and
//! the dashboard routes answer from the daily documents.

use std::time::{Duration, Instant};

use bifrost_test_support::principal::Principal;
use serde_json::Value;

use crate::helpers::{client, temp_dir, BIN};

const ORG: &str = "3c9d1e2f-3333-4a4b-8c5d-6e7f8a9b0c1d";

fn admin() -> String {
    Principal::admin("ops")
        .with_email("ops@bifrost.dev")
        .encode()
}

async fn get(base: &str, path: &str, principal: &str, org: Option<&str>) -> (u16, Value) {
    let mut request = client()
        .get(format!("{base}{path}"))
        .header("X-MS-CLIENT-PRINCIPAL", principal);
    if let Some(org) = org {
        request = request.header("X-Organization-Id", org);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn dashboard_counts_what_the_change_feed_delivered() {
    let data = temp_dir();
    let app = BIN.serve(data.path(), &[]);
    let dir = data.path().to_str().unwrap();
    let output = BIN.run(&[
        "simulate",
        "--data",
        dir,
        "--executions",
        "6",
        "--logs",
        "3",
        "--rate",
        "0",
        "--scope",
        &format!("org-{ORG}"),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The metrics pump polls every second; wait for all six to be counted.
    let deadline = Instant::now() + Duration::from_secs(30);
    let stats = loop {
        let (status, body) = get(&app.base, "/api/metrics", &admin(), Some(ORG)).await;
        assert_eq!(status, 200, "{body}");
        if body["executionStats"]["totalExecutions"] == 6 {
            break body;
        }
        assert!(Instant::now() < deadline, "not counted in time: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let s = &stats["executionStats"];
    let (success, failed) = (
        s["successCount"].as_u64().unwrap(),
        s["failedCount"].as_u64().unwrap(),
    );
    assert_eq!(success + failed, 6, "{stats}");
    assert_eq!(
        stats["recentFailures"].as_array().unwrap().len() as u64,
        failed
    );
    assert_eq!(stats["scope"], ORG);

    // The trend route: today holds the six, every other day is zero-filled.
    let (status, daily) = get(&app.base, "/api/metrics/daily?days=7", &admin(), Some(ORG)).await;
    assert_eq!(status, 200);
    let days = daily["days"].as_array().unwrap();
    assert_eq!(days.len(), 7);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let last = days.last().unwrap();
    assert_eq!(last["date"], today.as_str());
    assert_eq!(last["totalExecutions"], 6);
    assert!(days[..6].iter().all(|d| d["totalExecutions"] == 0));

    // Another scope sees none of it; `scope=all` sums every scope, for admins only.
    let (_, global) = get(&app.base, "/api/metrics", &admin(), None).await;
    assert_eq!(global["executionStats"]["totalExecutions"], 0);
    let (_, all) = get(&app.base, "/api/metrics?scope=all", &admin(), None).await;
    assert_eq!(all["executionStats"]["totalExecutions"], 6);
    let member = bifrost_test_support::principal::member("nobody");
    let (status, _) = get(&app.base, "/api/metrics?scope=all", &member, None).await;
    assert_eq!(status, 403);

    // Bad input: JSON 400s.
    for path in [
        "/api/metrics/daily?days=0",
        "/api/metrics/daily?days=366",
        "/api/metrics/daily?days=week",
        "/api/metrics?scope=everything",
    ] {
        let (status, body) = get(&app.base, path, &admin(), None).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body["error"].is_string());
    }
}
