// Drives the official @microsoft/signalr client against bifrost-workers for tests/e2e/signalr.rs.
//
// Usage: SIGNALR_MODULE=<node_modules/@microsoft/signalr> node client.cjs '<config JSON>'
// config: {base, logsPerExecution, clients: [{name, principal, org?, executions: [ids],
//          history?: bool, streamHistory?: bool, forbidden?: [ids], resume?: {execution, dropAfter},
//          borrow?: {client, executions: [ids], history?: bool}}]}
// borrow: after every client is connected, subscribe with another client's connectionId in the
// body (what an attacker would try); the answers are in subscribeStatus under "borrowed:…".
//
// Prints JSON lines on stdout: {"event":"ready"} once every client is connected and subscribed,
// {"event":"complete","client"} when a client holds every log of its executions, and, after
// stdin closes, {"event":"summary","client",...} with everything each client received, in
// arrival order, for the Rust test to judge. With streamHistory, each executionHistoryUpdate
// row is also printed as it arrives: {"event":"history","client","row"}.
// Errors: {"event":"error","client","error"}.
"use strict";

const signalR = require(process.env.SIGNALR_MODULE);
const config = JSON.parse(process.argv[2]);
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// Exit only once stdout is written: a pipe takes 64 KiB at once, and process.exit would drop the
// rest of the (large) summaries still queued. An empty write's callback runs after every earlier one.
const exitAfterOutput = (code) => process.stdout.write("", () => process.exit(code));

function headersOf(spec) {
  const headers = { "x-ms-client-principal": spec.principal };
  if (spec.org) headers["x-organization-id"] = spec.org;
  return headers;
}

async function connect(spec, record) {
  const connection = new signalR.HubConnectionBuilder()
    .withUrl(`${config.base}/api`, { headers: headersOf(spec) })
    .configureLogging({ log: () => {} })
    .build();
  // Client method names are case-insensitive; register the documented spelling.
  for (const target of ["executionLogs", "executionVariables", "executionState", "executionResult",
                        "executionUpdate", "executionHistoryUpdate"]) {
    connection.on(target, (argument) => record(target, argument));
  }
  await connection.start();
  return connection;
}

