// The executions list of the request's scope: filtered like the API (the same parameters), and
// kept current by `executionHistoryUpdate` rows, which carry the list row's own shape. Live rows
// that do not match the filters stay out, as the API would leave them out.

import { get } from "./api.js";
import { dateTime, duration, element, TERMINAL } from "./format.js";

const $ = (id) => document.getElementById(id);
const PAGE = 50;

/** Whether a row passes the list filters (the API's rules, applied to one live row). */
export function matches(row, filters) {
  if (filters.status && row.status !== filters.status) return false;
  if (filters.workflowName && row.workflowName !== filters.workflowName) return false;
  if (filters.executedBy && row.executedBy !== filters.executedBy) return false;
  const day = String(row.startedAt || "").slice(0, 10);
  if (filters.startDate && day < filters.startDate) return false;
  if (filters.endDate && day > filters.endDate) return false;
  return true;
}

export class ExecutionList {
  constructor(live, stats, { onFollow }) {
    this.live = live;
    this.stats = stats;
    this.onFollow = onFollow;
    this.rows = new Map();
    this.filters = {};
    this.continuation = null;
    this.selected = null;
    live.on("executionHistoryUpdate", (row) => this.onRow(row));
    live.onReconnected(() => this.load());
    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      const form = new FormData(event.target);
      this.filters = Object.fromEntries([...form.entries()].filter(([, v]) => v !== ""));
      this.load();
    });
    $("load-more").addEventListener("click", () => this.load(true));
    $("execution-rows").addEventListener("click", (event) => {
      const tr = event.target.closest("tr[data-id]");
      if (!tr) return;
      $("follow").checked = false;
      location.hash = `#/executions/${encodeURIComponent(tr.dataset.id)}`;
    });
  }

  get following() {
    return $("follow").checked;
  }

  async load(more = false) {
    const error = $("list-error");
    try {
      const page = await get("/api/executions", {
        ...this.filters,
        limit: PAGE,
        continuationToken: more ? this.continuation : undefined,
      });
      if (!more) this.rows.clear();
      for (const row of page.executions) this.rows.set(row.executionId, row);
      this.continuation = page.continuationToken;
      $("load-more").hidden = !page.hasMore;
      error.hidden = true;
      this.render();
      this.follow();
    } catch (failure) {
      error.textContent = failure.status === 401 ? "Signed out: pick an identity above." : failure.message;
      error.hidden = false;
    }
  }

  onRow(row) {
    this.stats.historyUpdates++;
    if (matches(row, this.filters)) this.rows.set(row.executionId, row);
    else this.rows.delete(row.executionId);
    this.render();
    this.follow();
  }

  select(id) {
    this.selected = id;
    for (const tr of $("execution-rows").children) tr.classList.toggle("selected", tr.dataset.id === id);
  }

  /** With "follow" on, the newest running execution is shown once the shown one has finished. */
  follow() {
    if (!this.following) return;
    const shown = this.selected && this.rows.get(this.selected);
    if (shown && !TERMINAL.has(shown.status)) return;
    const running = this.sorted().find((row) => row.status === "Running" || row.status === "Pending");
    if (running && running.executionId !== this.selected) this.onFollow(running.executionId);
  }

  sorted() {
    return [...this.rows.values()].sort((a, b) =>
      a.startedAt === b.startedAt ? (a.executionId < b.executionId ? 1 : -1) : a.startedAt < b.startedAt ? 1 : -1,
    );
  }

  render() {
    const body = $("execution-rows");
    const rows = this.sorted().map((row) => {
      const tr = document.createElement("tr");
      tr.dataset.id = row.executionId;
      tr.dataset.status = row.status;
      tr.dataset.org = row.orgId;
      if (row.executionId === this.selected) tr.className = "selected";
      const status = element("span", row.status, `status s-${row.status}`);
      const cells = [dateTime(row.startedAt), row.workflowName, null, duration(row.durationMs), row.executedByName];
      cells.forEach((text, index) => {
        const td = element("td", text);
        if (index === 2) td.append(status);
        tr.append(td);
      });
      return tr;
    });
    body.replaceChildren(...rows);
    $("list-empty").hidden = rows.length > 0;
  }
}
