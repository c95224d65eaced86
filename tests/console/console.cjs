// Drives the console in headless Chromium (Debian's /usr/bin/chromium through playwright-core)
// for tests/e2e/console.rs, which starts `serve` and the simulators and judges what this reports.
//
// Usage: PLAYWRIGHT_MODULE=<node_modules/playwright-core> node console.cjs '<config JSON>'
// config: {base, artifacts, orgA, orgB, adminExecution, memberExecution, otherOrgExecution,
//          scriptExecution, jsonScriptExecution, logsPerExecution, dropAfter}, or
//         {mode: "demo", url, artifacts} for `serve --demo`.
//
// Prints JSON lines: {"event":"ready"} once the admin page follows its execution (the test then
// starts the simulators); {"event":"admin"|"member"|"script"|"dashboard", ...} with what the page
// showed; {"event":"error","error"} on a failure. Waits for a line on stdin before the
// dashboard phase (the test first lets the metrics settle). Every wait is bounded.
"use strict";

const { chromium } = require(process.env.PLAYWRIGHT_MODULE);
const fs = require("fs");
const path = require("path");
const readline = require("readline");

const config = JSON.parse(process.argv[2]);
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// Exit only once stdout is written: a pipe takes 64 KiB at once, and process.exit would drop the
// rest of a large phase result still queued. An empty write's callback runs after every earlier one.
const exitAfterOutput = (code) => process.stdout.write("", () => process.exit(code));
const lines = readline.createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once("line", resolve));

// Playwright adds --headless and a fresh --user-data-dir (a temporary profile) itself.
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A fresh profile per context: no cookie or storage carries over between identities. */
async function browserContext(browser) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  context.on("weberror", (error) => errors.push(String(error.error())));
  return { context, errors };
}

async function open(context, hash, organization) {
  const page = await context.newPage();
  if (organization) {
    await page.addInitScript((org) => localStorage.setItem("bifrost.organization", org), organization);
  }
  await page.goto(`${config.base}/${hash}`);
  await page.waitForSelector("body[data-ready=true]", { timeout: 20000 });
  return page;
}

/** The log list as the page shows it. */
function logLines(page) {
  return page.$$eval("#logs li", (items) =>
    items.map((li) => ({
      seq: Number(li.dataset.seq),
      redacted: li.dataset.redacted === "true",
      missing: li.classList.contains("missing"),
      source: li.dataset.source,
      level: (li.querySelector(".level") || {}).textContent || "",
      message: (li.querySelector(".message") || {}).textContent || "",
    })),
  );
}

async function waitComplete(page, execution, timeout) {
  await page.waitForFunction(
    (id) => {
      const list = document.getElementById("logs");
      return list.dataset.execution === id && list.dataset.complete === "true";
    },
    execution,
    { timeout, polling: 200 },
  );
}

async function screenshot(page, name) {
  const file = path.join(config.artifacts, name);
  await page.screenshot({ path: file, fullPage: false });
  return file;
}

/** Admin, org A: follows one execution live, loses its WebSocket mid-run, must miss nothing. */
async function adminPhase(browser) {
  const { context, errors } = await browserContext(browser);
  let blocked = false;
  const sockets = [];
  let routed = 0;
  await context.routeWebSocket(/\/client\/\?hub=/, (ws) => {
    routed++;
    if (blocked) {
      // The reconnect attempt fails while the "network" is down.
      ws.close({ code: 4000, reason: "dropped by the test" });
      return;
    }
    const server = ws.connectToServer();
    sockets.push({ ws, server });
  });
  const page = await open(context, `#/executions/${config.adminExecution}`, config.orgA);
  await page.waitForFunction(() => window.bifrostConsole.live.state === "connected", null, { timeout: 20000 });
  print({ event: "ready" });

  await page.waitForFunction(
    (n) => document.querySelectorAll("#logs li").length >= n,
    config.dropAfter,
    { timeout: 60000, polling: 50 },
  );
  const droppedAt = Math.max(...(await logLines(page)).map((l) => l.seq));
  blocked = true;
  for (const { ws, server } of sockets.splice(0)) {
    await ws.close({ code: 4000, reason: "dropped by the test" });
    await server.close({ code: 4000, reason: "dropped by the test" });
  }
  await sleep(1500);
  blocked = false;
  await page.waitForFunction(() => window.bifrostConsole.stats.reconnects >= 1, null, { timeout: 30000 });
  await waitComplete(page, config.adminExecution, 60000);
  const logs = await logLines(page);
  const stats = await page.evaluate(() => ({ ...window.bifrostConsole.stats }));
  const artifact = await screenshot(page, "execution-admin.png");
  await context.close();
  return { event: "admin", logs, droppedAt, stats, routed, errors, artifact };
}

