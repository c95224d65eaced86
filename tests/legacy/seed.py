"""Writes Bifrost legacy-shaped rows and blobs with the real Azure SDKs (the ones Bifrost used),
so the migrator reads exactly what production holds: sparse entities (the SDK drops None), naive
`isoformat()` strings, JSON-in-string InputData/Result, Int32 DurationMs, Boolean ResultInBlob.

    seed.py --conn CONN fixture --day YYYY-MM-DD --expired-day YYYY-MM-DD [--filler N --filler-logs M]
    seed.py --conn CONN bulk --executions N --logs M --day YYYY-MM-DD [--workers W]
    seed.py --conn CONN sas                (prints a SAS connection string for the same account)
    seed.py --conn CONN tamper-source --partition PK --row-key RK --property NAME --value VALUE
    seed.py --conn CONN entities        (every other legacy row kind; prints the planted secrets)
    seed.py --conn CONN entities-bulk --orgs N --users N --roles-per-org R --forms-per-org F
                                        (many organizations, users, roles and forms; prints the counts)

Shapes: what legacy Bifrost's ExecutionRepository (create_execution, update_execution), its
ExecutionLogs append_log and its blob storage wrote, and what its organization, user, role, form,
config, OAuth and branding repositories wrote into Entities, Config and Relationships
(docs/migration.md lists them).
"""

import argparse
import json
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from azure.data.tables import TableServiceClient, UpdateMode
from azure.storage.blob import BlobServiceClient

ORG_A = "0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01"
ORG_B = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
TABLES = ["Entities", "Relationships", "ExecutionLogs", "Config"]


def reverse_ts(started_iso):
    # As the legacy code: 9999999999999 - int(startedAt.timestamp() * 1000), UTC hosts.
    dt = datetime.fromisoformat(started_iso).replace(tzinfo=timezone.utc)
    return 9999999999999 - int(dt.timestamp() * 1000)


def execution_entity(scope, execution_id, started, **fields):
    entity = {
        "PartitionKey": scope,
        "RowKey": f"execution:{reverse_ts(started)}_{execution_id}",
        "ExecutionId": execution_id,
        "StartedAt": started,
    }
    entity.update(fields)
    # The SDK drops None-valued properties, as it did for Bifrost: a missing property means null.
    return entity


def log_entities(execution_id, base_time, lines):
    rows = []
    for index, (level, message) in enumerate(lines):
        created = f"{base_time}{index:03d}Z"
        rows.append(
            {
                "PartitionKey": execution_id,
                "RowKey": f"{created}-0001",
                "ExecutionLogId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{execution_id}/{index}")),
                "Level": level,
                "Message": message,
                "Source": "workflow",
                "CreatedAt": created,
                "Timestamp": created,
            }
        )
    return rows


def clients(conn):
    tables = TableServiceClient.from_connection_string(conn)
    for name in TABLES:
        tables.create_table_if_not_exists(name)
    blobs = BlobServiceClient.from_connection_string(conn).get_container_client("execution-data")
    if not blobs.exists():
        blobs.create_container()
    return tables, blobs


def submit(table, rows):
    """Entity-group transactions: at most 100 operations, one partition each."""
    by_partition = {}
    for row in rows:
        by_partition.setdefault(row["PartitionKey"], []).append(row)
    for partition_rows in by_partition.values():
        for start in range(0, len(partition_rows), 100):
            table.submit_transaction([("upsert", r) for r in partition_rows[start : start + 100]])