async function post(spec, path, body) {
  const response = await fetch(`${config.base}${path}`, {
    method: "POST",
    headers: { ...headersOf(spec), "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.text() };
}

async function subscribe(spec, connection, execution) {
  return post(spec, `/api/executions/${execution}/subscribe`, { connectionId: connection.connectionId });
}

/// Every log after `after`, following the API's paging header.
async function fetchLogsAfter(spec, execution, after) {
  const logs = [];
  for (;;) {
    const response = await fetch(
      `${config.base}/api/executions/${execution}/logs?afterSequence=${after}`,
      { headers: headersOf(spec) },
    );
    if (response.status !== 200) {
      throw new Error(`GET logs afterSequence=${after}: ${response.status} ${await response.text()}`);
    }
    const body = await response.json();
    const page = Array.isArray(body) ? body : body.logs;
    logs.push(...page);
    const next = response.headers.get("x-next-after-sequence");
    if (!next || page.length === 0) return logs;
    after = Number(next);
  }
}

class Client {
  constructor(spec) {
    this.spec = spec;
    this.logs = {};        // executionId -> [sequence, ...] in arrival order (live only)
    this.redacted = {};    // executionId -> [sequence, ...] of the {redacted: true} placeholders
    this.leaks = [];       // placeholders carrying a message or data, or admin-only lines whole
    this.resumed = {};     // executionId -> [sequence, ...] fetched through the API
    this.counts = {};      // target -> number of messages
    this.updates = {};     // executionId -> [status, ...]
    this.history = {};     // executionId -> [status, ...]
    this.historyRows = {}; // executionId -> [row, ...] as received
    this.subscribeStatus = {};
    this.disconnectedAt = null;
    this.done = false;
  }

  record(target, argument) {
    this.counts[target] = (this.counts[target] || 0) + 1;
    const id = argument.executionId;
    if (target === "executionLogs") {
      const list = (this.logs[id] = this.logs[id] || []);
      for (const log of argument.logs) {
        list.push(log.sequence);
        const adminOnly = ["debug", "traceback"].includes(String(log.level).toLowerCase());
        if (log.redacted === true) {
          (this.redacted[id] = this.redacted[id] || []).push(log.sequence);
          if ("message" in log || "data" in log) this.leaks.push(log);
        } else if (adminOnly) {
          this.wholeAdminOnly = (this.wholeAdminOnly || 0) + 1;
        }
      }
      this.onLogs(id);
    } else if (target === "executionUpdate") {
      (this.updates[id] = this.updates[id] || []).push(argument.status);
    } else if (target === "executionHistoryUpdate") {
      (this.history[id] = this.history[id] || []).push(argument.status);
      (this.historyRows[id] = this.historyRows[id] || []).push(argument);
      if (this.spec.streamHistory) print({ event: "history", client: this.spec.name, row: argument });
    }
    this.checkComplete();
  }

  onLogs(id) {
    const resume = this.spec.resume;
    if (!resume || id !== resume.execution || this.disconnectedAt !== null) return;
    const seen = this.logs[id];
    if (seen[seen.length - 1] >= resume.dropAfter) {
      this.disconnectedAt = seen[seen.length - 1];
      this.resumeLater().catch((e) => print({ event: "error", client: this.spec.name, error: String(e) }));
    }
  }

  /// Drop the connection, miss what is written meanwhile, reconnect, re-subscribe, then fetch
  /// the gap from the API (subscribe first, so nothing falls between the two).
  async resumeLater() {
    const id = this.spec.resume.execution;
    const last = this.disconnectedAt;
    const old = this.connection;
    this.connection = null;
    await old.stop();
    // Logs keep flowing while this client is away.
    await sleep(1000);
    this.connection = await connect(this.spec, (t, a) => this.record(t, a));
    const status = await subscribe(this.spec, this.connection, id);
    this.subscribeStatus[`resubscribe:${id}`] = status.status;
    const fetched = await fetchLogsAfter(this.spec, id, last);
    this.resumed[id] = fetched.map((log) => log.sequence);
    this.checkComplete();
  }

  /// Every expected log present (live, or fetched after a resume).
  checkComplete() {
    if (this.done) return;
    const expected = this.spec.executions.concat(this.spec.resume ? [this.spec.resume.execution] : []);
    if (expected.length === 0) return;
    const all = expected.every((id) => {
      const have = new Set((this.logs[id] || []).concat(this.resumed[id] || []));
      for (let s = 1; s <= config.logsPerExecution; s++) if (!have.has(s)) return false;
      return true;
    });
    if (all) {
      this.done = true;
      print({ event: "complete", client: this.spec.name });
    }
  }

  async start() {
    this.connection = await connect(this.spec, (t, a) => this.record(t, a));
    const targets = this.spec.executions.concat(this.spec.resume ? [this.spec.resume.execution] : []);
    for (const id of targets) {
      const status = await subscribe(this.spec, this.connection, id);
      this.subscribeStatus[id] = status.status;
      if (status.status !== 200) throw new Error(`subscribe ${id}: ${status.status} ${status.body}`);
    }
    for (const id of this.spec.forbidden || []) {
      this.subscribeStatus[id] = (await subscribe(this.spec, this.connection, id)).status;
    }
    if (this.spec.history) {
      const status = await post(this.spec, "/api/history/subscribe", { connectionId: this.connection.connectionId });
      this.subscribeStatus.history = status.status;
      if (status.status !== 200) throw new Error(`history subscribe: ${status.status} ${status.body}`);
    }
  }

  summary() {
    return {
      event: "summary", client: this.spec.name, logs: this.logs, resumed: this.resumed,
      redacted: this.redacted, leaks: this.leaks, wholeAdminOnly: this.wholeAdminOnly || 0,
      counts: this.counts, updates: this.updates, history: this.history, historyRows: this.historyRows,
      subscribeStatus: this.subscribeStatus, disconnectedAt: this.disconnectedAt,
    };
  }
}

async function main() {
  const clients = config.clients.map((spec) => new Client(spec));
  await Promise.all(clients.map((client) => client.start()));
  for (const client of clients) {
    const borrow = client.spec.borrow;
    if (!borrow) continue;
    const victim = clients.find((c) => c.spec.name === borrow.client);
    const body = { connectionId: victim.connection.connectionId };
    for (const id of borrow.executions) {
      const answer = await post(client.spec, `/api/executions/${id}/subscribe`, body);
      client.subscribeStatus[`borrowed:${id}`] = answer.status;
    }
    if (borrow.history) {
      const answer = await post(client.spec, "/api/history/subscribe", body);
      client.subscribeStatus["borrowed:history"] = answer.status;
    }
  }
  print({ event: "ready" });
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.on("end", resolve));
  for (const client of clients) print(client.summary());
  await Promise.all(clients.map((client) => client.connection && client.connection.stop()));
  exitAfterOutput(0);
}

main().catch((e) => {
  print({ event: "error", client: null, error: String(e && e.stack || e) });
  exitAfterOutput(1);
});
