// How values read on the page. Pure.

export function time(timestamp) {
  if (!timestamp) return "";
  const date = new Date(timestamp);
  if (Number.isNaN(date.getTime())) return String(timestamp);
  return date.toLocaleTimeString(undefined, { hour12: false }) + "." + String(date.getMilliseconds()).padStart(3, "0");
}

export function dateTime(timestamp) {
  if (!timestamp) return "—";
  const date = new Date(timestamp);
  if (Number.isNaN(date.getTime())) return String(timestamp);
  return date.toLocaleString(undefined, { hour12: false });
}

export function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60000);
  return `${minutes} min ${Math.round((ms % 60000) / 1000)} s`;
}

export function shortId(id) {
  return String(id).slice(0, 8);
}

export const TERMINAL = new Set(["Success", "Failed", "Timeout", "CompletedWithErrors", "Cancelled"]);

/** A CSS class for a log level, whatever its case (`INFO`, `info`, `Warning`). */
export function levelClass(level) {
  return "lvl-" + String(level || "info").toLowerCase().replace(/[^a-z]/g, "");
}

/** An element with text content only: nothing from the API is ever parsed as markup. */
export function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}
