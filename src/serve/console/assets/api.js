// The API as the signed-in browser calls it: the dev sign-in cookie (or the authentication in
// front of serve) identifies the caller; an administrator's chosen organization travels in
// X-Organization-Id. Errors are the API's own {"error": …} messages.

let organization = null;

/** The organization (uuid or "GLOBAL") an administrator reads; null for the caller's default. */
export function setOrganization(org) {
  organization = org || null;
}

export function organizationHeader() {
  return organization ? { "X-Organization-Id": organization } : {};
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function call(path, { method = "GET", query = {}, body } = {}) {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, String(value));
  }
  const headers = { ...organizationHeader() };
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, (json && json.error) || text || response.statusText);
  }
  return { body: json, headers: response.headers };
}

export async function get(path, query) {
  return (await call(path, { query })).body;
}

export async function post(path, body) {
  return (await call(path, { method: "POST", body })).body;
}

/** Every log line of an execution after `after`, following the API's paging header. */
export async function logsAfter(executionId, after) {
  const logs = [];
  // A page holds up to 5000 lines; 1000 pages is far beyond any execution, and bounds the loop.
  for (let page = 0; page < 1000; page++) {
    const { body, headers } = await call(`/api/executions/${encodeURIComponent(executionId)}/logs`, {
      query: { afterSequence: after },
    });
    logs.push(...body);
    const next = headers.get("x-next-after-sequence");
    if (!next || body.length === 0) break;
    after = Number(next);
  }
  return logs;
}
