"""The migration plan's two change-feed handlers, as the plan gives them.

The two function bodies below are copied verbatim from the plan (Phase 2, "Change Feed processor
(Azure Function)", and Phase 3, "Option A: Change Feed Aggregation"). What the plan leaves
undefined is supplied by the smallest stand-ins that let them run, all in memory and all cheaper
than what they stand for (no network, no event loop):

- `app.cosmos_db_trigger(...)` registers nothing and returns the function unchanged;
- `signalr_output.send(message)` appends the message to the invocation's SignalR output
  (what the SignalR output binding would send);
- `get_or_create_metrics` / `cosmos_client.upsert_item` read and write a dict standing in for
  the `entities` container (a read returns a copy, as a Cosmos read returns a fresh document).
"""

from typing import List

Document = dict


class _App:
    def cosmos_db_trigger(self, **_binding):
        return lambda function: function


app = _App()


class _SignalROutput:
    def __init__(self):
        self.messages = []

    async def send(self, message):
        self.messages.append(message)


signalr_output = _SignalROutput()


class _MetricsContainer:
    """`entities` as a dict keyed by (scope, id)."""

    def __init__(self):
        self.items = {}

    async def upsert_item(self, item):
        self.items[(item["scope"], item["id"])] = dict(item)


cosmos_client = _MetricsContainer()


async def get_or_create_metrics(scope, metrics_id, date):
    stored = cosmos_client.items.get((scope, metrics_id))
    if stored is not None:
        return dict(stored)
    # The plan's daily metrics document (Phase 3 schema), zeroed.
    return {
        "id": metrics_id,
        "type": "metrics",
        "scope": scope,
        "date": date,
        "totalExecutions": 0,
        "successCount": 0,
        "failedCount": 0,
        "timeoutCount": 0,
        "totalDurationMs": 0,
        "avgDurationMs": 0,
        "workflows": {},
    }


# ---- Phase 2: the plan's stream handler, verbatim ----

@app.cosmos_db_trigger(
    database="bifrost",
    container="execution_data",
    lease_container="leases"
)
async def on_execution_data_changed(documents: List[Document]):
    """Push real-time updates to SignalR"""
    for doc in documents:
        execution_id = doc['executionId']

        if doc['type'] == 'log':
            # Push log to UI immediately
            await signalr_output.send({
                'target': 'executionLog',
                'arguments': [{
                    'executionId': execution_id,
                    'timestamp': doc['timestamp'],
                    'level': doc['level'],
                    'message': doc['message']
                }]
            })

        elif doc['type'] == 'variables':
            # Push variable update to UI
            await signalr_output.send({
                'target': 'executionVariables',
                'arguments': [{
                    'executionId': execution_id,
                    'variables': doc['variables']
                }]
            })


# ---- Phase 3, option A: the plan's change-feed aggregation, verbatim ----

@app.cosmos_db_trigger(container="executions")
async def aggregate_metrics(documents: List[Document]):
    """Update daily metrics as executions complete"""
    for doc in documents:
        if doc['status'] in ['Success', 'Failed', 'Timeout']:
            date = doc['completedAt'][:10]  # "2025-01-26"
            scope = doc['scope']

            # Get today's metrics
            metrics_id = f"metrics-daily-{date}"
            metrics = await get_or_create_metrics(scope, metrics_id, date)

            # Increment counters
            metrics['totalExecutions'] += 1
            if doc['status'] == 'Success':
                metrics['successCount'] += 1
            elif doc['status'] == 'Failed':
                metrics['failedCount'] += 1

            # Update average duration (incremental)
            metrics['totalDurationMs'] += doc.get('durationMs', 0)
            metrics['avgDurationMs'] = metrics['totalDurationMs'] // metrics['totalExecutions']

            await cosmos_client.upsert_item(metrics)
