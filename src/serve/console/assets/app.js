// The console: who is signed in, one live connection, and three views (the executions list with
// the execution view beside it, and the dashboard) switched by the URL's hash:
// #/executions, #/executions/{id}, #/dashboard.

import { loadSession } from "./session.js";
import { Live } from "./live.js";
import { startHealth } from "./health.js";
import { ExecutionList } from "./executions.js";
import { ExecutionView } from "./execution.js";
import { Dashboard } from "./dashboard.js";

const $ = (id) => document.getElementById(id);

// What arrived how; the log summary shows it, and tests read it.
const stats = {
  logsLive: 0,
  logsFetched: 0,
  gapFills: 0,
  reconnects: 0,
  historyUpdates: 0,
};

async function main() {
  const session = await loadSession();
  const live = new Live(stats);
  const view = new ExecutionView(live, session, stats);
  let followed = null;
  const list = new ExecutionList(live, stats, {
    onFollow: (id) => {
      // Only while the executions view is showing: following never leaves the dashboard.
      if (location.hash.startsWith("#/dashboard")) return;
      followed = id;
      location.hash = `#/executions/${encodeURIComponent(id)}`;
    },
  });
  const dashboard = new Dashboard(live, session);
  window.bifrostConsole = { stats, live, session };
  startHealth(live);

  const route = () => {
    const hash = location.hash || "#/executions";
    const onDashboard = hash.startsWith("#/dashboard");
    $("view-dashboard").hidden = !onDashboard;
    $("view-executions").hidden = onDashboard;
    $("nav-dashboard").classList.toggle("active", onDashboard);
    $("nav-executions").classList.toggle("active", !onDashboard);
    if (onDashboard) {
      dashboard.show();
      return;
    }
    dashboard.hide();
    const match = hash.match(/^#\/executions\/(.+)$/);
    const id = match ? decodeURIComponent(match[1]) : null;
    // An execution opened by hand (a click, a link) stays open: following stops.
    if (id && id !== followed) $("follow").checked = false;
    list.select(id);
    if (id) view.open(id);
    else view.close();
  };
  window.addEventListener("hashchange", route);

  if (session.identity && session.identity.kind === "none") {
    $("list-error").textContent = "Signed out: pick an identity above.";
    $("list-error").hidden = false;
  }
  await live.start();
  if (live.available) {
    try {
      // Joined now, or as soon as the connection is up, and after every reconnect.
      await live.subscribe("history", "/api/history/subscribe");
    } catch (error) {
      console.warn("following the list failed", error);
    }
  } else {
    // No real-time transport on this server: poll the list instead.
    setInterval(() => list.load(), 5000);
  }
  // The URL's view first: an execution named there is opened, not replaced by "follow".
  route();
  await list.load();
  document.body.dataset.ready = "true";
}

main().catch((error) => {
  const message = document.createElement("p");
  message.className = "error";
  message.textContent = `The console could not start: ${error.message || error}`;
  document.body.prepend(message);
});
