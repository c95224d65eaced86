// Who the page is: the dev sign-in identity (serve --auth dev) with its switch, or whoever the
// authentication in front of serve says; and, for administrators, which organization to read.

import { get, post, setOrganization } from "./api.js";
import { element } from "./format.js";

const $ = (id) => document.getElementById(id);
const ORGANIZATION_KEY = "bifrost.organization";

export async function loadSession() {
  const session = await get("/console/session");
  const identity = session.identity;
  let isAdmin = identity ? identity.kind === "admin" : false;
  if (!session.devSignIn) {
    // Behind real authentication: an administrator may read every scope, a member may not.
    try {
      await get("/api/metrics", { scope: "all" });
      isAdmin = true;
    } catch {
      isAdmin = false;
    }
  }
  const organization = isAdmin ? localStorage.getItem(ORGANIZATION_KEY) || "GLOBAL" : null;
  setOrganization(organization);
  const state = { ...session, isAdmin, organization };
  renderIdentity(state);
  renderScope(state);
  return state;
}

function option(value, text, selected) {
  const node = element("option", text);
  node.value = value;
  node.selected = selected;
  return node;
}

function renderIdentity(session) {
  if (!session.devSignIn) {
    $("identity-fixed").hidden = false;
    $("identity-fixed").textContent = session.isAdmin ? "platform admin (your sign-in)" : "signed in by your proxy";
    return;
  }
  const identity = session.identity;
  const current = identity.kind === "member" ? `member:${identity.org}` : identity.kind;
  const orgs = new Set(session.organizations);
  if (identity.kind === "member") orgs.add(identity.org);
  const select = $("identity-select");
  select.replaceChildren(
    option("admin", "Platform admin (dev)", current === "admin"),
    ...[...orgs].sort().map((org) => option(`member:${org}`, `Member of ${org} (dev)`, current === `member:${org}`)),
    option("member:?", "Member of another organization…", false),
    option("none", "Signed out", current === "none"),
  );
  $("identity-picker").hidden = false;
  select.addEventListener("change", async () => {
    let [kind, org] = select.value.split(":");
    if (org === "?") {
      org = (prompt("Organization id (uuid)") || "").trim();
      if (!org) {
        select.value = current;
        return;
      }
    }
    try {
      await post("/console/session", kind === "member" ? { identity: kind, org } : { identity: kind });
      location.reload();
    } catch (error) {
      alert(error.message);
      select.value = current;
    }
  });
}

function renderScope(session) {
  if (!session.isAdmin) return;
  const select = $("scope-select");
  const orgs = new Set(session.organizations);
  if (session.organization !== "GLOBAL") orgs.add(session.organization);
  select.replaceChildren(
    option("GLOBAL", "GLOBAL", session.organization === "GLOBAL"),
    ...[...orgs].sort().map((org) => option(org, org, session.organization === org)),
    option("?", "another organization…", false),
  );
  $("scope-picker").hidden = false;
  select.addEventListener("change", () => {
    let org = select.value;
    if (org === "?") org = (prompt("Organization id (uuid)") || "").trim();
    if (!org) {
      select.value = session.organization;
      return;
    }
    localStorage.setItem(ORGANIZATION_KEY, org);
    location.reload();
  });
}
