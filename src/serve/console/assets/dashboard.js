// The dashboard: the last 30 days from /api/metrics/daily as charts (executions by status,
// average and p95 duration), today's figures refreshed as executions finish (and every 10 s,
// since the metrics function trails the status stream), and the legacy /api/metrics tiles.

import { get } from "./api.js";
import { stackedBars, lines } from "./charts.js";
import { duration, element, TERMINAL } from "./format.js";

const $ = (id) => document.getElementById(id);
const DAYS = 30;
const STATUS_SERIES = [
  { key: "successCount", label: "Success", className: "s-Success" },
  { key: "failedCount", label: "Failed", className: "s-Failed" },
  { key: "timeoutCount", label: "Timeout", className: "s-Timeout" },
  { key: "completedWithErrorsCount", label: "CompletedWithErrors", className: "s-CompletedWithErrors" },
  { key: "cancelledCount", label: "Cancelled", className: "s-Cancelled" },
];
const DURATION_SERIES = [
  { key: "avgDurationMs", label: "average", className: "avg" },
  { key: "p95DurationMs", label: "p95", className: "p95" },
];

export class Dashboard {
  constructor(live, session) {
    this.live = live;
    this.session = session;
    this.visible = false;
    this.days = [];
    live.on("executionHistoryUpdate", (row) => {
      if (this.visible && TERMINAL.has(row.status)) this.soon();
    });
    $("all-scopes").addEventListener("change", () => this.load());
    $("all-scopes-picker").hidden = !session.isAdmin;
  }

  get query() {
    return $("all-scopes").checked ? { scope: "all" } : {};
  }

  show() {
    this.visible = true;
    this.load();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.refreshToday(), 10000);
  }

  hide() {
    this.visible = false;
    clearInterval(this.timer);
  }

  /** Twice: once the status stream says so, and again when the metrics function has caught up. */
  soon() {
    clearTimeout(this.pending);
    this.pending = setTimeout(() => {
      this.refreshToday();
      setTimeout(() => this.refreshToday(), 3000);
    }, 1500);
  }

  async load() {
    try {
      const [daily, metrics] = await Promise.all([
        get("/api/metrics/daily", { days: DAYS, ...this.query }),
        get("/api/metrics", this.query),
      ]);
      this.days = daily.days;
      this.render();
      this.tiles(metrics);
      $("dashboard-error").hidden = true;
    } catch (error) {
      $("dashboard-error").textContent = error.status === 401 ? "Signed out: pick an identity above." : error.message;
      $("dashboard-error").hidden = false;
    }
  }

  async refreshToday() {
    if (!this.visible) return;
    try {
      const [today, metrics] = await Promise.all([
        get("/api/metrics/daily", { days: 1, ...this.query }),
        get("/api/metrics", this.query),
      ]);
      const point = today.days[0];
      const last = this.days[this.days.length - 1];
      if (!last || last.date !== point.date) return this.load();
      this.days[this.days.length - 1] = point;
      this.render();
      this.tiles(metrics);
    } catch (error) {
      console.warn("refreshing today's metrics failed", error);
    }
  }

  render() {
    const total = this.days.reduce((sum, day) => sum + day.totalExecutions, 0);
    const summary = $("dash-total");
    summary.dataset.total = total;
    summary.textContent = `${total.toLocaleString()} executions`;
    stackedBars($("chart-status"), this.days, STATUS_SERIES);
    // A day without executions has no duration (its average reads 0): leave a gap there.
    const durations = this.days.map((day) =>
      day.totalExecutions === 0 ? { date: day.date, avgDurationMs: null, p95DurationMs: null } : day,
    );
    lines($("chart-duration"), durations, DURATION_SERIES, "ms");
    $("chart-legend").replaceChildren(
      ...STATUS_SERIES.map((s) => element("span", s.label, `key ${s.className}`)),
      ...DURATION_SERIES.map((s) => element("span", `${s.label} duration`, `key ${s.className}`)),
    );
  }

  tiles(metrics) {
    const stats = metrics.executionStats;
    const tiles = [
      ["executions", stats.totalExecutions, "totalExecutions"],
      ["success rate", `${stats.successRate} %`, "successRate"],
      ["average duration", `${stats.avgDurationSeconds} s`, "avgDurationSeconds"],
      ["p50 / p95", `${duration(stats.p50DurationMs)} / ${duration(stats.p95DurationMs)}`, "percentiles"],
      ["failed", stats.failedCount, "failedCount"],
      ["running now", stats.runningCount, "runningCount"],
      ["pending now", stats.pendingCount, "pendingCount"],
      ["workflows", metrics.workflowCount, "workflowCount"],
    ];
    $("tiles").replaceChildren(
      ...tiles.map(([label, value, key]) => {
        const tile = element("div", null, "tile");
        tile.dataset.key = key;
        tile.append(element("span", value, "value"), element("span", label, "label"));
        return tile;
      }),
    );
    $("recent-failures").replaceChildren(
      ...metrics.recentFailures.map((failure) => {
        const item = element("li");
        const link = element("a", `${failure.workflowName} · ${failure.errorMessage || "failed"}`);
        link.href = `#/executions/${encodeURIComponent(failure.executionId)}`;
        item.append(link);
        return item;
      }),
    );
    if (metrics.recentFailures.length === 0) $("recent-failures").append(element("li", "none", "muted"));
  }
}
