"""Checks that infra/ (Bicep, main.bicepparam, the deploy hook), azure.yaml, host.json,
local.settings.json.example, functions/*/function.json and the code's own names (the manifest
printed by `bifrost-workers functions --manifest`) agree.

Usage: consistency.py MANIFEST.json ROOT [MANIFEST.json ROOT ...]
Each ROOT holds infra/, functions/, host.json, local.settings.json.example and azure.yaml and is
checked against the manifest before it.
Prints one JSON object {ROOT: [problem, ...]} and exits 0: the caller decides what an empty or
non-empty list means (the test also runs it on copies with one name changed, which must fail).
Bicep is parsed with pycep-parser (no Bicep CLI needed); a file parsed once is not parsed again
when another root holds the same bytes.
"""

import hashlib
import json
import re
import sys
from pathlib import Path

from pycep import BicepParser

COSMOS_DATA_CONTRIBUTOR = "00000000-0000-0000-0000-000000000002"
# App settings the platform defines rather than the code.
PLATFORM_SETTINGS = {"APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"}
# Settings Flex Consumption derives from the site's functionAppConfig (and rejects as app settings).
FROM_RUNTIME_CONFIG = {"FUNCTIONS_WORKER_RUNTIME"}

_parsed = {}


def parse_bicep(path):
    data = path.read_bytes()
    key = hashlib.sha256(data).hexdigest()
    if key not in _parsed:
        _parsed[key] = BicepParser().parse(text=data.decode("utf-8"))
    return _parsed[key]


class BicepFile:
    """One parsed file: resolves identifiers that name a variable in it (pycep gives identifiers
    and string literals alike as strings)."""

    def __init__(self, path, tree):
        self.path = path
        self.variables = {k: v.get("value") for k, v in (tree.get("variables") or {}).items()}
        self.resources = tree.get("resources") or {}
        self.parameters = tree.get("parameters") or {}
        self.outputs = tree.get("outputs") or {}
        self.modules = tree.get("modules") or {}

    def value(self, raw):
        seen = 0
        while isinstance(raw, str) and raw in self.variables and seen < 10:
            raw = self.variables[raw]
            seen += 1
        return raw

    def of_type(self, resource_type):
        for symbol, res in self.resources.items():
            if res.get("type") == resource_type and not res.get("existing"):
                yield symbol, res.get("config") or {}


def settings_keys(bicep_files):
    """App-setting names the Function App gets, from `sites/config` 'appsettings' resources or
    `siteConfig.appSettings` arrays."""
    keys = set()
    for f in bicep_files:
        for _, cfg in f.of_type("Microsoft.Web/sites/config"):
            if f.value(cfg.get("name")) == "appsettings":
                keys.update((cfg.get("properties") or {}).keys())
        for _, cfg in f.of_type("Microsoft.Web/sites"):
            for entry in ((cfg.get("properties") or {}).get("siteConfig") or {}).get("appSettings") or []:
                if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                    keys.add(f.value(entry["name"]))
    return keys


def satisfied(name, keys):
    """A connection or setting is configured as itself or as an identity-based prefix (`NAME__x`)."""
    return name in keys or any(k.startswith(name + "__") for k in keys)


def json_differences(found, wanted, where="$"):
    """(path, found, wanted) for each place two JSON values differ (missing members are None)."""
    if isinstance(found, dict) and isinstance(wanted, dict):
        out = []
        for key in list(wanted) + [k for k in found if k not in wanted]:
            out += json_differences(found.get(key), wanted.get(key), f"{where}.{key}")
        return out
    if isinstance(found, list) and isinstance(wanted, list) and len(found) == len(wanted):
        return [d for i, (a, b) in enumerate(zip(found, wanted)) for d in json_differences(a, b, f"{where}[{i}]")]
    return [] if found == wanted else [(where, found, wanted)]


