// The page's one SignalR connection (the official client, vendored as /console/signalr.min.js):
// negotiate through /api, reconnect on its own, join the groups the views ask for again after
// every reconnect (a new connection has none), then tell the views so they fetch what they
// missed. Counters in `stats` show what came live and what was fetched.

import { post } from "./api.js";

const TARGETS = [
  "executionLogs",
  "executionVariables",
  "executionState",
  "executionResult",
  "executionUpdate",
  "executionHistoryUpdate",
];
// Then every 10 s, for as long as the page is open.
const RECONNECT_DELAYS = [0, 1000, 2000, 5000, 10000];

export class Live {
  constructor(stats) {
    this.stats = stats;
    this.handlers = new Map(TARGETS.map((t) => [t, new Set()]));
    this.subscriptions = new Map(); // key -> subscribe path
    this.reconnectListeners = new Set();
    this.stateListeners = new Set();
    this.state = "connecting";
    this.connection = null;
    this.available = true;
  }

  on(target, handler) {
    this.handlers.get(target).add(handler);
    return () => this.handlers.get(target).delete(handler);
  }

  onReconnected(listener) {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  onState(listener) {
    this.stateListeners.add(listener);
  }

  setState(state) {
    this.state = state;
    for (const listener of this.stateListeners) listener(state);
  }

  build() {
    const connection = new signalR.HubConnectionBuilder()
      .withUrl("/api", { transport: signalR.HttpTransportType.WebSockets, withCredentials: true })
      .withAutomaticReconnect({
        nextRetryDelayInMilliseconds: (context) =>
          RECONNECT_DELAYS[Math.min(context.previousRetryCount, RECONNECT_DELAYS.length - 1)],
      })
      .configureLogging(signalR.LogLevel.Warning)
      .build();
    for (const target of TARGETS) {
      connection.on(target, (argument) => {
        for (const handler of this.handlers.get(target)) handler(argument);
      });
    }
    connection.onreconnecting(() => this.setState("reconnecting"));
    connection.onreconnected(() => this.afterReconnect());
    connection.onclose(() => {
      this.setState("disconnected");
      setTimeout(() => this.start(), 5000);
    });
    return connection;
  }

  /** Connects; false when the server has no real-time transport (the views then poll). */
  async start() {
    if (!this.connection) this.connection = this.build();
    this.setState("connecting");
    try {
      await this.connection.start();
    } catch (error) {
      if (String(error).includes("503") || String(error).includes("not configured")) {
        this.available = false;
        this.setState("unavailable");
        return false;
      }
      this.setState("disconnected");
      setTimeout(() => this.start(), 5000);
      return false;
    }
    this.setState("connected");
    await this.resubscribe();
    return true;
  }

  async afterReconnect() {
    this.stats.reconnects++;
    this.setState("connected");
    await this.resubscribe();
    for (const listener of this.reconnectListeners) listener();
  }

  async resubscribe() {
    for (const [key, path] of this.subscriptions) {
      try {
        await this.join(path);
      } catch (error) {
        console.warn(`re-subscribing ${key} failed`, error);
      }
    }
  }

  join(path) {
    return post(path, { connectionId: this.connection.connectionId });
  }

  /** Joins a group now (when connected) and after every reconnect. */
  async subscribe(key, path) {
    this.subscriptions.set(key, path);
    if (this.state !== "connected") return;
    try {
      await this.join(path);
    } catch (error) {
      this.subscriptions.delete(key);
      throw error;
    }
  }

  /** Stops re-joining a group (the API has no leave: its messages are ignored meanwhile). */
  forget(key) {
    this.subscriptions.delete(key);
  }

  /** The current connection's id (a new one after every reconnect). */
  get connectionId() {
    return this.connection ? this.connection.connectionId : null;
  }
}
