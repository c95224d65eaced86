//! `migrate` of every legacy row kind that is not an execution: organizations, users (with
//! their memberships and roles), roles, forms (with their roles), config, integrations, GitHub,
//! OAuth connections of both generations, branding. The rows are written into Azurite by the
//! Python `azure-data-tables` SDK the way the legacy repositories wrote them
//! (`tests/legacy/seed.py entities`), including the plaintext secrets an admin could type into
//! `Config`: none of them may reach a document, the checkpoint, the spool, any output.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use bifrost_test_support::azurite::Azurite;
use bifrost_test_support::principal::Principal;
use bifrost_test_support::tools::require;

use super::helpers::{client, files_under, spawn_serve, temp_dir, Run, BIN};
use super::migrate::count;

const ORG_A: &str = "0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01";
const ORG_B: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const ORG_SEEDED: &str = "5d6e7f80-9a0b-4c1d-8e2f-3a4b5c6d7e8f";
const ROLE_OPS: &str = "6a1f3c2e-0b7d-4e5f-8a9b-1c2d3e4f5a60";
const ROLE_GLOBAL: &str = "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d";
const ROLE_EARLY: &str = "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a";
const FORM_NEW: &str = "3f9a2c71-8e44-4b6a-9d2e-5c7b1a0f8e63";
const FORM_OLD: &str = "c0ffee00-1234-4abc-8def-0123456789ab";
/// `isoformat()` of the seed's two instants, as canonical UTC.
const AT: &str = "2025-10-20T09:15:02.123456Z";
const PLAIN: &str = "2025-10-21T11:00:00.000000Z";

/// The seeded account and the plaintext secrets it holds.
struct Seeded {
    azurite: Azurite,
    secrets: Vec<String>,
    /// What the seed printed (the secrets among it).
    report: String,
}

fn seed() -> Option<Seeded> {
    let azurite = require(Azurite::start())?;
    let report = azurite.seed(&["entities"]);
    let printed: Value = serde_json::from_str(report.trim()).expect("seed");
    let secrets: Vec<String> = printed["secrets"]
        .as_object()
        .expect("secrets")
        .values()
        .map(|s| s.as_str().expect("secret").to_owned())
        .collect();
    assert_eq!(secrets.len(), 7, "{printed}");
    Some(Seeded {
        azurite,
        secrets,
        report,
    })
}

/// `migrate --from <azurite> --data DATA EXTRA…` with `TMPDIR` (where the log spool goes) set.
fn migrate(seeded: &Seeded, data: &Path, tmp: &Path, extra: &[&str]) -> Run {
    Run::of(&mut migrate_command(&seeded.azurite, data, tmp, extra))
}

fn migrate_command(azurite: &Azurite, data: &Path, tmp: &Path, extra: &[&str]) -> Command {
    let mut command = BIN.command();
    command
        .env("TMPDIR", tmp)
        .args(["migrate", "--from", &azurite.connection_string])
        .arg("--data")
        .arg(data)
        .args(extra);
    command
}

/// The numbers of a kind's line of the entities summary: read, written, unchanged, skipped,
/// failed, redacted.
fn tally(stdout: &str, kind: &str) -> [u64; 6] {
    let line = stdout
        .lines()
        .skip_while(|l| *l != "entities summary")
        .find(|l| l.split_whitespace().next() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} line in:\n{stdout}"));
    let numbers: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().expect("number"))
        .collect();
    numbers.try_into().expect("six numbers")
}

/// Every entity kind's (read, written, unchanged, skipped, failed, redacted) when nothing is in
/// the target yet: (kind, read, documents, skipped, redacted).
const KINDS: [(&str, u64, u64, u64, u64); 7] = [
    ("organizations", 3, 3, 0, 0),
    // 4 user rows, 4 userperm rows, 4 userrole rows; a second case of Ada's e-mail, a role
    // assignment of nobody and one of a role that does not exist are skipped.
    ("users", 12, 4, 3, 0),
    ("roles", 3, 3, 0, 0),
    // 2 form rows, 2 formrole rows (one of a deleted form).
    ("forms", 4, 2, 1, 0),
    ("config", 11, 11, 0, 5),
    // Generation 2: 2 rows; generation 1: 2 × 3 rows (halo superseded by generation 2) and a
    // client secret without its metadata row.
    ("oauth_connections", 9, 3, 2, 1),
    ("branding", 2, 2, 0, 0),
];

/// A stored body without the store's system properties.
fn user_fields(body: &Value) -> Value {
    let mut body = body.clone();
    if let Some(fields) = body.as_object_mut() {
        fields.retain(|name, _| !name.starts_with('_'));
    }
    body
}

/// The `entities` documents of the embedded store: (scope, id) → body.
fn embedded_entities(data: &Path) -> BTreeMap<(String, String), Value> {
    let db = rusqlite::Connection::open(data.join("bifrost.db")).expect("open db");
    let mut statement = db
        .prepare("SELECT pk, id, body FROM documents WHERE container = 'entities'")
        .expect("prepare");
    let rows = statement
        .query_map([], |r| {
            let body: String = r.get(2)?;
            Ok(((r.get(0)?, r.get(1)?), body))
        })
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows");
    rows.into_iter()
        .map(|(key, body)| {
            (
                key,
                user_fields(&serde_json::from_str(&body).expect("json")),
            )
        })
        .collect()
}

