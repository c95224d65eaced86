// The execution view: status and facts, the logs tailing live in sequence order, the variables
// inspector (administrators) and the result. Order matters for losing nothing: join the group
// first, then fetch what is already stored, then keep merging live lines; any gap (a late
// message, a reconnect) is filled from `/logs?afterSequence=` where the page's contiguous prefix
// ends.

import { get, logsAfter } from "./api.js";
import { LogBuffer } from "./log-buffer.js";
import { renderResult } from "./result.js";
import { dateTime, duration, element, levelClass, time, TERMINAL } from "./format.js";

const $ = (id) => document.getElementById(id);
// Gap fills in a row without progress before the missing lines are taken as not coming.
const MAX_FILL_ROUNDS = 5;

export class ExecutionView {
  constructor(live, session, stats) {
    this.live = live;
    this.session = session;
    this.stats = stats;
    this.id = null;
    this.generation = 0;
    live.on("executionLogs", (a) => this.onLogs(a));
    live.on("executionUpdate", (a) => this.onUpdate(a));
    live.on("executionHistoryUpdate", (a) => this.onUpdate(a));
    live.on("executionVariables", (a) => this.onVariables(a));
    live.on("executionResult", (a) => a.executionId === this.id && this.loadResult());
    live.onReconnected(() => this.afterReconnect());
  }

  close() {
    if (this.id) this.live.forget(`execution:${this.id}`);
    this.id = null;
    this.generation++;
    clearInterval(this.poll);
    $("detail").hidden = true;
    $("detail-empty").hidden = false;
  }

  current(generation) {
    return generation === this.generation && this.id !== null;
  }

  async open(id) {
    if (id === this.id) return;
    this.close();
    const generation = this.generation;
    this.id = id;
    this.buffer = new LogBuffer();
    this.order = []; // sequences in the list, ascending
    this.status = null;
    this.variablesVersion = -1;
    this.resultShown = false;
    this.filling = false;
    this.fillAgain = false;
    this.counts = { live: 0, fetched: 0, reconnects: 0 };
    $("logs").replaceChildren();
    $("logs").dataset.execution = id;
    $("logs").dataset.complete = "false";
    $("variables-section").hidden = true;
    $("result-section").hidden = true;
    $("detail-error").hidden = true;
    $("detail-empty").hidden = true;
    $("detail").hidden = false;
    $("detail-id").textContent = id;
    $("detail-title").textContent = "…";
    this.summarize();

    const path = `/api/executions/${encodeURIComponent(id)}`;
    try {
      if (this.live.available) await this.live.subscribe(`execution:${id}`, `${path}/subscribe`);
      const detail = await get(path);
      if (!this.current(generation)) return;
      this.showFacts(detail);
      await this.fill(generation);
      if (!this.current(generation)) return;
      if (this.session.isAdmin) this.loadVariables(generation);
      if (detail.resultType || TERMINAL.has(detail.status)) this.loadResult();
    } catch (error) {
      if (!this.current(generation)) return;
      $("detail-title").textContent = error.status === 404 ? "Not found" : "Cannot load";
      $("detail-status").textContent = "";
      $("detail-error").textContent = error.message;
      $("detail-error").hidden = false;
      return;
    }
    if (!this.live.available) {
      // No real-time transport: poll the same routes instead.
      this.poll = setInterval(() => this.refresh(generation), 2000);
    }
  }

  async refresh(generation) {
    try {
      const detail = await get(`/api/executions/${encodeURIComponent(this.id)}`);
      if (!this.current(generation)) return;
      this.showFacts(detail);
      await this.fill(generation);
      if (TERMINAL.has(detail.status)) this.loadResult();
    } catch (error) {
      console.warn("refresh failed", error);
    }
  }

  showFacts(row) {
    if (row.workflowName !== undefined) $("detail-title").textContent = row.workflowName;
    if (row.executedByName !== undefined) $("detail-by").textContent = row.executedByName;
    if (row.startedAt !== undefined) $("detail-started").textContent = dateTime(row.startedAt);
    this.showStatus(row);
  }

  showStatus(row) {
    this.status = row.status;
    const badge = $("detail-status");
    badge.textContent = row.status;
    badge.className = `status s-${row.status}`;
    $("detail-completed").textContent = dateTime(row.completedAt);
    $("detail-duration").textContent = duration(row.durationMs);
    const error = $("detail-error");
    error.hidden = !row.errorMessage;
    error.textContent = row.errorMessage || "";
    this.summarize();
  }

  onUpdate(argument) {
    if (argument.executionId !== this.id) return;
    this.showStatus(argument);
    if (TERMINAL.has(argument.status)) {
      // The last lines may still be in flight; a final fill settles the list.
      this.fill(this.generation);
      this.loadResult();
    }
  }

  onLogs(argument) {
    if (argument.executionId !== this.id) return;
    this.stats.logsLive += argument.logs.length;
    this.counts.live += argument.logs.length;
    this.merge(argument.logs, "live");
    if (this.buffer.hasGap()) this.fill(this.generation);
  }