def fixture(tables, blobs, args):
    day, old = args.day, args.expired_day
    entities = tables.get_table_client("Entities")
    logs = tables.get_table_client("ExecutionLogs")
    relationships = tables.get_table_client("Relationships")
    rows = []
    # 1. Org-scoped Success, inline JSON result, form, logs and variables.
    rows.append(execution_entity(
        ORG_A, "00000000-0000-0000-0000-00000000b1f0", f"{day}T19:05:07.369578",
        WorkflowName="user_onboarding", FormId="form-123", ExecutedBy="d75b260a64504067bfc5b2905e3b8182",
        ExecutedByName="jack", Status="Success", InputData=json.dumps({"first_name": "Ada", "n": 0}),
        ResultInBlob=False, CompletedAt=f"{day}T19:05:07.462281", DurationMs=1234,
        Result=json.dumps({"success": True, "message": "done"})))
    # 2. GLOBAL Success with an HTML result in a blob (ResultInBlob, no Result property).
    rows.append(execution_entity(
        "GLOBAL", "00000000-0000-0000-0000-00000000b1f2", f"{day}T19:05:07.552216",
        WorkflowName="user_onboarding", ExecutedBy="d75b260a64504067bfc5b2905e3b8182", ExecutedByName="jack",
        Status="Success", InputData=json.dumps({"first_name": "Ada", "n": 2}), ResultInBlob=True,
        CompletedAt=f"{day}T19:05:07.597523", DurationMs=1236))
    # 3. GLOBAL Failed: error message, microsecond-less CompletedAt, InputData that is not JSON.
    rows.append(execution_entity(
        "GLOBAL", "00000000-0000-0000-0000-00000000b1f1", f"{day}T19:05:07.496999",
        WorkflowName="simple_greeting", ExecutedBy="d75b260a64504067bfc5b2905e3b8182", ExecutedByName="jack",
        Status="Failed", InputData="{not json", ResultInBlob=False, CompletedAt=f"{day}T19:05:08",
        DurationMs=1235, ErrorMessage="Boom: KeyError 'x'", Result="plain text result"))
    # 4. Org-scoped Running: sparse (no CompletedAt, DurationMs, Result, ErrorMessage, FormId).
    rows.append(execution_entity(
        ORG_B, "00000000-0000-0000-0000-00000000b1f3", f"{day}T20:00:00",
        WorkflowName="long_task", ExecutedBy="system", ExecutedByName="system", Status="Running",
        InputData="{}", ResultInBlob=False))
    # 5. A result over 2 MB in a blob: referenced, not copied.
    rows.append(execution_entity(
        ORG_A, "00000000-0000-0000-0000-00000000b1f4", f"{day}T21:00:00.000001",
        WorkflowName="big_report", ExecutedBy="d75b260a64504067bfc5b2905e3b8182", ExecutedByName="jack",
        Status="CompletedWithErrors", InputData="{}", ResultInBlob=True, CompletedAt=f"{day}T21:00:09.5",
        DurationMs=9499))
    # 6. Expired (older than 14 days): skipped unless --keep-expired. Written the way rows of
    #    2025-10-14 … 10-17 were: logs, variables and the error/state columns as JSON strings
    #    (legacy update_execution wrote them with json.dumps, default separators).
    rows.append(execution_entity(
        "GLOBAL", "00000000-0000-0000-0000-00000000e0e0", f"{old}T10:00:00.5",
        WorkflowName="ancient", ExecutedBy="x", ExecutedByName="x", Status="Failed", InputData="{}",
        ResultInBlob=False, CompletedAt=f"{old}T10:00:01.5", DurationMs=1000,
        ErrorMessage="halo answered 502", ErrorType="IntegrationError",
        ErrorDetails=json.dumps({"integration": "halo", "status_code": 502}),
        StateSnapshots=json.dumps([{"timestamp": f"{old}T10:00:01", "name": "fetched", "data": {"n": 3}}]),
        Logs=json.dumps([
            {"timestamp": f"{old}T10:00:00.750000", "level": "info", "message": "calling halo", "data": {}},
            {"timestamp": f"{old}T10:00:01.250000", "level": "error", "message": "halo answered 502",
             "data": {"status": 502}},
        ]),
        Variables=json.dumps({"ticket": 42})))
    # 7. A bad row: an unknown status. Reported and skipped; never aborts the run.
    rows.append(execution_entity(
        "GLOBAL", "00000000-0000-0000-0000-00000000bad0", f"{day}T22:00:00",
        WorkflowName="broken", ExecutedBy="x", ExecutedByName="x", Status="Exploded", InputData="{}",
        ResultInBlob=False))
    # Non-execution rows in the same table and partitions: not migrated.
    rows.append({"PartitionKey": "GLOBAL", "RowKey": f"org:{ORG_A}", "Name": "Org A"})
    rows.append({"PartitionKey": "GLOBAL", "RowKey": "user:ada@example.com", "Email": "ada@example.com"})
    for i in range(args.filler):
        scope = [ORG_A, "GLOBAL", ORG_B][i % 3]
        execution_id = f"00000000-0000-4000-8000-{i:012d}"
        rows.append(execution_entity(
            scope, execution_id, f"{day}T12:{i // 60 % 60:02d}:{i % 60:02d}.{i:06d}",
            WorkflowName=f"filler_{i % 4}", ExecutedBy="filler", ExecutedByName="filler",
            Status="Success", InputData=json.dumps({"i": i}), ResultInBlob=False,
            CompletedAt=f"{day}T13:00:00.{i:06d}", DurationMs=100 + i, Result=json.dumps({"i": i})))
    submit(entities, rows)

    log_rows = log_entities("00000000-0000-0000-0000-00000000b1f0", f"{day}T19:05:07.400",
                            [("INFO", "step one of 2"), ("DEBUG", "debug detail"), ("WARNING", "step two of 2")])
    log_rows += log_entities("00000000-0000-0000-0000-00000000b1f2", f"{day}T19:05:07.560",
                             [("INFO", "rendering"), ("ERROR", "retrying once")])
    for i in range(args.filler):
        execution_id = f"00000000-0000-4000-8000-{i:012d}"
        log_rows += log_entities(execution_id, f"{day}T12:30:00.",
                                 [("INFO", f"filler {i} line {n}") for n in range(args.filler_logs)])
    submit(logs, log_rows)

    blobs.upload_blob("00000000-0000-0000-0000-00000000b1f0/variables.json",
                      json.dumps({"counter": 2, "user": {"email": "a@b.c"}}, indent=2), overwrite=True)
    # The failed run's logs exist only as the archive blob, as for runs from before the
    # ExecutionLogs table (the engine's completion-time logs.json: naive times, lowercase levels).
    blobs.upload_blob("00000000-0000-0000-0000-00000000b1f1/logs.json", json.dumps([
        {"timestamp": f"{day}T19:05:07.600000", "level": "info", "message": "greeting", "source": "workflow"},
        {"timestamp": f"{day}T19:05:08", "level": "error", "message": "Boom: KeyError 'x'", "source": "workflow"},
    ], indent=2), overwrite=True)
    blobs.upload_blob("00000000-0000-0000-0000-00000000b1f2/result.html",
                      "<table>" + "<tr><td>row</td></tr>" * 200 + "</table>", overwrite=True)
    big = json.dumps({"rows": ["x" * 1000] * 2200}, indent=2)  # about 2.2 MB
    blobs.upload_blob("00000000-0000-0000-0000-00000000b1f4/result.json", big, overwrite=True)

    submit(relationships, [
        {"PartitionKey": "GLOBAL", "RowKey": f"userperm:ada@example.com:{ORG_A}", "UserId": "ada@example.com",
         "OrganizationId": ORG_A, "CreatedAt": f"{day}T08:00:00", "CreatedBy": "system"},
        {"PartitionKey": "GLOBAL", "RowKey": f"userperm:ada@example.com:{ORG_B}", "UserId": "ada@example.com",
         "OrganizationId": ORG_B, "CreatedAt": f"{day}T08:00:00", "CreatedBy": "system"},
        {"PartitionKey": "GLOBAL", "RowKey": f"userperm:bob@example.com:{ORG_B}", "UserId": "bob@example.com",
         "OrganizationId": ORG_B, "CreatedAt": f"{day}T08:00:00.5", "CreatedBy": "system"},
        {"PartitionKey": "GLOBAL", "RowKey": f"orgperm:{ORG_B}:bob@example.com", "UserId": "bob@example.com",
         "OrganizationId": ORG_B},
    ])
    print(json.dumps({"big_result_bytes": len(big.encode())}))