/// Every document of the store's `entities` and `leases` (the checkpoint) containers, from the
/// change feed, as JSON text.
async fn store_documents(store_url: &str) -> (BTreeMap<(String, String), Value>, String) {
    use bifrost_workers::store::{Container, FeedPosition};
    let store = bifrost_workers::store::open(
        &store_url.parse().expect("store url"),
        std::sync::Arc::new(bifrost_workers::clock::SystemClock),
    )
    .await
    .expect("open store");
    let mut entities = BTreeMap::new();
    let mut text = String::new();
    for container in [Container::Entities, Container::Leases] {
        let mut position = FeedPosition::Beginning;
        for _ in 0..100 {
            let page = store
                .read_change_feed(container, &position, 1000)
                .await
                .expect("change feed");
            if page.documents.is_empty() {
                break;
            }
            for doc in &page.documents {
                text.push_str(&doc.to_string());
                if container == Container::Entities {
                    let key = (
                        doc["scope"].as_str().unwrap_or_default().to_owned(),
                        doc["id"].as_str().unwrap_or_default().to_owned(),
                    );
                    entities.insert(key, user_fields(doc));
                }
            }
            position = FeedPosition::Continuation(page.continuation);
        }
    }
    (entities, text)
}

/// `(secret, where)` for every secret found in any of the named texts.
fn secrets_in(secrets: &[String], haystacks: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (name, bytes) in haystacks {
        for secret in secrets {
            if bytes
                .windows(secret.len())
                .any(|window| window == secret.as_bytes())
            {
                found.push((secret.clone(), name.clone()));
            }
        }
    }
    found
}

/// Fails when any secret appears in any of the named texts (of which there must be some).
fn assert_no_secret(secrets: &[String], haystacks: &[(String, Vec<u8>)]) {
    assert!(haystacks.len() > 2, "nothing to search");
    let found = secrets_in(secrets, haystacks);
    assert!(found.is_empty(), "secrets in clear: {found:?}");
}

/// Every file under the directories, by path.
fn files_of(dirs: &[&Path]) -> Vec<(String, Vec<u8>)> {
    dirs.iter()
        .flat_map(|dir| files_under(dir))
        .map(|path| {
            let bytes = std::fs::read(&path).expect("read file");
            (path.display().to_string(), bytes)
        })
        .collect()
}

fn outputs(runs: &[&Run]) -> Vec<(String, Vec<u8>)> {
    runs.iter()
        .enumerate()
        .flat_map(|(i, run)| {
            [
                (
                    format!("stdout of run {i}"),
                    run.stdout.clone().into_bytes(),
                ),
                (
                    format!("stderr of run {i}"),
                    run.stderr.clone().into_bytes(),
                ),
            ]
        })
        .collect()
}

fn org(uuid: &str) -> String {
    format!("org-{uuid}")
}