/** A member of org A, signed in with the page's own switch: sees org A only, redacted lines. */
async function memberPhase(browser) {
  const { context, errors } = await browserContext(browser);
  const page = await open(context, "#/executions", null);
  await page.uncheck("#follow");
  // The switch posts the new identity and then reloads the page: wait for the reloaded document, not
  // the current one (which is already loaded and ready, and would be destroyed under the next call).
  const reloaded = page.waitForEvent("load", { timeout: 20000 });
  await page.selectOption("#identity-select", `member:${config.orgA}`);
  await reloaded;
  await page.waitForSelector("body[data-ready=true]", { timeout: 20000 });
  const identity = await page.$eval("#identity-select", (select) => select.value);
  await page.uncheck("#follow");
  const rows = () =>
    page.$$eval("#execution-rows tr", (trs) => trs.map((tr) => ({ id: tr.dataset.id, org: tr.dataset.org })));
  const listed = await rows();

  await page.evaluate((id) => (location.hash = `#/executions/${id}`), config.otherOrgExecution);
  await page.waitForFunction(() => document.getElementById("detail-title").textContent === "Not found", null, {
    timeout: 20000,
  });
  const otherOrg = {
    title: await page.$eval("#detail-title", (e) => e.textContent),
    error: await page.$eval("#detail-error", (e) => e.textContent),
  };

  await page.evaluate((id) => (location.hash = `#/executions/${id}`), config.memberExecution);
  let complete = true;
  try {
    await waitComplete(page, config.memberExecution, 60000);
  } catch {
    complete = false;
  }
  const logs = await logLines(page);
  const variablesShown = await page.$eval("#variables-section", (e) => !e.hidden);
  const artifact = await screenshot(page, "execution-member.png");
  // The list again, after every simulated execution (org B's too) has streamed its updates.
  await page.evaluate(() => (location.hash = "#/executions"));
  await sleep(500);
  const listedAfter = await rows();
  await context.close();
  return { event: "member", identity, listed, listedAfter, otherOrg, logs, complete, variablesShown, errors, artifact };
}

/** Results that carry scripts: none may run. */
async function scriptPhase(browser) {
  const { context, errors } = await browserContext(browser);
  const dialogs = [];
  const pwned = [];
  context.on("request", (request) => {
    if (request.url().includes("pwned")) pwned.push(request.url());
  });
  const page = await open(context, `#/executions/${config.scriptExecution}`, "GLOBAL");
  page.on("dialog", async (dialog) => {
    dialogs.push(dialog.message());
    await dialog.dismiss();
  });
  await page.waitForSelector("#result iframe", { timeout: 20000 });
  // Give any script or event handler in the frame ample time to have run.
  await sleep(2000);
  const frame = await page.$eval("#result iframe", (iframe) => ({
    sandbox: iframe.getAttribute("sandbox"),
    srcdocHasScript: iframe.srcdoc.includes("<script>"),
  }));
  const frameText = await page
    .frameLocator("#result iframe")
    .locator("body")
    .innerText({ timeout: 5000 })
    .catch((e) => `unreadable: ${e}`);
  const state = await page.evaluate(() => ({ pwned: window.__pwned === undefined ? null : window.__pwned, title: document.title }));
  const htmlArtifact = await screenshot(page, "result-html.png");

  await page.evaluate((id) => (location.hash = `#/executions/${id}`), config.jsonScriptExecution);
  await page.waitForFunction(() => document.querySelector("#result pre.result-text"), null, { timeout: 20000 });
  await sleep(1000);
  const jsonText = await page.$eval("#result pre.result-text", (pre) => pre.textContent);
  const scriptElements = await page.$$eval("#result script", (s) => s.length);
  const after = await page.evaluate(() => ({ pwned: window.__pwned === undefined ? null : window.__pwned, title: document.title }));
  await context.close();
  return { event: "script", dialogs, pwned, frame, frameText, state, jsonText, scriptElements, after, errors, artifact: htmlArtifact };
}