def bulk(tables, blobs, args):
    """N executions across three scopes, M logs each, as fast as Azurite takes transactions."""
    entities = tables.get_table_client("Entities")
    logs = tables.get_table_client("ExecutionLogs")
    scopes = [ORG_A, "GLOBAL", ORG_B]
    executions = []
    for i in range(args.offset, args.offset + args.executions):
        started = f"{args.day}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1000000:06d}"
        executions.append(execution_entity(
            # Deterministic but spread like the uuid4 ids Bifrost writes.
            scopes[i % 3], str(uuid.uuid5(uuid.NAMESPACE_OID, f"bench-{i}")), started, WorkflowName=f"wf_{i % 7}",
            ExecutedBy="bench", ExecutedByName="bench", Status="Success" if i % 5 else "Failed",
            InputData=json.dumps({"i": i}), ResultInBlob=False, CompletedAt=started, DurationMs=i % 5000,
            Result=json.dumps({"ok": i})))

    def write_execution_logs(chunk):
        for row in chunk:
            execution_id = row["ExecutionId"]
            submit(logs, log_entities(execution_id, f"{args.day}T12:00:00.",
                                      [("INFO", f"line {n}") for n in range(args.logs)]))
        return len(chunk)

    submit(entities, executions)
    chunks = [executions[i : i + 200] for i in range(0, len(executions), 200)]
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        done = sum(pool.map(write_execution_logs, chunks))
    print(json.dumps({"executions": len(executions), "logs": done * args.logs}))