/// What every document must be, field by field: (scope, id) → body.
fn expected_documents() -> BTreeMap<(String, String), Value> {
    let field = |name: &str, label: &str, kind: &str, required: bool| {
        json!({"name": name, "label": label, "type": kind, "required": required, "validation": null,
               "dataProvider": null, "dataProviderInputs": null, "defaultValue": null,
               "placeholder": null, "helpText": null, "visibilityExpression": null, "options": null,
               "allowedTypes": null, "multiple": null, "maxSizeMB": null, "content": null,
               "allowAsQueryParam": null})
    };
    let mut email = field("email", "E-mail", "email", true);
    email["dataProvider"] = json!("users");
    email["dataProviderInputs"] =
        json!({"org": {"mode": "static", "value": "a", "fieldName": null, "expression": null}});
    email["allowAsQueryParam"] = json!(true);
    let mut note = field("note", "Note", "textarea", false);
    note["placeholder"] = json!("Say why");
    let config = |scope: &str, key: &str, value: Option<&str>, kind: &str, description: Value| {
        let mut doc = json!({"id": format!("config-{key}"), "type": "config", "scope": scope,
            "key": key, "configType": kind, "description": description, "updatedAt": AT,
            "updatedBy": "root@example.com", "valueRedacted": value.is_none()});
        if let Some(value) = value {
            doc["value"] = json!(value);
        }
        doc
    };
    let user = |email: &str, name: Value, kind: Value, admin: bool, active: Value| {
        json!({"id": format!("user-{email}"), "type": "user", "scope": "GLOBAL", "userId": email,
               "email": email, "displayName": name, "userType": kind, "isPlatformAdmin": admin,
               "isActive": active, "createdAt": AT, "lastLogin": null, "entraUserId": null,
               "lastEntraIdSync": null, "orgScopes": [], "roleIds": []})
    };
    let mut ada = user(
        "ada@example.com",
        json!("Ada Lovelace"),
        json!("ORG"),
        false,
        json!(true),
    );
    ada["lastLogin"] = json!("2025-11-02T10:00:00.500000Z");
    ada["orgScopes"] = json!([org(ORG_A), org(ORG_B)]);
    ada["roleIds"] = json!([ROLE_OPS]);
    let mut root = user(
        "root@example.com",
        json!("Root"),
        json!("PLATFORM"),
        true,
        json!(true),
    );
    root["lastLogin"] = json!(PLAIN);
    root["entraUserId"] = json!("0e1f2a3b-aaaa-4bbb-8ccc-123456789abc");
    root["lastEntraIdSync"] = json!(PLAIN);
    let mut gone = user(
        "gone@example.com",
        json!("Gone"),
        json!("ORG"),
        false,
        json!(false),
    );
    gone["lastLogin"] = json!(AT);
    gone["orgScopes"] = json!([org(ORG_A)]);
    // Known only from a membership: no user row.
    let mut carol = user(
        "carol@example.com",
        Value::Null,
        Value::Null,
        false,
        Value::Null,
    );
    carol["createdAt"] = Value::Null;
    carol["orgScopes"] = json!([org(ORG_A)]);
    carol["roleIds"] = json!([ROLE_GLOBAL]);
    let organization = |uuid: &str, name: &str, domain: Value, active: bool, by: &str, at: &str| {
        let updated = if at == AT { PLAIN } else { at };
        json!({"id": org(uuid), "type": "organization", "scope": "GLOBAL", "orgId": uuid,
               "name": name, "domain": domain, "isActive": active, "createdAt": at,
               "createdBy": by, "updatedAt": updated})
    };
    let role = |scope: &str,
                uuid: &str,
                name: &str,
                description: Value,
                active: bool,
                by: &str,
                at: &str,
                updated: &str| {
        json!({"id": format!("role-{uuid}"), "type": "role", "scope": scope, "roleId": uuid,
               "name": name, "description": description, "isActive": active, "createdBy": by,
               "createdAt": at, "updatedAt": updated})
    };
    let oauth_nulls = json!({"authorizationUrl": null, "clientSecretRef": null, "oauthResponseRef": null,
        "description": null, "expiresAt": null, "statusMessage": null, "updatedBy": null});
    let oauth = |scope: &str, name: &str, fields: Value| {
        let mut doc = oauth_nulls.clone();
        for (key, value) in fields.as_object().expect("fields") {
            doc[key] = value.clone();
        }
        doc["id"] = json!(format!("oauth-{name}"));
        doc["type"] = json!("oauth_connection");
        doc["scope"] = json!(scope);
        doc["connectionName"] = json!(name);
        doc
    };
    let ts = |t: &str| format!("{t}.000000Z");
    let documents = [
        organization(
            ORG_A,
            "Org A",
            json!("a.example.com"),
            true,
            "d75b260a64504067bfc5b2905e3b8182",
            AT,
        ),
        organization(ORG_B, "Org B", Value::Null, false, "system", AT),
        // The 2025-10-14 seed's shape: TenantId dropped, no Domain.
        organization(
            ORG_SEEDED,
            "Seeded",
            Value::Null,
            true,
            "system",
            &ts("2025-10-14T08:00:00"),
        ),
        ada,
        root,
        gone,
        carol,
        role(
            &org(ORG_A),
            ROLE_OPS,
            "Ops",
            json!("Runs things"),
            true,
            "root@example.com",
            AT,
            AT,
        ),
        role(
            "GLOBAL",
            ROLE_GLOBAL,
            "Everyone",
            Value::Null,
            false,
            "root@example.com",
            AT,
            PLAIN,
        ),
        // From the Relationships table of 2025-10-14..17.
        role(
            "GLOBAL",
            ROLE_EARLY,
            "Early",
            Value::Null,
            true,
            "system",
            &ts("2025-10-15T12:00:00"),
            &ts("2025-10-15T12:00:00"),
        ),
        json!({"id": format!("form-{FORM_NEW}"), "type": "form", "scope": org(ORG_A), "formId": FORM_NEW,
               "name": "Onboard", "description": "New hire", "linkedWorkflow": "user_onboarding",
               "formSchema": {"fields": [email, note]}, "isActive": true, "accessLevel": "role_based",
               "createdBy": "root@example.com", "createdAt": AT, "updatedAt": PLAIN,
               "launchWorkflowId": "prefill", "allowedQueryParams": ["email"],
               "defaultLaunchParams": {"source": "form"}, "roleIds": [ROLE_OPS]}),
        // Before AccessLevel existed: IsPublic is dropped, accessLevel null (legacy: role_based).
        json!({"id": format!("form-{FORM_OLD}"), "type": "form", "scope": "GLOBAL", "formId": FORM_OLD,
               "name": "Old form", "description": null, "linkedWorkflow": "simple_greeting",
               "formSchema": {"fields": []}, "isActive": true, "accessLevel": null,
               "createdBy": "system", "createdAt": ts("2025-10-16T09:00:00"),
               "updatedAt": ts("2025-10-16T09:00:00"), "launchWorkflowId": null,
               "allowedQueryParams": null, "defaultLaunchParams": null, "roleIds": []}),
        config(
            "GLOBAL",
            "halo_url",
            Some("https://halo.example.com"),
            "string",
            json!("HaloPSA"),
        ),
        config("GLOBAL", "max_retries", Some("3"), "int", Value::Null),
        config("GLOBAL", "feature_on", Some("true"), "bool", Value::Null),
        config(
            "GLOBAL",
            "mapping",
            Some("{\"a\": 1, \"b\": [1, 2]}"),
            "json",
            Value::Null,
        ),
        config(
            "GLOBAL",
            "graph_secret",
            Some("bifrost-global-graph-secret-2b7e0c1d-8f5a-4e3b-9c6d-1a2b3c4d5e6f"),
            "secret_ref",
            json!("Graph"),
        ),
        // Withheld: a sensitive key, a sensitive JSON member, a value that is a connection string.
        config(&org(ORG_A), "smtp_password", None, "string", json!("SMTP")),
        config(&org(ORG_A), "api_settings", None, "json", Value::Null),
        config("GLOBAL", "archive_storage", None, "string", Value::Null),
        json!({"id": "integration-halopsa", "type": "config", "scope": org(ORG_A),
               "configType": "integration", "integrationType": "halopsa", "enabled": true,
               "settings": {"api_url": "https://halo.example.com/api", "client_id": "halo-client"},
               "updatedAt": AT, "updatedBy": "root@example.com", "redactedSettings": ["api_key_ref"]}),
        json!({"id": "integration-msgraph", "type": "config", "scope": "GLOBAL",
               "configType": "integration", "integrationType": "msgraph", "enabled": false,
               "settings": {"tenant_id": "tenant-1", "client_id": "graph-client",
                            "client_secret_ref": "bifrost-global-msgraph-secret-7c1d"},
               "updatedAt": AT, "updatedBy": "root@example.com", "redactedSettings": ["client_secret"]}),
        json!({"id": "github", "type": "config", "scope": "GLOBAL", "configType": "github",
               "status": "configured", "secretRef": "bifrost-global-github-token-4e5f6a7b",
               "repoUrl": "https://github.com/acme/workflows", "productionBranch": "main",
               "updatedAt": AT, "updatedBy": "root@example.com"}),
        // Generation 2 (wins over the generation 1 rows of the same name and scope).
        oauth(
            &org(ORG_A),
            "halo",
            json!({"description": "HaloPSA", "oauthFlowType": "client_credentials",
            "clientId": "halo-client",
            "clientSecretRef": format!("bifrost-{ORG_A}-oauth-halo-client-secret-5a6b"),
            "tokenUrl": "https://halo.example.com/token", "scopes": "all",
            "redirectUri": "https://bifrost.example.com/oauth/callback/halo", "status": "completed",
            "expiresAt": ts("2025-11-03T10:00:00"), "createdBy": "root@example.com", "createdAt": AT,
            "updatedAt": PLAIN, "updatedBy": "TokenRefreshJob"}),
        ),
        // Generation 1: metadata JSON + two Key Vault names.
        oauth(
            "GLOBAL",
            "graph",
            json!({"description": "OAuth metadata for graph",
            "oauthFlowType": "authorization_code", "clientId": "graph-client",
            "clientSecretRef": "global--oauth-graph-client-secret",
            "oauthResponseRef": "global--oauth-graph-response",
            "authorizationUrl": "https://login.example.com/authorize",
            "tokenUrl": "https://login.example.com/token", "scopes": "offline_access User.Read",
            "redirectUri": "https://bifrost.example.com/oauth/callback/graph", "status": "completed",
            "expiresAt": ts("2025-10-25T10:00:00"), "createdBy": null, "createdAt": null,
            "updatedAt": AT, "updatedBy": "root@example.com"}),
        ),
        // The dev seed's row: its AccessToken and RefreshToken are not copied.
        oauth(
            &org(ORG_B),
            "microsoft",
            json!({"oauthFlowType": "authorization_code", "clientId": "ms-client",
            "tokenUrl": "https://login.microsoftonline.com/token", "scopes": "User.Read",
            "redirectUri": "https://bifrost.example.com/oauth/callback/microsoft", "status": "completed",
            "createdBy": "seed", "createdAt": ts("2025-10-14T08:00:00"),
            "updatedAt": ts("2025-10-14T08:00:00")}),
        ),
        json!({"id": "branding", "type": "branding", "scope": "GLOBAL",
               "squareLogoUrl": "https://acct.blob.core.windows.net/branding/GLOBAL/square-logo.png",
               "rectangleLogoUrl": "https://acct.blob.core.windows.net/branding/GLOBAL/rectangle-logo.svg",
               "primaryColor": "#0a84ff", "updatedBy": "root@example.com", "updatedAt": AT}),
        json!({"id": "branding", "type": "branding", "scope": org(ORG_A), "squareLogoUrl": null,
               "rectangleLogoUrl": null, "primaryColor": "#abc", "updatedBy": "root@example.com",
               "updatedAt": ts("2025-10-24T08:00:00")}),
    ];
    documents
        .into_iter()
        .map(|doc| {
            let key = (
                doc["scope"].as_str().expect("scope").to_owned(),
                doc["id"].as_str().expect("id").to_owned(),
            );
            (key, doc)
        })
        .collect()
}

