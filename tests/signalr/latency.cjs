// Write→receive latency probe for benches/signalr_latency.rs, with the official client.
// Usage: SIGNALR_MODULE=... node latency.cjs '{"base","principal","executions":[ids]}'
// Prints {"event":"ready"} once subscribed; after stdin closes, one line
// {"event":"latencies","ms":[...]} with, per received log, receive time minus its `timestamp`
// (the writer stamps it just before the store write), plus the sequences seen per execution.
"use strict";

const signalR = require(process.env.SIGNALR_MODULE);
const config = JSON.parse(process.argv[2]);
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const headers = { "x-ms-client-principal": config.principal };

async function main() {
  const latencies = [];
  const received = {};
  const connection = new signalR.HubConnectionBuilder()
    .withUrl(`${config.base}/api`, { headers })
    .configureLogging({ log: () => {} })
    .build();
  connection.on("executionLogs", (argument) => {
    const now = Date.now();
    received[argument.executionId] = (received[argument.executionId] || 0) + argument.logs.length;
    for (const log of argument.logs) latencies.push(now - Date.parse(log.timestamp));
  });
  await connection.start();
  for (const id of config.executions) {
    const response = await fetch(`${config.base}/api/executions/${id}/subscribe`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify({ connectionId: connection.connectionId }),
    });
    if (response.status !== 200) throw new Error(`subscribe ${id}: ${response.status} ${await response.text()}`);
  }
  print({ event: "ready" });
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.on("end", resolve));
  print({ event: "latencies", ms: latencies, received });
  await connection.stop();
  process.exit(0);
}

main().catch((e) => {
  print({ event: "error", error: String(e && e.stack || e) });
  process.exit(1);
});