# The stray column every legacy read-modify-write left behind (get_entity put the ETag into the
# dict, update wrote it back as a plain string property).
STRAY_ETAG = "W/\"datetime'2026-12-01T09%3A01%3A39.2085923Z'\""
# Plaintext secrets an admin typed into Config rows (or a dev seed wrote): none may reach the
# target, the checkpoint, the spool or any output.
SECRETS = {
    "smtp": "Plain-SMTP-pw-7f3a91",
    "json_token": "plain-json-token-52be0c",
    "account_key": "cGxhaW5BY2NvdW50S2V5LTNkOTk=",
    "msgraph": "plain-msgraph-secret-a8c4e2",
    "access_token": "plain-access-token-e1f0aa",
    "refresh_token": "plain-refresh-token-77d2b3",
    "halo_ref": "Plain HaloPSA key 9b1d",
}
ROLE_OPS = "6a1f3c2e-0b7d-4e5f-8a9b-1c2d3e4f5a60"
ROLE_GLOBAL = "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d"
ROLE_EARLY = "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a"
FORM_NEW = "3f9a2c71-8e44-4b6a-9d2e-5c7b1a0f8e63"
FORM_OLD = "c0ffee00-1234-4abc-8def-0123456789ab"


def form_field(**fields):
    """A FormField as FormSchema.model_dump() wrote it: every key, null when unset, in order."""
    keys = ["name", "label", "type", "required", "validation", "dataProvider", "dataProviderInputs",
            "defaultValue", "placeholder", "helpText", "visibilityExpression", "options", "allowedTypes",
            "multiple", "maxSizeMB", "content", "allowAsQueryParam"]
    return {key: fields.get(key) for key in keys}