/// Every document as expected, and nothing else (no document for a skipped, orphaned or
/// not-migrated row).
fn assert_documents(actual: &BTreeMap<(String, String), Value>) {
    let expected = expected_documents();
    for (key, doc) in &expected {
        let stored = actual
            .get(key)
            .unwrap_or_else(|| panic!("{key:?} not migrated"));
        for (name, value) in doc.as_object().expect("object") {
            assert_eq!(&stored[name], value, "{key:?} field {name}: {stored}");
        }
        assert_eq!(stored, doc, "{key:?}: fields beyond the expected ones");
    }
    let extra: Vec<_> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(extra.is_empty(), "documents no row should make: {extra:?}");
}

/// What a run should have written: every document (into an empty target) or none.
#[derive(Clone, Copy, PartialEq)]
enum Writes {
    All,
    None,
}

/// The run succeeded with the expected tally of every kind.
fn assert_tallies(run: &Run, writes: Writes) {
    assert_eq!(run.code, Some(0), "{}", run.both());
    for (kind, read, documents, skipped, redacted) in KINDS {
        let (written, unchanged) = match writes {
            Writes::All => (documents, 0),
            Writes::None => (0, documents),
        };
        assert_eq!(
            tally(&run.stdout, kind),
            [read, written, unchanged, skipped, 0, redacted],
            "{kind}: {}",
            run.stdout
        );
    }
}

