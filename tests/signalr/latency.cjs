// Write→receive latency probe for benches/signalr_latency.rs, with the official client.
// Usage: SIGNALR_MODULE=... node latency.cjs '{"base","principal","principals":[…],"executions":[ids],"clients":N}'
// Opens `clients` connections (default 1, subscribed to every execution; with more, client i
// subscribes to execution i mod the count). A subscription is its user's (every connection of
// that user receives it), so client i signs in as `principals[i]` when given (one user per
// connection), else all as `principal`. Prints {"event":"ready"} once all are subscribed.
// Then, per line on stdin: `{"subscribe":[ids]}` subscribes the same connections to more
// executions (the same rule) and prints {"event":"ready"} again; `{"report":true}` prints what
// was received since the last report and starts counting afresh, so one set of warm, long-lived
// connections serves several measurements. When stdin closes it prints what is left and exits.
// What it prints is one line {"event":"latencies","ms":[...],"received":N,"duplicates":N,
// "outOfOrder":N,"expected":{id:subscribers}} with, per received log and client, receive time
// minus its `timestamp` (the writer stamps it just before the store write), to the microsecond;
// a log a client received again counts in `duplicates` (not in `ms`), one that came after a
// higher sequence of its execution in `outOfOrder`; `expected` names the executions subscribed
// since the last report.
"use strict";

const readline = require("node:readline");
const signalR = require(process.env.SIGNALR_MODULE);
const { performance } = require("node:perf_hooks");
const config = JSON.parse(process.argv[2]);
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const headersOf = (i) => ({ "x-ms-client-principal": (config.principals || [])[i] || config.principal });

/// Epoch milliseconds of `2025-01-26T10:00:01.234567Z`, keeping the microseconds.
function stampMs(timestamp) {
  const micros = /\.(\d{6})Z$/.exec(timestamp);
  const ms = Date.parse(timestamp);
  return micros ? ms - (ms % 1000) + Number(micros[1]) / 1000 : ms;
}

async function main() {
  let latencies = [];
  let received = 0;
  let duplicates = 0;
  let outOfOrder = 0;
  let subscribers = {};
  const report = () =>
    JSON.stringify({ event: "latencies", ms: latencies, received, duplicates, outOfOrder, expected: subscribers });
  const clients = config.clients || 1;
  const connections = [];
  for (let i = 0; i < clients; i++) {
    const headers = headersOf(i);
    // Kept across reports, so a log received again after its report still counts as a duplicate.
    const seen = new Set();
    const lastSequence = new Map();
    const connection = new signalR.HubConnectionBuilder()
      .withUrl(`${config.base}/api`, { headers })
      .configureLogging({ log: () => {} })
      .build();
    connection.on("executionLogs", (argument) => {
      const now = performance.timeOrigin + performance.now();
      for (const log of argument.logs) {
        if (seen.has(log.id)) {
          duplicates++;
          continue;
        }
        seen.add(log.id);
        received++;
        if (log.sequence <= (lastSequence.get(argument.executionId) || 0)) outOfOrder++;
        lastSequence.set(argument.executionId, log.sequence);
        latencies.push(now - stampMs(log.timestamp));
      }
    });
    await connection.start();
    connections.push(connection);
  }
  const subscribe = async (ids) => {
    for (let i = 0; i < clients && ids.length > 0; i++) {
      const executions = clients === 1 ? ids : [ids[i % ids.length]];
      for (const id of executions) {
        const response = await fetch(`${config.base}/api/executions/${id}/subscribe`, {
          method: "POST",
          headers: { ...headersOf(i), "content-type": "application/json" },
          body: JSON.stringify({ connectionId: connections[i].connectionId }),
        });
        if (response.status !== 200) throw new Error(`subscribe ${id}: ${response.status} ${await response.text()}`);
        subscribers[id] = (subscribers[id] || 0) + 1;
      }
    }
    print({ event: "ready" });
  };
  await subscribe(config.executions);

  // One command per line, each done before the next is read; the loop ends when stdin closes.
  for await (const line of readline.createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    const command = JSON.parse(line);
    if (command.subscribe) {
      await subscribe(command.subscribe);
    } else if (command.report) {
      const reported = report();
      latencies = [];
      received = duplicates = outOfOrder = 0;
      subscribers = {};
      await new Promise((resolve) => process.stdout.write(reported + "\n", resolve));
    } else {
      throw new Error(`unknown command: ${line}`);
    }
  }
  await Promise.all(connections.map((c) => c.stop()));
  // Exit only once the line is written: a pipe takes 64 KiB at once, and process.exit would drop
  // the rest of a long line still queued.
  process.stdout.write(report() + "\n", () => process.exit(0));
}

main().catch((e) => {
  print({ event: "error", error: String(e && e.stack || e) });
  process.stdout.write("", () => process.exit(1));
});