def entities(tables, _blobs, _args):
    """Every legacy row kind outside the executions, as the legacy repositories wrote them."""
    at, plain = "2025-10-20T09:15:02.123456", "2025-10-21T11:00:00"  # isoformat(): no fraction at 0
    rows = {"Entities": [], "Config": [], "Relationships": []}
    add = lambda table, **row: rows[table].append(row)
    # Organizations: active with a domain (after an update: etag); soft-deleted; the 2025-10-14
    # seed's shape (TenantId, no Domain).
    add("Entities", PartitionKey="GLOBAL", RowKey=f"org:{ORG_A}", Name="Org A", Domain="a.example.com",
        IsActive=True, CreatedAt=at, CreatedBy="d75b260a64504067bfc5b2905e3b8182", UpdatedAt=plain,
        etag=STRAY_ETAG)
    add("Entities", PartitionKey="GLOBAL", RowKey=f"org:{ORG_B}", Name="Org B", IsActive=False, CreatedAt=at,
        CreatedBy="system", UpdatedAt=plain, etag=STRAY_ETAG)
    add("Entities", PartitionKey="GLOBAL", RowKey="org:5d6e7f80-9a0b-4c1d-8e2f-3a4b5c6d7e8f", Name="Seeded",
        TenantId="tenant-1", IsActive=True, CreatedAt="2025-10-14T08:00:00", CreatedBy="system",
        UpdatedAt="2025-10-14T08:00:00")
    # Users: the RowKey keeps the e-mail as typed. Ada exists twice (two cases; the newer login
    # wins); the platform admin; a deactivated user.
    add("Entities", PartitionKey="GLOBAL", RowKey="user:Ada@Example.com", Email="Ada@Example.com",
        DisplayName="Ada Lovelace", UserType="ORG", IsPlatformAdmin=False, IsActive=True, CreatedAt=at,
        LastLogin="2025-11-02T10:00:00.5", etag=STRAY_ETAG)
    add("Entities", PartitionKey="GLOBAL", RowKey="user:ada@example.com", Email="ada@example.com",
        DisplayName="ada (old)", UserType="ORG", IsPlatformAdmin=False, IsActive=True, CreatedAt=at,
        LastLogin="2025-10-22T10:00:00")
    add("Entities", PartitionKey="GLOBAL", RowKey="user:root@example.com", Email="root@example.com",
        DisplayName="Root", UserType="PLATFORM", IsPlatformAdmin=True, IsActive=True, CreatedAt=at,
        LastLogin=plain, EntraUserId="0e1f2a3b-aaaa-4bbb-8ccc-123456789abc", LastEntraIdSync=plain)
    add("Entities", PartitionKey="GLOBAL", RowKey="user:gone@example.com", Email="gone@example.com",
        DisplayName="Gone", UserType="ORG", IsPlatformAdmin=False, IsActive=False, CreatedAt=at,
        LastLogin=at)
    # Roles: org-scoped, GLOBAL (an admin without X-Organization-Id), and one from the
    # 2025-10-14..17 Relationships era; a soft-deleted one.
    add("Entities", PartitionKey=ORG_A, RowKey=f"role:{ROLE_OPS}", Name="Ops", Description="Runs things",
        IsActive=True, CreatedBy="root@example.com", CreatedAt=at, UpdatedAt=at)
    add("Entities", PartitionKey="GLOBAL", RowKey=f"role:{ROLE_GLOBAL}", Name="Everyone", IsActive=False,
        CreatedBy="root@example.com", CreatedAt=at, UpdatedAt=plain, etag=STRAY_ETAG)
    add("Relationships", PartitionKey="GLOBAL", RowKey=f"role:{ROLE_EARLY}", Name="Early", IsActive=True,
        CreatedBy="system", CreatedAt="2025-10-15T12:00:00", UpdatedAt="2025-10-15T12:00:00")
    # Forms: the newest table shape, and the pre-AccessLevel one (IsPublic).
    schema = {"fields": [
        form_field(name="email", label="E-mail", type="email", required=True,
                   dataProvider="users", dataProviderInputs={"org": {"mode": "static", "value": "a",
                                                                      "fieldName": None, "expression": None}},
                   allowAsQueryParam=True),
        form_field(name="note", label="Note", type="textarea", required=False, placeholder="Say why"),
    ]}
    add("Entities", PartitionKey=ORG_A, RowKey=f"form:{FORM_NEW}", Name="Onboard", Description="New hire",
        LinkedWorkflow="user_onboarding", FormSchema=json.dumps(schema), IsActive=True, AccessLevel="role_based",
        CreatedBy="root@example.com", CreatedAt=at, UpdatedAt=plain, LaunchWorkflowId="prefill",
        AllowedQueryParams=json.dumps(["email"]), DefaultLaunchParams=json.dumps({"source": "form"}),
        etag=STRAY_ETAG)
    add("Entities", PartitionKey="GLOBAL", RowKey=f"form:{FORM_OLD}", Name="Old form",
        LinkedWorkflow="simple_greeting", FormSchema=json.dumps({"fields": []}), IsActive=True, IsPublic=True,
        CreatedBy="system", CreatedAt="2025-10-16T09:00:00", UpdatedAt="2025-10-16T09:00:00")
    # Relationships: memberships (both shapes; one user known only from a membership), the
    # reverse copy, role assignments (one of nobody, one of a role that does not exist), form
    # roles (one of a deleted form), the workflow → form index.
    add("Relationships", PartitionKey="GLOBAL", RowKey=f"userperm:Ada@Example.com:{ORG_A}",
        UserId="Ada@Example.com", OrganizationId=ORG_A, CreatedAt=at, CreatedBy="system")
    add("Relationships", PartitionKey="GLOBAL", RowKey=f"userperm:ada@example.com:{ORG_B}",
        UserId="ada@example.com", OrganizationId=ORG_B, GrantedBy="system", GrantedAt=at)
    add("Relationships", PartitionKey="GLOBAL", RowKey=f"userperm:carol@example.com:{ORG_A}",
        UserId="carol@example.com", OrganizationId=ORG_A, CreatedAt=at, CreatedBy="system")
    add("Relationships", PartitionKey="GLOBAL", RowKey=f"userperm:gone@example.com:{ORG_A}",
        UserId="gone@example.com", OrganizationId=ORG_A, CreatedAt=at, CreatedBy="system")
    add("Relationships", PartitionKey="GLOBAL", RowKey=f"orgperm:{ORG_A}:carol@example.com",
        UserId="carol@example.com", OrganizationId=ORG_A, CreatedAt=at, CreatedBy="system")
    add("Relationships", PartitionKey="GLOBAL", RowKey=f"userrole:Ada@Example.com:{ROLE_OPS}",
        UserId="Ada@Example.com", RoleId=ROLE_OPS, AssignedBy="root@example.com", AssignedAt=at)
    add("Relationships", PartitionKey="GLOBAL", RowKey=f"userrole:carol@example.com:{ROLE_GLOBAL}",
        UserId="carol@example.com", RoleId=ROLE_GLOBAL, AssignedBy="root@example.com", AssignedAt=at)
    add("Relationships", PartitionKey="GLOBAL", RowKey=f"userrole:nobody@example.com:{ROLE_OPS}",
        UserId="nobody@example.com", RoleId=ROLE_OPS, AssignedBy="root@example.com", AssignedAt=at)
    add("Relationships", PartitionKey="GLOBAL", RowKey="userrole:ada@example.com:deleted-role",
        UserId="ada@example.com", RoleId="deleted-role", AssignedBy="root@example.com", AssignedAt=at)
    add("Relationships", PartitionKey="GLOBAL", RowKey=f"formrole:{FORM_NEW}:{ROLE_OPS}",
        FormId=FORM_NEW, RoleId=ROLE_OPS, AssignedBy="root@example.com", AssignedAt=at)
    add("Relationships", PartitionKey="GLOBAL", RowKey=f"formrole:deleted-form:{ROLE_OPS}",
        FormId="deleted-form", RoleId=ROLE_OPS, AssignedBy="root@example.com", AssignedAt=at)
    add("Relationships", PartitionKey="GLOBAL", RowKey=f"workflowform:user_onboarding:{FORM_NEW}",
        FormId=FORM_NEW, FormName="Onboard", IsActive=True, AccessLevel="role_based",
        PartitionKey_Original=ORG_A, CreatedAt=at)
    # Config values of every type; plaintext secrets under sensitive keys, and one under a
    # harmless key that only its value gives away.
    config = lambda pk, key, value, kind, **more: add(
        "Config", PartitionKey=pk, RowKey=f"config:{key}", Value=value, Type=kind, UpdatedAt=at,
        UpdatedBy="root@example.com", **more)
    config("GLOBAL", "halo_url", "https://halo.example.com", "string", Description="HaloPSA")
    config("GLOBAL", "max_retries", "3", "int")
    config("GLOBAL", "feature_on", "true", "bool")
    config("GLOBAL", "mapping", json.dumps({"a": 1, "b": [1, 2]}), "json")
    config("GLOBAL", "graph_secret", "bifrost-global-graph-secret-2b7e0c1d-8f5a-4e3b-9c6d-1a2b3c4d5e6f",
           "secret_ref", Description="Graph")
    config(ORG_A, "smtp_password", SECRETS["smtp"], "string", Description="SMTP")
    config(ORG_A, "api_settings", json.dumps({"endpoint": "https://api.example.com",
                                              "token": SECRETS["json_token"]}), "json")
    config("GLOBAL", "archive_storage", "DefaultEndpointsProtocol=https;AccountName=arch;"
           f"AccountKey={SECRETS['account_key']};EndpointSuffix=core.windows.net", "string")
    # Integrations: Key Vault names in *_ref, and a client secret an admin pasted in clear.
    add("Config", PartitionKey=ORG_A, RowKey="integration:halopsa", Type="halopsa", Enabled=True,
        Settings=json.dumps({"api_url": "https://halo.example.com/api", "client_id": "halo-client",
                             "api_key_ref": SECRETS["halo_ref"]}), UpdatedAt=at, UpdatedBy="root@example.com")
    add("Config", PartitionKey="GLOBAL", RowKey="integration:msgraph", Type="msgraph", Enabled=False,
        Settings=json.dumps({"tenant_id": "tenant-1", "client_id": "graph-client",
                             "client_secret_ref": "bifrost-global-msgraph-secret-7c1d",
                             "client_secret": SECRETS["msgraph"]}), UpdatedAt=at, UpdatedBy="root@example.com")
    add("Config", PartitionKey="GLOBAL", RowKey="github", Status="configured",
        SecretRef="bifrost-global-github-token-4e5f6a7b", RepoUrl="https://github.com/acme/workflows",
        ProductionBranch="main", UpdatedAt=at, UpdatedBy="root@example.com", etag=STRAY_ETAG)
    # OAuth generation 2, and generation 1 (three rows): the same name in ORG_A (generation 2
    # wins), a GLOBAL one only in generation 1, a generation 1 part without its metadata row.
    add("Config", PartitionKey=ORG_A, RowKey="oauth:halo", Type="oauth", Description="HaloPSA",
        OAuthFlowType="client_credentials", ClientId="halo-client",
        ClientSecretRef=f"bifrost-{ORG_A}-oauth-halo-client-secret-5a6b", TokenUrl="https://halo.example.com/token",
        Scopes="all", RedirectUri="https://bifrost.example.com/oauth/callback/halo", Status="completed",
        ExpiresAt="2025-11-03T10:00:00", CreatedBy="root@example.com", CreatedAt=at, UpdatedAt=plain,
        UpdatedBy="TokenRefreshJob", etag=STRAY_ETAG)
    metadata = lambda **m: json.dumps(m)
    for pk, name, client in [(ORG_A, "halo", "old-halo-client"), ("GLOBAL", "graph", "graph-client")]:
        config(pk, f"oauth_{name}_metadata", metadata(
            oauth_flow_type="authorization_code", client_id=client,
            authorization_url="https://login.example.com/authorize", token_url="https://login.example.com/token",
            scopes="offline_access User.Read", redirect_uri=f"https://bifrost.example.com/oauth/callback/{name}",
            status="completed", expires_at="2025-10-25T10:00:00", last_refresh_at="2025-10-25T09:00:00"),
            "json", Description=f"OAuth metadata for {name}")
        config(pk, f"oauth_{name}_client_secret", f"{pk.lower()}--oauth-{name}-client-secret", "secret_ref",
               Description=f"OAuth client secret for {name}")
        config(pk, f"oauth_{name}_oauth_response", f"{pk.lower()}--oauth-{name}-response", "secret_ref",
               Description=f"OAuth response for {name}")
    config("GLOBAL", "oauth_stale_client_secret", "global--oauth-stale-client-secret", "secret_ref")
    # The early dev seed's OAuth row with tokens in clear.
    add("Config", PartitionKey=ORG_B, RowKey="oauth:microsoft", Type="oauth", OAuthFlowType="authorization_code",
        ClientId="ms-client", TokenUrl="https://login.microsoftonline.com/token", Scopes="User.Read",
        RedirectUri="https://bifrost.example.com/oauth/callback/microsoft", Status="completed",
        AccessToken=SECRETS["access_token"], RefreshToken=SECRETS["refresh_token"], CreatedBy="seed",
        CreatedAt="2025-10-14T08:00:00", UpdatedAt="2025-10-14T08:00:00")
    # Branding: GLOBAL (the one read since 2025-10-26) and an older org row.
    add("Config", PartitionKey="GLOBAL", RowKey="branding",
        SquareLogoUrl="https://acct.blob.core.windows.net/branding/GLOBAL/square-logo.png",
        RectangleLogoUrl="https://acct.blob.core.windows.net/branding/GLOBAL/rectangle-logo.svg",
        PrimaryColor="#0a84ff", UpdatedBy="root@example.com", UpdatedAt=at)
    add("Config", PartitionKey=ORG_A, RowKey="branding", PrimaryColor="#abc", UpdatedBy="root@example.com",
        UpdatedAt="2025-10-24T08:00:00")
    # Not migrated: the token refresh job's status (the only SYSTEM row; a Double), schedules,
    # workflow keys (hashes), the dev seed's system rows.
    add("Config", PartitionKey="SYSTEM", RowKey="jobstatus:TokenRefreshJob", StartTime=at, EndTime=plain,
        DurationSeconds=1.5, Status="completed", TriggerType="timer", TotalConnections=2, NeedsRefresh=1,
        RefreshedSuccessfully=1, RefreshFailed=0,
        Errors=json.dumps([{"connection_name": "halo", "org_id": ORG_A, "error": "none"}]))
    add("Config", PartitionKey="GLOBAL", RowKey="schedule:daily_report", WorkflowName="Daily report",
        CronExpression="0 6 * * *", NextRunAt=plain, ExecutionCount=12, CreatedAt=at)
    add("Config", PartitionKey="GLOBAL", RowKey="workflowkey:k1", KeyId="k1",
        HashedKey="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", CreatedBy="root@example.com",
        CreatedAt=at, Revoked=False, DisableGlobalKey=False)
    add("Config", PartitionKey="GLOBAL", RowKey="system:maintenance", Key="maintenance", Scope="GLOBAL",
        Value="false", Type="boolean")
    for table, table_rows in rows.items():
        submit(tables.get_table_client(table), table_rows)
    print(json.dumps({"secrets": SECRETS, "rows": {t: len(r) for t, r in rows.items()}}))