#[test]
fn every_legacy_entity_kind_migrates_field_for_field_reruns_as_a_no_op_and_no_secret_leaks() {
    let Some(seeded) = seed() else {
        return;
    };
    let (data, tmp) = (temp_dir(), temp_dir());

    // --dry-run: the same summary, said as "would write", and nothing in the store.
    let dry = migrate(&seeded, data.path(), tmp.path(), &["--dry-run"]);
    assert_tallies(&dry, Writes::All);
    assert!(dry.stdout.contains("would write"), "{}", dry.stdout);
    if data.path().join("bifrost.db").exists() {
        assert!(embedded_entities(data.path()).is_empty());
    }

    let first = migrate(&seeded, data.path(), tmp.path(), &[]);
    assert_tallies(&first, Writes::All);
    let migrated = embedded_entities(data.path());
    assert_documents(&migrated);
    // The summary names what it withheld and skipped, by key, never by value.
    for line in [
        format!("redacted: config org-{ORG_A} config-smtp_password: value"),
        format!("redacted: config org-{ORG_A} config-api_settings: value"),
        "redacted: config GLOBAL config-archive_storage: value".to_owned(),
        "redacted: config GLOBAL integration-msgraph: settings.client_secret".to_owned(),
        format!("redacted: config org-{ORG_A} integration-halopsa: settings.api_key_ref"),
        format!("redacted: oauth_connection org-{ORG_B} oauth-microsoft: property AccessToken, property RefreshToken"),
    ] {
        assert!(first.stdout.contains(&line), "{line}\n{}", first.stdout);
    }
    for needle in [
        "no user nobody@example.com",
        "no role deleted-role",
        "no form deleted-form",
        "the same e-mail as Entities (\"GLOBAL\", \"user:Ada@Example.com\")",
        "of \"stale\" without their _metadata row",
        "not migrated: Config jobstatus:*",
        "not migrated: Config schedule:*",
        "not migrated: Config workflowkey:*",
        "not migrated: Config system:*",
        "organizations: etag ×2",
        "organizations: TenantId ×1",
        "forms: IsPublic ×1",
    ] {
        assert!(first.stdout.contains(needle), "{needle}\n{}", first.stdout);
    }

    // A rerun writes no document: same bodies, same ETags, same change-feed head.
    let head = |data: &Path| -> (Vec<(String, String)>, i64) {
        let db = rusqlite::Connection::open(data.join("bifrost.db")).expect("db");
        let mut statement = db
            .prepare("SELECT id, etag FROM documents WHERE container = 'entities' ORDER BY pk, id")
            .expect("prepare");
        let etags = statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<Vec<_>, _>>()
            .expect("rows");
        let lsn = db
            .query_row(
                "SELECT COALESCE(MAX(lsn), 0) FROM change_log WHERE container = 'entities'",
                [],
                |r| r.get(0),
            )
            .expect("head");
        (etags, lsn)
    };
    let before = head(data.path());
    let rerun = migrate(&seeded, data.path(), tmp.path(), &[]);
    assert_tallies(&rerun, Writes::None);
    assert_eq!(head(data.path()), before, "a rerun wrote entity documents");

    // The operator completes a withheld value (moved to Key Vault, now a reference), and an
    // admin right is granted in the new system: the migration leaves both, verify accepts them.
    let smtp = "config-smtp_password";
    let db = rusqlite::Connection::open(data.path().join("bifrost.db")).expect("db");
    let changed = db
        .execute(
            "UPDATE documents SET body = json_set(body, '$.value', 'bifrost-org-smtp-password-1', \
             '$.configType', 'secret_ref', '$.valueRedacted', json('false')) \
             WHERE container = 'entities' AND id = ?1",
            [smtp],
        )
        .expect("complete");
    assert_eq!(changed, 1);
    let granted = db
        .execute(
            "UPDATE documents SET body = json_set(body, '$.isPlatformAdmin', json('true')) \
             WHERE container = 'entities' AND id = 'user-gone@example.com'",
            [],
        )
        .expect("grant");
    assert_eq!(granted, 1);
    let completed = migrate(&seeded, data.path(), tmp.path(), &[]);
    for kind in ["config", "users"] {
        assert_eq!(
            tally(&completed.stdout, kind)[1],
            0,
            "{kind}: {}",
            completed.stdout
        );
    }
    assert!(
        completed.stdout.contains(
            "kept: user GLOBAL user-gone@example.com: isPlatformAdmin granted in the target, not revoked"
        ),
        "{}",
        completed.stdout
    );
    assert!(
        completed.stdout.contains(&format!(
            "resolved: config org-{ORG_A} config-smtp_password: completed in the target since"
        )),
        "{}",
        completed.stdout
    );
    let verified = migrate(&seeded, data.path(), tmp.path(), &["--verify"]);
    assert_eq!(verified.code, Some(0), "{}", verified.both());
    assert!(verified
        .stdout
        .contains("  entity documents matching in target: 28\n"));

    // Authorization reads the migrated users.
    authorization_follows_the_user_documents(data.path());

    // Verify catches a changed field and a document the source does not have, and exits 1.
    db.execute(
        "UPDATE documents SET body = json_set(body, '$.name', 'Renamed') \
         WHERE container = 'entities' AND id = ?1",
        [org(ORG_A)],
    )
    .expect("tamper");
    db.execute(
        "INSERT INTO documents (container, pk, id, body, etag, ts, lsn, expires_at) \
         SELECT container, pk, 'role-planted', json_set(body, '$.id', 'role-planted'), etag, ts, lsn, \
         expires_at FROM documents WHERE container = 'entities' AND id = ?1",
        [format!("role-{ROLE_OPS}")],
    )
    .expect("plant");
    db.execute(
        "INSERT INTO change_log (container, pk, id) VALUES ('entities', ?1, 'role-planted')",
        [org(ORG_A)],
    )
    .expect("plant in the feed");
    drop(db);
    let caught = migrate(&seeded, data.path(), tmp.path(), &["--verify"]);
    assert_eq!(caught.code, Some(1), "{}", caught.both());
    assert!(
        caught.stdout.contains(&format!(
            "mismatch: organization GLOBAL org-{ORG_A}: name: source \"Org A\" ≠ target \"Renamed\""
        )),
        "{}",
        caught.stdout
    );
    assert!(
        caught.stdout.contains(&format!(
            "mismatch: role org-{ORG_A} role-planted: in target but not in the source"
        )),
        "{}",
        caught.stdout
    );
    assert!(caught
        .stdout
        .contains("  entity documents matching in target: 27\n"));
    assert!(
        !caught.stdout.contains("smtp_password"),
        "{}",
        caught.stdout
    );

    // No secret anywhere the runs wrote: the SQLite file (and its WAL, if left), the
    // checkpoint in it, the spool directory, every output.
    let mut haystacks = files_of(&[data.path(), tmp.path()]);
    haystacks.extend(outputs(&[
        &dry, &first, &rerun, &completed, &verified, &caught,
    ]));
    assert_no_secret(&seeded.secrets, &haystacks);
    // The search finds what is there: every secret is in the seed's own report.
    let report = vec![(
        "the seed's report".to_owned(),
        seeded.report.clone().into_bytes(),
    )];
    assert_eq!(
        secrets_in(&seeded.secrets, &report).len(),
        seeded.secrets.len()
    );
}

