// An execution's result, shown so that nothing in it can run: JSON and text as text, HTML in a
// frame sandboxed without `allow-scripts` (and the page's Content-Security-Policy, which the
// frame inherits, allows no inline script either). Large results are cut for display, with a
// link to the whole.

import { element } from "./format.js";

const MAX_TEXT_CHARS = 256 * 1024;
const MAX_FRAME_CHARS = 1024 * 1024;

function resultLink(executionId) {
  const link = element("a", "download the whole result");
  link.href = `/api/executions/${encodeURIComponent(executionId)}/result`;
  link.download = `result-${executionId}.json`;
  return link;
}

function textBlock(text, executionId) {
  const fragment = document.createDocumentFragment();
  const shown = text.length > MAX_TEXT_CHARS ? text.slice(0, MAX_TEXT_CHARS) : text;
  fragment.append(element("pre", shown, "result-text"));
  if (shown.length < text.length) {
    const note = element("p", `Showing the first ${shown.length.toLocaleString()} of ${text.length.toLocaleString()} characters; `, "muted");
    note.append(resultLink(executionId));
    fragment.append(note);
  }
  return fragment;
}

/** Renders `{result, resultType}` into `container`; returns a one-line description. */
export function renderResult(container, { result, resultType }, executionId) {
  container.replaceChildren();
  if (result === null || result === undefined) {
    container.append(element("p", "No result yet.", "muted"));
    return "";
  }
  if (resultType === "html" && typeof result === "string" && result.length <= MAX_FRAME_CHARS) {
    const frame = document.createElement("iframe");
    // No allow-scripts, no allow-same-origin: the markup renders and can do nothing else.
    frame.setAttribute("sandbox", "");
    frame.setAttribute("referrerpolicy", "no-referrer");
    frame.className = "result-frame";
    frame.title = "HTML result (sandboxed, scripts disabled)";
    frame.srcdoc = result;
    const source = document.createElement("details");
    source.append(element("summary", "HTML source"), textBlock(result, executionId));
    container.append(frame, source);
    return `html, ${result.length.toLocaleString()} characters, scripts disabled`;
  }
  const text = typeof result === "string" ? result : JSON.stringify(result, null, 2);
  container.append(textBlock(text, executionId));
  return `${resultType || "json"}, ${text.length.toLocaleString()} characters`;
}
