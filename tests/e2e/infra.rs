//! infra/ (Bicep), functions/ and the code agree on every deployment name: database, containers,
//! partition keys, TTLs, settings, connection settings, hub names, the executable. The Bicep is
//! parsed by `pycep-parser` (PyPI) in a venv created once under the target directory; the
//! check itself is `tests/infra/consistency.py`, fed the code's names by `functions --manifest`.
//! To prove the check can fail, every name is changed alone, in each file that holds it (and in
//! the code's manifest), and each such copy must be reported.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

use bifrost_test_support::process::output;
use bifrost_test_support::tools::{require, Unavailable};

use crate::helpers::{files_under, temp_dir, BIN};

const PYCEP: &str = "pycep-parser==0.7.1";
const RENAMED: &str = "_renamed";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's python with pycep importable, created once and reused by later runs; `None` (the
/// test is skipped with a message) only outside CI, when PyPI cannot be reached.
fn pycep_python() -> Option<PathBuf> {
    static PYTHON: OnceLock<Result<PathBuf, Unavailable>> = OnceLock::new();
    require(
        PYTHON
            .get_or_init(|| bifrost_test_support::python::venv("pycep", &[PYCEP]))
            .clone(),
    )
}

fn manifest() -> Value {
    let out = BIN.run(&["functions", "--manifest"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("manifest is JSON")
}

/// Runs the check on (manifest file, root) pairs; returns the problems per root.
fn check(python: &Path, pairs: &[(PathBuf, PathBuf)]) -> BTreeMap<String, Vec<String>> {
    // One checker at a time: on two cores, parallel Bicep parsing would crowd out the
    // timing-sensitive tests that run beside these.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut command = Command::new(python);
    // Leave no __pycache__ in the source tree.
    command.env("PYTHONDONTWRITEBYTECODE", "1");
    command.arg(repo().join("tests/infra/consistency.py"));
    for (manifest, root) in pairs {
        command.arg(manifest).arg(root);
    }
    let out = output(&mut command);
    assert!(
        out.status.success(),
        "consistency.py crashed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("consistency.py prints JSON")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// What the check reads from a root: infra/, functions/, host.json, local.settings.json.example
/// and azure.yaml.
fn copy_deploy_files(to: &Path) {
    copy_tree(&repo().join("infra"), &to.join("infra"));
    copy_tree(&repo().join("functions"), &to.join("functions"));
    for file in ["azure.yaml", "host.json", "local.settings.json.example"] {
        std::fs::copy(repo().join(file), to.join(file)).unwrap();
    }
}

/// A deployment name the code owns, and how to spot it in a file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Name {
    Text(String),
    Number(i64),
}

impl Name {
    fn label(&self) -> String {
        match self {
            Name::Text(s) => s.clone(),
            Name::Number(n) => n.to_string(),
        }
    }

    /// The file with every occurrence of this name changed, or `None` if it holds none. Text
    /// names are matched as whole quoted strings ('x' in Bicep, "x" in JSON), as Bicep object
    /// keys (`x:` / `x__suffix:`) and as JSON identity-prefix keys ("x__suffix").
    fn mutate(&self, text: &str) -> Option<String> {
        let mutated = match self {
            Name::Number(n) => replace_whole_number(text, *n),
            Name::Text(s) => {
                let mut out = text
                    .replace(&format!("'{s}'"), &format!("'{s}{RENAMED}'"))
                    .replace(&format!("\"{s}\""), &format!("\"{s}{RENAMED}\""))
                    .replace(&format!("\"{s}__"), &format!("\"{s}{RENAMED}__"));
                out = out
                    .lines()
                    .map(|line| {
                        let key = line.trim_start();
                        let indent = &line[..line.len() - key.len()];
                        let is_key = key
                            .strip_prefix(s.as_str())
                            .is_some_and(|rest| rest.starts_with(':') || rest.starts_with("__"));
                        if is_key && !key.starts_with("//") {
                            format!("{indent}{s}{RENAMED}{}", &key[s.len()..])
                        } else {
                            line.to_owned()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                if text.ends_with('\n') {
                    out.push('\n');
                }
                out
            }
        };
        (mutated != text).then_some(mutated)
    }
}

fn replace_whole_number(text: &str, n: i64) -> String {
    let needle = n.to_string();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(&needle) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + needle.len()..].chars().next();
        out.push_str(&rest[..at]);
        if before.is_some_and(|c| c.is_ascii_digit()) || after.is_some_and(|c| c.is_ascii_digit()) {
            out.push_str(&needle);
        } else {
            out.push_str(&(n + 1).to_string());
        }
        rest = &rest[at + needle.len()..];
    }
    out.push_str(rest);
    out
}

/// Every name the code's manifest says deployment files must agree on.
fn names(manifest: &Value) -> BTreeSet<Name> {
    let text = |v: &Value| v.as_str().map(|s| Name::Text(s.to_owned()));
    let mut names = BTreeSet::new();
    names.extend(text(&manifest["database"]));
    names.extend(text(&manifest["leaseContainer"]));
    names.extend(text(&manifest["executable"]));
    for c in manifest["containers"].as_array().unwrap() {
        names.extend(text(&c["name"]));
        names.extend(text(&c["partitionKey"]));
        names.extend(c["defaultTtl"].as_i64().map(Name::Number));
    }
    for s in manifest["settings"].as_array().unwrap() {
        if s["inLocalSettings"] == true {
            names.extend(text(&s["name"]));
        }
    }
    for list in ["connectionSettings", "signalRHubs"] {
        names.extend(manifest[list].as_array().unwrap().iter().filter_map(text));
    }
    names
}

#[test]
fn infra_functions_and_code_agree() {
    let Some(python) = pycep_python() else { return };
    let dir = temp_dir();
    let manifest_path = dir.path().join("manifest.json");
    std::fs::write(&manifest_path, manifest().to_string()).unwrap();
    let results = check(&python, &[(manifest_path, repo().to_path_buf())]);
    let problems = results.values().next().expect("one result");
    assert!(
        problems.is_empty(),
        "infra/, functions/ and the code disagree:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn infra_check_reports_each_name_changed_alone() {
    let Some(python) = pycep_python() else { return };
    let manifest = manifest();
    let work = temp_dir();
    let base = work.path().join("base");
    copy_deploy_files(&base);
    let manifest_text = serde_json::to_string_pretty(&manifest).unwrap();
    let base_manifest = work.path().join("manifest.json");
    std::fs::write(&base_manifest, &manifest_text).unwrap();

    // The unmutated copy is consistent, so every report below comes from its one change.
    let mut pairs = vec![(base_manifest.clone(), base.clone())];
    // (name, file changed) for each mutated copy, in the order of `pairs[1..]`.
    let mut mutations: Vec<(Name, String)> = Vec::new();
    let targets: Vec<PathBuf> = files_under(&base)
        .into_iter()
        .filter(|p| {
            let name = p.to_string_lossy();
            name.ends_with(".bicep") || name.ends_with(".json") || name.ends_with(".example")
        })
        .collect();
    for name in names(&manifest) {
        if let Some(text) = name.mutate(&manifest_text) {
            // The code changed alone: its manifest differs, the files do not.
            let copy = work.path().join(format!("m{}", mutations.len()));
            copy_tree(&base, &copy);
            let path = work.path().join(format!("m{}.json", mutations.len()));
            std::fs::write(&path, text).unwrap();
            pairs.push((path, copy));
            mutations.push((name.clone(), "the code (manifest)".into()));
        }
        for target in &targets {
            let original = std::fs::read_to_string(target).unwrap();
            let Some(text) = name.mutate(&original) else {
                continue;
            };
            let relative = target.strip_prefix(&base).unwrap();
            let copy = work.path().join(format!("m{}", mutations.len()));
            copy_tree(&base, &copy);
            std::fs::write(copy.join(relative), text).unwrap();
            pairs.push((base_manifest.clone(), copy));
            mutations.push((name.clone(), relative.display().to_string()));
        }
    }

    let results = check(&python, &pairs);
    let base_problems = &results[&base.display().to_string()];
    assert!(
        base_problems.is_empty(),
        "the unchanged copy must pass: {base_problems:?}"
    );
    let mut missed = Vec::new();
    let mut files_per_name: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for ((_, root), (name, file)) in pairs[1..].iter().zip(&mutations) {
        let problems = &results[&root.display().to_string()];
        let label = name.label();
        if !problems.iter().any(|p| p.contains(&label)) {
            missed.push(format!("{label} changed in {file}: {problems:?}"));
        }
        files_per_name
            .entry(label)
            .or_default()
            .insert(file.clone());
    }
    assert!(
        missed.is_empty(),
        "changes the check did not report:\n  {}",
        missed.join("\n  ")
    );

    // Not vacuous: the names that matter were found, each in the code and in a deployment file.
    for must in [
        "bifrost",
        "executions",
        "execution_data",
        "entities",
        "leases",
        "deadletters",
        "/scope",
        "/executionId",
        "/functionName",
        "1209600",
        "CosmosDbConnection",
        "AzureWebJobsStorage",
        "FUNCTIONS_WORKER_RUNTIME",
        "BIFROST_STORE",
        "bifrost-workers",
    ] {
        let files = files_per_name
            .get(must)
            .unwrap_or_else(|| panic!("{must} was never changed"));
        assert!(
            files.contains("the code (manifest)") && files.len() >= 2,
            "{must} must be checked between the code and a file, changed only in {files:?}"
        );
    }
    eprintln!(
        "{} single-name changes across {} names, all reported",
        mutations.len(),
        files_per_name.len()
    );
}

#[test]
fn infra_check_reports_azd_parameter_and_module_files_out_of_step() {
    let Some(python) = pycep_python() else { return };
    let manifest = manifest();
    let work = temp_dir();
    let manifest_path = work.path().join("manifest.json");
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let zip = manifest["packageZip"].as_str().unwrap();
    // (file, from, to, what the report must mention)
    let cases = [
        (
            "infra/main.bicep",
            "output AZURE_FUNCTION_APP_NAME",
            "output AZURE_APP_NAME",
            "AZURE_FUNCTION_APP_NAME",
        ),
        (
            "infra/scripts/deploy.sh",
            &format!("dist/{zip}") as &str,
            "dist/app.zip",
            zip,
        ),
        ("azure.yaml", "path: infra", "path: deploy", "azure.yaml"),
        (
            "infra/main.bicepparam",
            "param namePrefix =",
            "param prefix =",
            "namePrefix",
        ),
        // Module wiring, which `bicep build` would reject (there is no Bicep CLI here).
        (
            "infra/main.bicep",
            "cosmos.outputs.endpoint",
            "cosmos.outputs.endpoints",
            "'endpoints'",
        ),
        (
            "infra/main.bicep",
            "sku: signalRSku",
            "skuName: signalRSku",
            "skuName",
        ),
    ];
    let mut pairs = Vec::new();
    for (i, (file, from, to, _)) in cases.iter().enumerate() {
        let root = work.path().join(format!("case{i}"));
        copy_deploy_files(&root);
        let path = root.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} no longer holds {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        pairs.push((manifest_path.clone(), root));
    }
    let results = check(&python, &pairs);
    for ((_, root), (file, from, _, needle)) in pairs.iter().zip(&cases) {
        let problems = &results[&root.display().to_string()];
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "changing {from:?} in {file} was not reported: {problems:?}"
        );
    }
}

/// No function of this build has a SignalR binding yet; this proves the hub-name check on a
/// function added to both the code's manifest and functions/ (as the SignalR functions will be).
#[test]
fn infra_check_reports_a_hub_name_changed_alone() {
    let Some(python) = pycep_python() else { return };
    // A name found nowhere else, so only the hub changes.
    let hub = "bifrosthub";
    let negotiate = serde_json::json!({ "bindings": [
        { "type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "anonymous",
          "route": "negotiate", "methods": ["post"] },
        { "type": "http", "direction": "out", "name": "res" },
        { "type": "signalRConnectionInfo", "direction": "in", "name": "connectionInfo", "hubName": hub },
    ]});
    let mut manifest = manifest();
    manifest["functions"]["Negotiate"] = negotiate.clone();
    manifest["signalRHubs"] = serde_json::json!([hub]);
    let work = temp_dir();
    let write_case = |name: &str, manifest: &Value, function: &Value| {
        let root = work.path().join(name);
        copy_deploy_files(&root);
        std::fs::create_dir_all(root.join("functions/Negotiate")).unwrap();
        std::fs::write(
            root.join("functions/Negotiate/function.json"),
            function.to_string(),
        )
        .unwrap();
        let manifest_path = work.path().join(format!("{name}.json"));
        std::fs::write(&manifest_path, manifest.to_string()).unwrap();
        (manifest_path, root)
    };
    let renamed = |v: &Value| -> Value {
        let text = v
            .to_string()
            .replace(&format!("\"{hub}\""), &format!("\"{hub}{RENAMED}\""));
        serde_json::from_str(&text).expect("still JSON")
    };
    let pairs = vec![
        write_case("same", &manifest, &negotiate),
        write_case("file", &manifest, &renamed(&negotiate)),
        write_case("code", &renamed(&manifest), &negotiate),
    ];
    let results = check(&python, &pairs);
    let problems = |i: usize| &results[&pairs[i].1.display().to_string()];
    assert!(problems(0).is_empty(), "{:?}", problems(0));
    for i in [1, 2] {
        assert!(
            problems(i).iter().any(|p| p.contains("hubName")),
            "{:?}",
            problems(i)
        );
    }
}