/// `serve` on the migrated store: the legacy `IsPlatformAdmin` flag makes an admin, a member
/// reads their first active organization, a deactivated organization and a deactivated user
/// (even one made an admin since) are refused, a user known only from a membership reads theirs.
fn authorization_follows_the_user_documents(data: &Path) {
    let app = spawn_serve(data, &[]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let http = client();
    let ask = |user: &str, email: &str, org: Option<&str>, query: &str| {
        let principal = Principal::member(user).with_email(email).encode();
        let mut request = http
            .get(format!("{}/api/metrics{query}", app.base))
            .header("x-ms-client-principal", principal);
        if let Some(org) = org {
            request = request.header("x-organization-id", org);
        }
        runtime.block_on(async {
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        })
    };
    let (status, body) = ask("swa-root", "root@example.com", None, "?scope=all");
    assert_eq!(status, 200, "the legacy IsPlatformAdmin flag: {body}");
    // Ada typed her e-mail in another case; org B is deactivated, so she lands in org A.
    let (status, body) = ask("swa-ada", "Ada@Example.com", None, "");
    assert_eq!(
        (status, body["scope"].as_str()),
        (200, Some(ORG_A)),
        "{body}"
    );
    let (status, body) = ask("swa-ada", "ada@example.com", Some(ORG_B), "");
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("deactivated"),
        "{body}"
    );
    let (status, _) = ask("swa-ada", "ada@example.com", None, "?scope=all");
    assert_eq!(status, 403, "a member is no admin");
    let (status, body) = ask("swa-gone", "gone@example.com", None, "");
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("your account is deactivated"))
    );
    let (status, body) = ask("swa-carol", "carol@example.com", None, "");
    assert_eq!(
        (status, body["scope"].as_str()),
        (200, Some(ORG_A)),
        "{body}"
    );
}

