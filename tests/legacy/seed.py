"""Writes Bifrost legacy-shaped rows and blobs with the real Azure SDKs (the ones Bifrost used),
so the migrator reads exactly what production holds: sparse entities (the SDK drops None), naive
`isoformat()` strings, JSON-in-string InputData/Result, Int32 DurationMs, Boolean ResultInBlob.

    seed.py --conn CONN fixture --day YYYY-MM-DD --expired-day YYYY-MM-DD [--filler N --filler-logs M]
    seed.py --conn CONN bulk --executions N --logs M --day YYYY-MM-DD [--workers W]
    seed.py --conn CONN sas                (prints a SAS connection string for the same account)
    seed.py --conn CONN tamper-source --partition PK --row-key RK --property NAME --value VALUE

Shapes: what legacy Bifrost's ExecutionRepository (create_execution, update_execution), its
ExecutionLogs append_log and its blob storage wrote (docs/migration.md lists them).
"""

import argparse
import json
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from azure.data.tables import TableServiceClient, UpdateMode
from azure.storage.blob import BlobServiceClient

ORG_A = "0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01"
ORG_B = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
TABLES = ["Entities", "Relationships", "ExecutionLogs"]


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
    t = sub.add_parser("tamper-source")
    t.add_argument("--partition", required=True)
    t.add_argument("--row-key", required=True)
    t.add_argument("--property", required=True)
    t.add_argument("--value", required=True)
    args = parser.parse_args()
    tables, blobs = clients(args.conn)
    {"fixture": fixture, "bulk": bulk, "sas": sas, "tamper-source": tamper_source}[args.command](tables, blobs, args)


if __name__ == "__main__":
    sys.exit(main())