def entities_bulk(tables, _blobs, args):
    """Many organizations, users (with a membership and a role each), roles and forms (with a
    role each), the shapes the legacy repositories wrote: enough documents that writing them
    takes a while, for interrupting a run."""
    at = "2025-10-20T09:15:02.123456"
    rows = {"Entities": [], "Relationships": []}
    add = lambda table, **row: rows[table].append(row)
    org_ids = [str(uuid.uuid5(uuid.NAMESPACE_OID, f"bulk-org-{o}")) for o in range(args.orgs)]
    roles = []
    for o, org in enumerate(org_ids):
        add("Entities", PartitionKey="GLOBAL", RowKey=f"org:{org}", Name=f"Org {o}", Domain=f"org{o}.example.com",
            IsActive=True, CreatedAt=at, CreatedBy="system", UpdatedAt=at, etag=STRAY_ETAG)
        for r in range(args.roles_per_org):
            role = str(uuid.uuid5(uuid.NAMESPACE_OID, f"bulk-role-{o}-{r}"))
            roles.append(role)
            add("Entities", PartitionKey=org, RowKey=f"role:{role}", Name=f"Role {o}.{r}",
                Description="Bulk role", IsActive=True, CreatedBy="root@example.com", CreatedAt=at, UpdatedAt=at)
        for f in range(args.forms_per_org):
            form = str(uuid.uuid5(uuid.NAMESPACE_OID, f"bulk-form-{o}-{f}"))
            schema = {"fields": [form_field(name="email", label="E-mail", type="email", required=True)]}
            add("Entities", PartitionKey=org, RowKey=f"form:{form}", Name=f"Form {o}.{f}",
                LinkedWorkflow="user_onboarding", FormSchema=json.dumps(schema), IsActive=True,
                AccessLevel="role_based", CreatedBy="root@example.com", CreatedAt=at, UpdatedAt=at)
            role = roles[(o * args.roles_per_org + f) % len(roles)] if roles else None
            if role:
                add("Relationships", PartitionKey="GLOBAL", RowKey=f"formrole:{form}:{role}", FormId=form,
                    RoleId=role, AssignedBy="root@example.com", AssignedAt=at)
    for u in range(args.users):
        # The RowKey keeps the e-mail as typed: every seventh in mixed case.
        email = f"User{u}@Example.com" if u % 7 == 0 else f"user{u}@example.com"
        add("Entities", PartitionKey="GLOBAL", RowKey=f"user:{email}", Email=email, DisplayName=f"User {u}",
            UserType="ORG", IsPlatformAdmin=u == 0, IsActive=u % 11 != 0, CreatedAt=at, LastLogin=at)
        if org_ids:
            org = org_ids[u % len(org_ids)]
            add("Relationships", PartitionKey="GLOBAL", RowKey=f"userperm:{email}:{org}", UserId=email,
                OrganizationId=org, CreatedAt=at, CreatedBy="system")
        if roles:
            role = roles[u % len(roles)]
            add("Relationships", PartitionKey="GLOBAL", RowKey=f"userrole:{email}:{role}", UserId=email,
                RoleId=role, AssignedBy="root@example.com", AssignedAt=at)
    # Transactions in parallel (one partition each, at most 100 rows), as fast as Azurite takes them.
    chunks = []
    for table, table_rows in rows.items():
        by_partition = {}
        for row in table_rows:
            by_partition.setdefault(row["PartitionKey"], []).append(row)
        for partition_rows in by_partition.values():
            chunks += [(table, partition_rows[i : i + 100]) for i in range(0, len(partition_rows), 100)]
    def submit(chunk):
        # The SDK does not retry a transaction (a POST) whose connection Azurite reset under
        # load; these are upserts, so sending one again is safe.
        from azure.core.exceptions import ServiceRequestError, ServiceResponseError
        for attempt in range(5):
            try:
                return tables.get_table_client(chunk[0]).submit_transaction(
                    [("upsert", r) for r in chunk[1]])
            except (ServiceRequestError, ServiceResponseError, ConnectionError):
                if attempt == 4:
                    raise
                time.sleep(0.2 * 2 ** attempt)
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        list(pool.map(submit, chunks))
    print(json.dumps({"organizations": args.orgs, "users": args.users, "roles": len(roles),
                      "forms": args.orgs * args.forms_per_org, "rows": {t: len(r) for t, r in rows.items()}}))


