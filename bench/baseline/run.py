"""Runs the plan's handlers (plan_handlers.py) on host payloads, the way a custom handler would:
the Functions host's JSON envelope in (`{"Data": {"documents": …}, "Metadata": …}`, with the
Cosmos trigger's documents JSON-encoded twice), the custom-handler reply out
(`{"Outputs": …, "Logs": [], "ReturnValue": null}` as JSON text). No HTTP and no event loop: the
handlers' awaits never suspend, so each coroutine is driven to its end directly.

    python3 run.py stream|aggregate BODIES REPEAT

BODIES holds one request body per line. The first pass over them starts from an empty metrics
store and its result is reported (`metrics`); then REPEAT more passes are timed. Prints one JSON
object: documents and invocations per pass, CPU seconds (user + system) of the timed passes, the
process's peak RSS, the SignalR messages of one pass and, for `aggregate`, the metrics documents.
"""

import json
import resource
import sys
import time

import plan_handlers

FUNCTIONS = {
    "stream": plan_handlers.on_execution_data_changed,
    "aggregate": plan_handlers.aggregate_metrics,
}


def run_coroutine(coroutine):
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("a handler awaited something that suspends")


def documents_of(body):
    """`Data.documents`: an array, or JSON text of one, or JSON text of JSON text of one."""
    value = json.loads(body)["Data"]["documents"]
    depth = 0
    while isinstance(value, str) and depth < 3:
        value = json.loads(value)
        depth += 1
    return value


def invoke(function, body):
    documents = documents_of(body)
    plan_handlers.signalr_output.messages = []
    run_coroutine(function(documents))
    outputs = {}
    if plan_handlers.signalr_output.messages:
        outputs["signalRMessages"] = plan_handlers.signalr_output.messages
    reply = json.dumps({"Outputs": outputs, "Logs": [], "ReturnValue": None})
    return reply, len(documents)


def main():
    kind, path, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
    function = FUNCTIONS[kind]
    with open(path, "rb") as f:
        bodies = [line.rstrip(b"\n") for line in f if line.strip()]

    documents = messages = 0
    plan_handlers.cosmos_client.items = {}
    for body in bodies:
        reply, count = invoke(function, body)
        documents += count
        messages += len(plan_handlers.signalr_output.messages)
    metrics = sorted(plan_handlers.cosmos_client.items.values(), key=lambda m: (m["scope"], m["date"]))

    started = time.process_time()
    for _ in range(repeat):
        for body in bodies:
            invoke(function, body)
    cpu = time.process_time() - started

    print(json.dumps({
        "documents": documents,
        "invocations": len(bodies),
        "repeat": repeat,
        "cpuSeconds": cpu,
        "maxRssKb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "signalRMessages": messages,
        "metrics": metrics if kind == "aggregate" else None,
        "python": sys.version.split()[0],
    }))


if __name__ == "__main__":
    main()