/// The same source into the Cosmos backend (the tests' Cosmos-compatible server): the same
/// documents field by field, a rerun writes nothing, no secret in any document or output.
#[tokio::test(flavor = "multi_thread")]
async fn every_legacy_entity_kind_migrates_into_the_cosmos_backend() {
    let Some(seeded) = seed() else {
        return;
    };
    let emulator = crate::cosmos_emulator::start().await.expect("emulator");
    let store = emulator.store_url("bifrost");
    let ensure = BIN.run(&["ensure", "--store", &store]);
    assert!(
        ensure.status.success(),
        "{}",
        String::from_utf8_lossy(&ensure.stderr)
    );
    let (data, tmp) = (temp_dir(), temp_dir());
    let to = ["--to", store.as_str()];
    let first = tokio::task::block_in_place(|| migrate(&seeded, data.path(), tmp.path(), &to));
    assert_tallies(&first, Writes::All);
    let (documents, _) = store_documents(&store).await;
    assert_documents(&documents);

    let rerun = tokio::task::block_in_place(|| migrate(&seeded, data.path(), tmp.path(), &to));
    assert_tallies(&rerun, Writes::None);
    let (after, stored_text) = store_documents(&store).await;
    assert_eq!(after, documents);
    let mut haystacks = files_of(&[data.path(), tmp.path()]);
    haystacks.push((
        "the Cosmos documents and checkpoint".into(),
        stored_text.into_bytes(),
    ));
    haystacks.extend(outputs(&[&first, &rerun]));
    assert_no_secret(&seeded.secrets, &haystacks);
    assert!(!data.path().join("bifrost.db").exists());
}

/// The bulk seed's shape (`seed.py entities-bulk`): enough documents that writing them takes a
/// while (most roles and forms are one small batch per organization).
const BULK_ORGS: usize = 200;
const BULK_USERS: usize = 2000;
const BULK_ROLES_PER_ORG: usize = 3;
const BULK_FORMS_PER_ORG: usize = 2;
/// How long the killed run may take to write its first entity document.
const FIRST_WRITE_TIMEOUT: Duration = Duration::from_secs(40);

/// The `type`s of the entity documents (the `entities` container also holds the metrics).
const ENTITY_TYPES: &str =
    "'organization', 'user', 'role', 'form', 'config', 'oauth_connection', 'branding'";

/// The entity documents of the embedded store, without the metrics documents beside them.
fn only_entities(data: &Path) -> BTreeMap<(String, String), Value> {
    let mut documents = embedded_entities(data);
    documents.retain(|_, doc| {
        doc["type"]
            .as_str()
            .is_some_and(|kind| ENTITY_TYPES.contains(&format!("'{kind}'")))
    });
    documents
}

/// How many entity documents the embedded store holds, and its newest entity change (0 before
/// the store exists or has its tables).
fn entity_writes(data: &Path) -> (usize, i64) {
    let path = data.join("bifrost.db");
    if !path.exists() {
        return (0, 0);
    }
    let Ok(db) =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return (0, 0);
    };
    db.query_row(
        &format!(
            "SELECT count(*), coalesce(max(lsn), 0) FROM documents WHERE container = 'entities' \
             AND json_extract(body, '$.type') IN ({ENTITY_TYPES})"
        ),
        [],
        |r| Ok((r.get::<_, i64>(0)? as usize, r.get(1)?)),
    )
    .unwrap_or((0, 0))
}

/// Entity documents written by a run, over every kind of its summary.
fn entity_documents_written(run: &Run) -> u64 {
    [
        "organizations",
        "users",
        "roles",
        "forms",
        "config",
        "oauth_connections",
        "branding",
    ]
    .iter()
    .map(|kind| tally(&run.stdout, kind)[1])
    .sum()
}

/// Every file of a (stopped) embedded store, copied, so one killed state can be finished twice.
fn copy_store(from: &Path, to: &Path) {
    for path in files_under(from) {
        let target = to.join(path.strip_prefix(from).expect("under the store"));
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&path, &target).expect("copy store file");
    }
}