  async afterReconnect() {
    if (!this.id) return;
    this.counts.reconnects++;
    const generation = this.generation;
    try {
      const detail = await get(`/api/executions/${encodeURIComponent(this.id)}`);
      if (this.current(generation)) this.showFacts(detail);
    } catch (error) {
      console.warn("reloading the execution after a reconnect failed", error);
    }
    await this.fill(generation);
  }

  /** Fetches every line after the contiguous prefix; one fill at a time, rerun when asked. */
  async fill(generation) {
    if (this.filling) {
      this.fillAgain = true;
      return;
    }
    this.filling = true;
    try {
      for (let round = 0; round < MAX_FILL_ROUNDS; round++) {
        this.fillAgain = false;
        const from = this.buffer.upTo;
        const lines = await logsAfter(this.id, from);
        if (!this.current(generation)) return;
        this.stats.logsFetched += lines.length;
        this.counts.fetched += lines.length;
        if (from > 0) this.stats.gapFills++;
        this.merge(lines, "fetched");
        const last = lines.length ? Number(lines[lines.length - 1].sequence) : from;
        for (const sequence of this.buffer.markHolesUpTo(last)) this.insert(sequence, null);
        if (!this.fillAgain && !this.buffer.hasGap()) break;
      }
    } catch (error) {
      console.warn("fetching logs failed", error);
    } finally {
      this.filling = false;
      this.summarize();
    }
  }

  /** `source` (live or fetched) is kept on each line's element, for the curious and for tests. */
  merge(lines, source) {
    for (const line of this.buffer.add(lines)) this.insert(Number(line.sequence), line, source);
    this.summarize();
  }

  /** Puts a line (or, for `null`, a line the server did not return) at its sequence's place. */
  insert(sequence, line, source) {
    const list = $("logs");
    const item = line ? this.logItem(line) : this.missingItem(sequence);
    item.dataset.source = source || "fetched";
    let low = 0;
    let high = this.order.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (this.order[mid] < sequence) low = mid + 1;
      else high = mid;
    }
    const follow = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
    if (this.order[low] === sequence) {
      list.children[low].replaceWith(item);
    } else {
      this.order.splice(low, 0, sequence);
      list.insertBefore(item, list.children[low] || null);
    }
    if (follow) list.scrollTop = list.scrollHeight;
  }

  logItem(line) {
    const item = element("li", null, `log ${levelClass(line.level)}`);
    item.dataset.seq = line.sequence;
    item.append(element("span", `#${line.sequence}`, "seq"), element("span", time(line.timestamp), "ts"));
    item.append(element("span", String(line.level || "").toUpperCase(), "level"));
    if (line.redacted) {
      item.classList.add("redacted");
      item.dataset.redacted = "true";
      item.append(element("span", "redacted: this line is visible to platform administrators only", "message"));
      return item;
    }
    item.append(element("span", line.message, "message"));
    if (line.truncated) {
      item.dataset.truncated = "true";
      item.append(element("span", " (cut for the live stream; reload for the whole line)", "muted"));
    }
    if (line.data !== null && line.data !== undefined) {
      item.append(element("code", JSON.stringify(line.data), "data"));
    }
    return item;
  }

  missingItem(sequence) {
    const item = element("li", null, "log missing");
    item.dataset.seq = sequence;
    item.append(element("span", `#${sequence}`, "seq"), element("span", "not returned by the server", "message"));
    return item;
  }

  summarize() {
    if (!this.buffer) return;
    const complete = TERMINAL.has(this.status) && !this.buffer.hasGap() && !this.filling;
    const list = $("logs");
    list.dataset.complete = String(complete);
    list.dataset.upTo = String(this.buffer.upTo);
    $("log-summary").textContent =
      `${this.buffer.size} lines` +
      (complete ? " · complete" : this.buffer.hasGap() ? " · filling a gap…" : "") +
      ` · ${this.counts.live} live · ${this.counts.fetched} fetched` +
      (this.counts.reconnects ? ` · ${this.counts.reconnects} reconnects` : "");
  }

  async loadVariables(generation) {
    try {
      const variables = await get(`/api/executions/${encodeURIComponent(this.id)}/variables`);
      const empty = variables && typeof variables === "object" && Object.keys(variables).length === 0;
      if (this.current(generation) && this.variablesVersion < 0 && !empty) this.showVariables(variables, null);
    } catch (error) {
      console.warn("variables", error);
    }
  }

  onVariables(argument) {
    if (argument.executionId !== this.id || !this.session.isAdmin) return;
    if (argument.version < this.variablesVersion) return;
    this.variablesVersion = argument.version;
    this.showVariables(argument.variables, argument.version);
  }

  showVariables(variables, version) {
    $("variables-section").hidden = false;
    $("variables-version").textContent = version === null ? "" : `version ${version}, live`;
    $("variables").textContent = JSON.stringify(variables, null, 2);
  }

  async loadResult() {
    if (!this.id) return;
    const generation = this.generation;
    try {
      const result = await get(`/api/executions/${encodeURIComponent(this.id)}/result`);
      if (!this.current(generation) || result.result === null) return;
      $("result-section").hidden = false;
      $("result-meta").textContent = renderResult($("result"), result, this.id);
      this.resultShown = true;
    } catch (error) {
      console.warn("result", error);
    }
  }
}