/** The dashboard next to the API it is drawn from. */
async function dashboardPhase(browser) {
  const { context, errors } = await browserContext(browser);
  const page = await open(context, "#/dashboard", config.orgA);
  const api = () =>
    page.evaluate(async (org) => {
      const response = await fetch("/api/metrics/daily?days=30", { headers: { "X-Organization-Id": org } });
      return response.json();
    }, config.orgA);
  const expected = await api();
  const expectedTotal = expected.days.reduce((sum, day) => sum + day.totalExecutions, 0);
  let settled = true;
  try {
    await page.waitForFunction(
      (total) => {
        const summary = document.getElementById("dash-total");
        return summary && Number(summary.dataset.total) === total;
      },
      expectedTotal,
      { timeout: 20000, polling: 250 },
    );
  } catch {
    settled = false;
  }
  const drawn = await page.$$eval("#chart-status g.day", (groups) =>
    groups.map((g) => ({
      date: g.dataset.date,
      totalExecutions: Number(g.dataset.total),
      successCount: Number(g.dataset.successCount),
      failedCount: Number(g.dataset.failedCount),
      timeoutCount: Number(g.dataset.timeoutCount),
      completedWithErrorsCount: Number(g.dataset.completedWithErrorsCount),
      cancelledCount: Number(g.dataset.cancelledCount),
    })),
  );
  const drawnTotal = await page.$eval("#dash-total", (e) => Number(e.dataset.total));
  const tiles = await page.$$eval("#tiles .tile", (tiles) =>
    Object.fromEntries(tiles.map((t) => [t.dataset.key, t.querySelector(".value").textContent])),
  );
  const durationPoints = await page.$$eval("#chart-duration circle", (c) => c.length);
  const after = await api();
  const artifact = await screenshot(page, "dashboard.png");
  await context.close();
  return { event: "dashboard", settled, expected, after, drawn, drawnTotal, tiles, durationPoints, errors, artifact };
}

/** `serve --demo` opened at the URL it announces: signed in, streaming, without a click. */
async function demoPhase(browser) {
  const { context, errors } = await browserContext(browser);
  const page = await context.newPage();
  await page.goto(config.url);
  await page.waitForSelector("body[data-ready=true]", { timeout: 20000 });
  await page.waitForFunction(() => document.querySelectorAll("#logs li").length >= 5, null, {
    timeout: 30000,
    polling: 100,
  });
  const first = (await logLines(page)).length;
  await sleep(1500);
  const later = await logLines(page);
  const result = {
    event: "demo",
    identity: await page.$eval("#identity-select", (select) => select.value),
    execution: await page.$eval("#logs", (list) => list.dataset.execution),
    hash: await page.evaluate(() => location.hash),
    rows: await page.$$eval("#execution-rows tr", (trs) => trs.length),
    first,
    later: later.length,
    sequences: later.map((l) => l.seq),
    live: await page.evaluate(() => window.bifrostConsole.stats.logsLive),
    errors,
    artifact: await screenshot(page, "demo.png"),
  };
  await context.close();
  return result;
}

async function main() {
  fs.mkdirSync(config.artifacts, { recursive: true });
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: FLAGS,
    headless: true,
    timeout: 30000,
  });
  try {
    if (config.mode === "demo") {
      print(await demoPhase(browser));
      return;
    }
    print(await adminPhase(browser));
    print(await memberPhase(browser));
    print(await scriptPhase(browser));
    await nextLine();
    print(await dashboardPhase(browser));
  } finally {
    await browser.close();
  }
}

main().then(
  () => exitAfterOutput(0),
  (e) => {
    print({ event: "error", error: String((e && e.stack) || e) });
    exitAfterOutput(1);
  },
);