def check_root(root, manifest):
    problems = []
    infra = root / "infra"
    functions_dir = root / "functions"

    bicep_files = []
    for path in sorted(infra.rglob("*.bicep")):
        try:
            bicep_files.append(BicepFile(path, parse_bicep(path)))
        except Exception as e:  # a file that does not parse is a problem, not a crash
            problems.append(f"{path.relative_to(root)}: cannot parse Bicep: {e}")
    if not bicep_files:
        problems.append("infra/ holds no Bicep files")

    # --- Module wiring (what `bicep build` would catch first) ------------------------------------
    by_path = {f.path.resolve(): f for f in bicep_files}
    for f in bicep_files:
        text = f.path.read_text()
        for symbol, module in (f.modules or {}).items():
            target = (f.path.parent / ((module.get("detail") or {}).get("path") or "")).resolve()
            callee = by_path.get(target)
            where = f"{f.path.relative_to(root)}: module {symbol!r}"
            if callee is None:
                problems.append(f"{where}: no Bicep file at {target}")
                continue
            passed = set(((module.get("config") or {}).get("params") or {}).keys())
            for name in sorted(passed - set(callee.parameters)):
                problems.append(f"{where}: passes {name!r}, which the module does not declare")
            for name, p in sorted(callee.parameters.items()):
                if p.get("default") is None and name not in passed:
                    problems.append(f"{where}: does not pass the required parameter {name!r}")
            for output in sorted(set(re.findall(r"\b%s\.outputs\.(\w+)" % re.escape(symbol), text))):
                if output not in callee.outputs:
                    problems.append(f"{where}: reads output {output!r}, which the module does not declare")

    # --- Cosmos DB: account, database, containers -------------------------------------------
    database = manifest["database"]
    db_symbols = {}
    for f in bicep_files:
        for symbol, cfg in f.of_type("Microsoft.DocumentDB/databaseAccounts/sqlDatabases"):
            db_symbols[(f.path, symbol)] = f.value(cfg.get("name"))
    db_names = set(db_symbols.values())
    if db_names != {database}:
        problems.append(f"Cosmos database: the code uses {database!r}, infra declares {sorted(map(str, db_names))}")

    declared = {}
    for f in bicep_files:
        for symbol, cfg in f.of_type("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers"):
            name = f.value(cfg.get("name"))
            resource = ((cfg.get("properties") or {}).get("resource")) or {}
            parent_db = db_symbols.get((f.path, cfg.get("parent")))
            if f.value(resource.get("id")) != name:
                problems.append(f"container {name!r}: resource.id {f.value(resource.get('id'))!r} differs from its name")
            if parent_db != database:
                problems.append(f"container {name!r}: its parent database is {parent_db!r}, not {database!r}")
            paths = [f.value(p) for p in ((resource.get("partitionKey") or {}).get("paths") or [])]
            ttl = f.value(resource.get("defaultTtl")) if "defaultTtl" in resource else None
            declared[name] = {"partitionKey": paths, "defaultTtl": ttl}

    for c in manifest["containers"]:
        name = c["name"]
        found = declared.get(name)
        if found is None:
            problems.append(f"container {name!r}: used by the code, missing from infra/")
            continue
        if found["partitionKey"] != [c["partitionKey"]]:
            problems.append(
                f"container {name!r}: partition key {c['partitionKey']!r} in the code, {found['partitionKey']} in infra/"
            )
        if found["defaultTtl"] != c["defaultTtl"]:
            problems.append(f"container {name!r}: default TTL {c['defaultTtl']} in the code, {found['defaultTtl']} in infra/")
    known = {c["name"] for c in manifest["containers"]}
    for name in sorted(set(declared) - known, key=str):
        problems.append(f"container {name!r}: declared in infra/, unknown to the code")

    accounts = [cfg for f in bicep_files for _, cfg in f.of_type("Microsoft.DocumentDB/databaseAccounts")]
    if not any(
        any(isinstance(c, dict) and c.get("name") == "EnableServerless" for c in (a.get("properties") or {}).get("capabilities") or [])
        for a in accounts
    ):
        problems.append("Cosmos DB account: not serverless (capability EnableServerless missing)")
    role_assignments = [
        (f, cfg) for f in bicep_files for _, cfg in f.of_type("Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments")
    ]
    def names_data_contributor(f, cfg):
        text = json.dumps((cfg.get("properties") or {}).get("roleDefinitionId"))
        aliases = [v for v, value in f.variables.items() if value == COSMOS_DATA_CONTRIBUTOR]
        return COSMOS_DATA_CONTRIBUTOR in text or any("${%s}" % v in text for v in aliases)

    if not any(names_data_contributor(f, cfg) for f, cfg in role_assignments):
        problems.append("Cosmos DB: no data-plane role assignment of Built-in Data Contributor for the app identity")

    # --- SignalR -----------------------------------------------------------------------------
    signalrs = [cfg for f in bicep_files for _, cfg in f.of_type("Microsoft.SignalRService/signalR")]
    if not any(
        {"flag": "ServiceMode", "value": "Serverless"} in ((s.get("properties") or {}).get("features") or []) for s in signalrs
    ):
        problems.append("SignalR Service: missing, or not in Serverless mode")

    # --- Function App --------------------------------------------------------------------------
    sites = [(f, cfg) for f in bicep_files for _, cfg in f.of_type("Microsoft.Web/sites")]
    if len(sites) != 1:
        problems.append(f"Function App: expected one Microsoft.Web/sites resource, found {len(sites)}")
    runtime_name = None
    for f, site in sites:
        kind = str(f.value(site.get("kind")))
        if "functionapp" not in kind or "linux" not in kind:
            problems.append(f"Function App: kind {kind!r} is not a Linux function app")
        if "SystemAssigned" not in str((site.get("identity") or {}).get("type")):
            problems.append("Function App: no system-assigned managed identity")
        runtime = (((site.get("properties") or {}).get("functionAppConfig") or {}).get("runtime")) or {}
        runtime_name = f.value(runtime.get("name"))
    keys = settings_keys(bicep_files)

    settings = {s["name"]: s for s in manifest["settings"]}
    for name, s in settings.items():
        if not s["inLocalSettings"]:
            continue
        if name in FROM_RUNTIME_CONFIG:
            if runtime_name != s["example"]:
                problems.append(f"setting {name!r}: the code expects {s['example']!r}, the Function App runtime is {runtime_name!r}")
            if name in keys:
                problems.append(f"setting {name!r}: Flex Consumption rejects it as an app setting (set functionAppConfig.runtime)")
            continue
        if not satisfied(name, keys):
            problems.append(f"setting {name!r}: read by the code, not set in the Function App's app settings")
    connections = manifest["connectionSettings"]
    for name in connections:
        if not satisfied(name, keys):
            problems.append(f"connection {name!r}: named by a binding, not set in the Function App's app settings")
    for key in sorted(keys, key=str):
        base = str(key).split("__", 1)[0]
        if key not in settings and base not in settings and base not in connections and key not in PLATFORM_SETTINGS:
            problems.append(f"app setting {key!r}: set in infra/, unknown to the code")

    # --- host.json, function folders (functions/), local settings ------------------------------
    def load_json(path):
        try:
            return json.loads(path.read_text())
        except Exception as e:
            problems.append(f"{path.relative_to(root)}: {e}")
            return None

    host = load_json(root / "host.json")
    if host is not None:
        description = (host.get("customHandler") or {}).get("description") or {}
        if description.get("defaultExecutablePath") != manifest["executable"]:
            problems.append(
                f"host.json: defaultExecutablePath {description.get('defaultExecutablePath')!r}, the package ships {manifest['executable']!r}"
            )
        for where, found, wanted in json_differences(host, manifest["hostJson"]):
            problems.append(f"host.json: has {found!r} at {where}, the code generates {wanted!r}")

    folders = {p.parent.name for p in functions_dir.glob("*/function.json")}
    expected = set(manifest["functions"])
    for name in sorted(expected - folders):
        problems.append(f"function {name!r}: in the code, no functions/{name}/function.json")
    for name in sorted(folders - expected):
        problems.append(f"function {name!r}: functions/{name}/function.json has no function in the code")
    hubs = set(manifest["signalRHubs"])
    for name in sorted(folders & expected):
        fj = load_json(functions_dir / name / "function.json")
        if fj is None:
            continue
        for where, found, wanted in json_differences(fj, manifest["functions"][name]):
            problems.append(
                f"function {name!r}: functions/{name}/function.json has {found!r} at {where}, the code generates {wanted!r}"
            )
        for b in fj.get("bindings") or []:
            if "databaseName" in b and b["databaseName"] != database:
                problems.append(f"function {name!r}: databaseName {b['databaseName']!r}, infra and code use {database!r}")
            for prop in ("containerName", "leaseContainerName"):
                if prop in b and b[prop] not in declared:
                    problems.append(f"function {name!r}: {prop} {b[prop]!r} is not a container in infra/")
            if "leaseContainerName" in b and b["leaseContainerName"] != manifest["leaseContainer"]:
                problems.append(f"function {name!r}: leaseContainerName {b['leaseContainerName']!r}, the code uses {manifest['leaseContainer']!r}")
            for prop in ("connection", "connectionStringSetting", "leaseConnection"):
                if prop in b and not satisfied(b[prop], keys):
                    problems.append(f"function {name!r}: {prop} {b[prop]!r} is not set in the Function App's app settings")
            if "hubName" in b and b["hubName"] not in hubs:
                problems.append(f"function {name!r}: hubName {b['hubName']!r}, the code uses {sorted(hubs)}")

    local = load_json(root / "local.settings.json.example")
    if local is not None:
        values = set((local.get("Values") or {}).keys())
        wanted = {n for n, s in settings.items() if s["inLocalSettings"]}
        for name in sorted(wanted - values):
            problems.append(f"setting {name!r}: read by the code, missing from local.settings.json.example")
        for name in sorted(values - wanted):
            problems.append(f"setting {name!r}: in local.settings.json.example, unknown to the code")
        for name in connections:
            if not satisfied(name, values):
                problems.append(f"connection {name!r}: named by a binding, missing from local.settings.json.example")

    # --- main.bicepparam names only parameters main.bicep declares, and every required one -------
    main = next((f for f in bicep_files if f.path == infra / "main.bicep"), None)
    param_file = infra / "main.bicepparam"
    if main is None or not param_file.exists():
        problems.append("infra/main.bicep and infra/main.bicepparam must both exist")
    else:
        text = param_file.read_text()
        given = set(re.findall(r"^param\s+(\w+)\s*=", text, re.M))
        if not re.search(r"^using\s+'main\.bicep'", text, re.M):
            problems.append("main.bicepparam: does not say `using 'main.bicep'`")
        for name in sorted(given - set(main.parameters)):
            problems.append(f"main.bicepparam: parameter {name!r} is not declared in main.bicep")
        for name, p in sorted(main.parameters.items()):
            if p.get("default") is None and name not in given:
                problems.append(f"main.bicepparam: required parameter {name!r} of main.bicep has no value")

    # --- azure.yaml: azd provisions infra/ and its hook deploys the package the code builds -------
    azure_yaml = root / "azure.yaml"
    if not azure_yaml.exists():
        problems.append("azure.yaml: missing (azd up needs it)")
    else:
        text = azure_yaml.read_text()
        if not re.search(r"^\s+path:\s*infra\s*$", text, re.M) or not re.search(r"^\s+module:\s*main\s*$", text, re.M):
            problems.append("azure.yaml: infra path/module do not point at infra/main.bicep")
        for script in re.findall(r"^\s+run:\s*(\S+)\s*$", text, re.M):
            path = root / script
            if not path.exists():
                problems.append(f"azure.yaml: hook {script!r} does not exist")
                continue
            body = path.read_text()
            if f"dist/{manifest['packageZip']}" not in body or "package --out dist" not in body:
                problems.append(f"{script}: does not deploy dist/{manifest['packageZip']} built by `package --out dist`")
            outputs = set(main.outputs) if main is not None else set()
            for var in sorted(set(re.findall(r"\$\{?(AZURE_[A-Z_]+)", body))):
                if var not in outputs:
                    problems.append(f"{script}: uses {var}, which infra/main.bicep does not output")
    return problems


def main(argv):
    pairs = argv[1:]
    if not pairs or len(pairs) % 2:
        print(__doc__, file=sys.stderr)
        return 2
    results = {}
    for manifest_path, root in zip(pairs[0::2], pairs[1::2]):
        manifest = json.loads(Path(manifest_path).read_text())
        results[root] = check_root(Path(root), manifest)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
