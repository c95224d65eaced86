// One official SignalR client connection as a given caller, for tests/e2e/openapi.rs (a
// subscribe needs the caller's own live connection). Prints the connection id, then holds the
// connection until stdin closes.
// Usage: SIGNALR_MODULE=<node_modules/@microsoft/signalr> node connect.cjs BASE PRINCIPAL
"use strict";

const signalR = require(process.env.SIGNALR_MODULE);
const [base, principal] = process.argv.slice(2);

async function main() {
  const connection = new signalR.HubConnectionBuilder()
    .withUrl(`${base}/api`, { headers: { "x-ms-client-principal": principal } })
    .configureLogging({ log: () => {} })
    .build();
  await connection.start();
  process.stdout.write(connection.connectionId + "\n");
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.on("end", resolve));
  await connection.stop();
  process.exit(0);
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + "\n");
  process.exit(1);
});
