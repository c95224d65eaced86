// The health strip: the store, the real-time transport (the server's and this page's own
// connection), how far the change-feed functions are behind, and dead-lettered batches once
// there are any. From GET /api/health every 5 s.

import { get } from "./api.js";

const $ = (id) => document.getElementById(id);

function pill(id, text, good) {
  const element = $(id);
  element.textContent = text;
  element.classList.toggle("bad", !good);
  element.classList.toggle("good", good);
}

export function startHealth(live) {
  let lastServer = null;
  const realtime = () => {
    const server = lastServer ? lastServer.signalR.status : "…";
    const page = live.state;
    pill("health-realtime", `real-time ${server} · page ${page}`, server !== "error" && page === "connected");
  };
  live.onState(realtime);
  const poll = async () => {
    try {
      const health = await get("/api/health");
      lastServer = health;
      pill("health-store", `store ${health.store.backend} ${health.store.status}`, health.store.status === "ok");
      const pumps = Object.values(health.changeFeed);
      const lag = Math.max(0, ...pumps.map((p) => p.lagSeconds || 0));
      const pending = pumps.reduce((sum, p) => sum + (p.pendingChanges || 0), 0);
      pill("health-lag", `pump lag ${lag} s · ${pending} pending`, lag < 10);
      const dead = pumps.reduce((sum, p) => sum + (p.deadLetteredBatches || 0), 0);
      const deadPill = $("health-deadletters");
      deadPill.hidden = dead === 0;
      deadPill.textContent = `${dead} dead-lettered batch${dead === 1 ? "" : "es"}`;
    } catch (error) {
      pill("health-store", `health: ${error.message}`, false);
    }
    realtime();
  };
  poll();
  setInterval(poll, 5000);
}