def tamper_source(tables, _blobs, args):
    table = tables.get_table_client("Entities")
    table.update_entity({"PartitionKey": args.partition, "RowKey": args.row_key, args.property: args.value},
                        mode=UpdateMode.MERGE)


def sas(_tables, _blobs, args):
    """Prints a connection string that authenticates with a read/list account SAS valid for
    both the Blob and the Table service (ss=bt), instead of the account key."""
    from datetime import timedelta

    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    parts = dict(p.split("=", 1) for p in args.conn.split(";") if p)
    token = generate_account_sas(
        parts["AccountName"], parts["AccountKey"],
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(read=True, list=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
        services="bt",  # the blob SDK builds the account SAS; "t" adds the Table service
    )
    print(f"BlobEndpoint={parts['BlobEndpoint']};TableEndpoint={parts['TableEndpoint']};"
          f"SharedAccessSignature={token}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--conn", required=True)
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fixture")
    f.add_argument("--day", required=True)
    f.add_argument("--expired-day", required=True)
    f.add_argument("--filler", type=int, default=0)
    f.add_argument("--filler-logs", type=int, default=2)
    b = sub.add_parser("bulk")
    b.add_argument("--executions", type=int, required=True)
    b.add_argument("--logs", type=int, required=True)
    b.add_argument("--day", required=True)
    b.add_argument("--workers", type=int, default=8)
    b.add_argument("--offset", type=int, default=0, help="first execution number (to add more)")
    sub.add_parser("sas")
    sub.add_parser("entities")
    e = sub.add_parser("entities-bulk")
    e.add_argument("--orgs", type=int, required=True)
    e.add_argument("--users", type=int, required=True)
    e.add_argument("--roles-per-org", type=int, default=3)
    e.add_argument("--forms-per-org", type=int, default=2)
    e.add_argument("--workers", type=int, default=8)
    t = sub.add_parser("tamper-source")
    t.add_argument("--partition", required=True)
    t.add_argument("--row-key", required=True)
    t.add_argument("--property", required=True)
    t.add_argument("--value", required=True)
    args = parser.parse_args()
    tables, blobs = clients(args.conn)
    {"fixture": fixture, "bulk": bulk, "sas": sas, "tamper-source": tamper_source,
     "entities": entities, "entities-bulk": entities_bulk}[args.command](tables, blobs, args)


if __name__ == "__main__":
    sys.exit(main())