/// `migrate` SIGKILLed while it writes the entity documents (after the executions step is
/// checkpointed): the target holds some of them. Both ways of going on that the runbook
/// promises, `--resume` and a plain rerun, compare again and write exactly what is missing, to
/// the documents of an uninterrupted run field by field; `--verify` agrees, and a further run
/// writes nothing.
#[test]
fn a_run_killed_while_writing_entity_documents_finishes_on_resume_or_rerun_to_the_same_documents() {
    let Some(azurite) = require(Azurite::start()) else {
        return;
    };
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    const EXECUTIONS: u64 = 30;
    azurite.seed(&[
        "bulk",
        "--executions",
        &EXECUTIONS.to_string(),
        "--logs",
        "1",
        "--day",
        &today,
    ]);
    azurite.seed(&[
        "entities-bulk",
        "--orgs",
        &BULK_ORGS.to_string(),
        "--users",
        &BULK_USERS.to_string(),
        "--roles-per-org",
        &BULK_ROLES_PER_ORG.to_string(),
        "--forms-per-org",
        &BULK_FORMS_PER_ORG.to_string(),
    ]);
    let total = BULK_ORGS * (1 + BULK_ROLES_PER_ORG + BULK_FORMS_PER_ORG) + BULK_USERS;
    let tmp = temp_dir();

    let reference = temp_dir();
    let uninterrupted = Run::of(&mut migrate_command(
        &azurite,
        reference.path(),
        tmp.path(),
        &[],
    ));
    assert_eq!(uninterrupted.code, Some(0), "{}", uninterrupted.both());
    let expected = only_entities(reference.path());
    assert_eq!(expected.len(), total, "{}", uninterrupted.stdout);

    // Kill as soon as the first entity documents are in the target.
    let killed = temp_dir();
    let mut child = migrate_command(&azurite, killed.path(), tmp.path(), &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn migrate");
    let deadline = Instant::now() + FIRST_WRITE_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("migrate ended ({status}) before any entity document was seen");
        }
        if entity_writes(killed.path()).0 > 0 {
            child.kill().expect("SIGKILL");
            break;
        }
        if Instant::now() > deadline {
            child.kill().expect("SIGKILL");
            panic!("no entity document written within {FIRST_WRITE_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.wait().expect("wait");
    let partial = only_entities(killed.path());
    assert!(
        (1..total).contains(&partial.len()),
        "the kill should land while the entity documents are written, but {} of {total} were",
        partial.len()
    );
    // What was written is whole: every document as the uninterrupted run wrote it.
    for (key, doc) in &partial {
        assert_eq!(Some(doc), expected.get(key), "{key:?} after the kill");
    }
    eprintln!(
        "killed with {} of {total} entity documents written",
        partial.len()
    );
    let missing = (total - partial.len()) as u64;
    let rerun_dir = temp_dir();
    copy_store(killed.path(), rerun_dir.path());

    // --resume: the executions are checkpointed, the entity step is not: it runs again.
    let resumed = Run::of(&mut migrate_command(
        &azurite,
        killed.path(),
        tmp.path(),
        &["--resume"],
    ));
    assert_eq!(resumed.code, Some(0), "{}", resumed.both());
    assert_eq!(
        count(&resumed.stdout, "executions read"),
        0,
        "{}",
        resumed.stdout
    );
    assert_eq!(
        entity_documents_written(&resumed),
        missing,
        "{}",
        resumed.stdout
    );
    assert_eq!(only_entities(killed.path()), expected);

    // A plain rerun: the executions compared again (all unchanged), the missing entities written.
    let rerun = Run::of(&mut migrate_command(
        &azurite,
        rerun_dir.path(),
        tmp.path(),
        &[],
    ));
    assert_eq!(rerun.code, Some(0), "{}", rerun.both());
    assert_eq!(
        count(&rerun.stdout, "unchanged"),
        EXECUTIONS,
        "{}",
        rerun.stdout
    );
    assert_eq!(
        count(&rerun.stdout, "documents written"),
        0,
        "{}",
        rerun.stdout
    );
    assert_eq!(
        entity_documents_written(&rerun),
        missing,
        "{}",
        rerun.stdout
    );
    assert_eq!(only_entities(rerun_dir.path()), expected);

    for data in [killed.path(), rerun_dir.path()] {
        let verified = Run::of(&mut migrate_command(
            &azurite,
            data,
            tmp.path(),
            &["--verify"],
        ));
        assert_eq!(verified.code, Some(0), "{}", verified.both());
        // Finished: a further run compares everything and writes nothing (no entity change).
        let before = entity_writes(data);
        let again = Run::of(&mut migrate_command(&azurite, data, tmp.path(), &[]));
        assert_eq!(again.code, Some(0), "{}", again.both());
        assert_eq!(entity_documents_written(&again), 0, "{}", again.stdout);
        assert_eq!(
            entity_writes(data),
            before,
            "a further run changed entity documents"
        );
    }
}
