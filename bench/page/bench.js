// The browser half of the latency benchmark, served by hms-server (--www bench/page,
// --pkg pkg). On load it measures the wasm start-up (fetch + compile + instantiate of
// /pkg/hms_client_bg.wasm, no cache), then exposes window.bench.trial(), which
// bench/latency.mjs calls through Playwright. Every figure of a trial is taken in this
// page, with performance.now(), beside the floor: a bare browser WebSocket to the same
// server in the same trial.
import init, { HmsClient } from "/pkg/hms_client.js";

const status = document.getElementById("status");

function uuid() {
  return crypto.randomUUID();
}

// --- The floor: a bare WebSocket speaking the same JSON-RPC, no SDK. ---
class RawSocket {
  constructor(url) {
    this.url = url;
    this.pending = new Map();
  }
  open(timeoutMs) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      const timer = setTimeout(() => reject(new Error("raw socket: open timed out")), timeoutMs);
      ws.onopen = () => {
        clearTimeout(timer);
        resolve();
      };
      ws.onerror = () => {
        clearTimeout(timer);
        reject(new Error("raw socket: error"));
      };
      ws.onmessage = (ev) => {
        const msg = JSON.parse(ev.data);
        const cb = msg.id != null && this.pending.get(msg.id);
        if (cb) {
          this.pending.delete(msg.id);
          cb(msg);
        }
      };
    });
  }
  // One request/answer round trip; resolves with the answer.
  request(method, params, timeoutMs) {
    const id = uuid();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`raw socket: ${method} timed out`));
      }, timeoutMs);
      this.pending.set(id, (msg) => {
        clearTimeout(timer);
        msg.error ? reject(new Error(`raw socket: ${method}: ${JSON.stringify(msg.error)}`)) : resolve(msg.result);
      });
      this.ws.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
    });
  }
  close() {
    this.ws?.close(1000);
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Chromium lets a new WebSocket to an endpoint (host:port) start its handshake only
// about 10 ms after the previous WebSocket to that endpoint connected (its endpoint
// lock's unlock delay). Measured here: three bare sockets opened back to back take
// 2.5, 11 and 11 ms. Each timed connect waits this long after the last one, so no
// figure includes another socket's throttle.
const ENDPOINT_SETTLE_MS = 40;

// Join phase marks: the SDK's own socket, seen through a WebSocket subclass that
// timestamps the constructor, open, the join frame and the three frames join waits for.
// Only the socket created while `marks.armed` is set is watched.
const marks = { armed: false, t0: 0, at: null };
{
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      if (!marks.armed) return;
      marks.armed = false;
      const at = (marks.at = { created: performance.now() - marks.t0 });
      this.marks = at;
      this.addEventListener("open", () => (at.open = performance.now() - marks.t0));
      this.addEventListener("message", (ev) => {
        const t = performance.now() - marks.t0;
        const m = /"method":"([a-z-]+)"/.exec(typeof ev.data === "string" ? ev.data.slice(0, 64) : "");
        const k = m ? m[1] : "answer";
        if (at[k] === undefined) at[k] = t;
      });
    }
    send(data) {
      if (this.marks && this.marks.joinSent === undefined) this.marks.joinSent = performance.now() - marks.t0;
      return super.send(data);
    }
  };
}

// A bare join: a socket that opens and sends join, done when the answer, the policy and
// the peer list are in (what HmsClient.join waits for). The floor for join.
function bareJoin(url, timeoutMs) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const timer = setTimeout(() => {
      ws.close();
      reject(new Error("bare join timed out"));
    }, timeoutMs);
    const seen = new Set();
    ws.onopen = () => ws.send(JSON.stringify({ jsonrpc: "2.0", id: uuid(), method: "join", params: { name: "bare", data: "" } }));
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.error) {
        clearTimeout(timer);
        ws.close();
        return reject(new Error(`bare join: ${JSON.stringify(msg.error)}`));
      }
      seen.add(msg.method ?? "answer");
      if (seen.has("answer") && seen.has("on-policy-change") && seen.has("peer-list")) {
        clearTimeout(timer);
        resolve(ws);
      }
    };
    ws.onerror = () => {
      clearTimeout(timer);
      reject(new Error("bare join: socket error"));
    };
  });
}

// Waits until cond() holds, polling each animation-free tick, up to timeoutMs.
function waitFor(cond, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    const deadline = performance.now() + timeoutMs;
    const check = () => {
      if (cond()) return resolve();
      if (performance.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(check, 1);
    };
    check();
  });
}

// One trial: a host and n guests (each a real HmsClient with its own socket) in a fresh
// room; the host ends it. Returns the timings in ms.
async function trial({ endpoint, hostToken, guestToken, bareToken, n, reason, pings = 5, timeoutMs = 20000 }) {
  const out = { n };
  const clients = [];
  let bare = null;
  const raw = new RawSocket(`${endpoint}?peer=${uuid()}&token=${encodeURIComponent(guestToken)}`);
  try {
    // Floor for join: bare socket open + one request round trip (join is the same: open + join).
    let t = performance.now();
    await raw.open(timeoutMs);
    await raw.request("ping", { timestamp: Date.now() }, timeoutMs);
    out.rawConnectRoundTripMs = performance.now() - t;

    // Second floor for join: a bare socket doing the same join into its own fresh room.
    if (bareToken) {
      await sleep(ENDPOINT_SETTLE_MS);
      t = performance.now();
      const ws = await bareJoin(`${endpoint}?peer=${uuid()}&token=${encodeURIComponent(bareToken)}`, timeoutMs);
      out.bareJoinMs = performance.now() - t;
      bare = ws;
    }

    const host = new HmsClient({ endpoint, requestTimeoutMs: timeoutMs });
    clients.push(host);
    await sleep(ENDPOINT_SETTLE_MS);
    t = performance.now();
    marks.t0 = t;
    marks.at = null;
    marks.armed = true;
    await host.join({ authToken: hostToken, userName: "host", metadata: "" });
    out.joinMs = performance.now() - t;
    marks.armed = false;
    // When each step of the join happened, from the join call (ms).
    out.joinMarks = marks.at ? { ...marks.at, resolved: out.joinMs } : null;

    const removed = [];
    const guests = [];
    for (let i = 0; i < n; i++) {
      const g = new HmsClient({ endpoint, requestTimeoutMs: timeoutMs });
      clients.push(g);
      g.onRemovedFromRoom((ev) => removed.push({ at: performance.now(), i, ev }));
      guests.push(g);
    }
    t = performance.now();
    await Promise.all(guests.map((g, i) => g.join({ authToken: guestToken, userName: `guest-${i}`, metadata: "" })));
    out.guestsJoinedMs = performance.now() - t;

    // Floor for endRoom: a bare request round trip on an open socket, right before it.
    out.rawRoundTripsMs = [];
    for (let i = 0; i < pings; i++) {
      t = performance.now();
      await raw.request("ping", { timestamp: Date.now() }, timeoutMs);
      out.rawRoundTripsMs.push(performance.now() - t);
    }

    // Floor for endRoom: the same end-room from the bare socket, in its own room (no
    // guests), with the same durable store write on the server.
    if (bare) {
      t = performance.now();
      await new Promise((resolve, reject) => {
        const id = uuid();
        const timer = setTimeout(() => reject(new Error("bare end-room timed out")), timeoutMs);
        bare.onmessage = (ev) => {
          const msg = JSON.parse(ev.data);
          if (msg.id !== id) return;
          clearTimeout(timer);
          msg.error ? reject(new Error(`bare end-room: ${JSON.stringify(msg.error)}`)) : resolve();
        };
        bare.send(JSON.stringify({ jsonrpc: "2.0", id, method: "end-room", params: { lock: false, reason } }));
      });
      out.bareEndRoomMs = performance.now() - t;
    }

    const t0 = performance.now();
    await host.endRoom(false, reason);
    out.endRoomMs = performance.now() - t0;
    await waitFor(() => removed.length >= n, timeoutMs, `${n} onRemovedFromRoom callbacks (got ${removed.length})`);
    // With no guests there is no last removal to time.
    out.lastRemovedMs = n > 0 ? Math.max(...removed.map((r) => r.at)) - t0 : null;
    out.removedCallbacks = removed.length;
    // Each guest exactly once, with the reason, the room-ended flag and the host as remover.
    const seen = new Set(removed.map((r) => r.i));
    out.problems = [];
    if (seen.size !== n || removed.length !== n) out.problems.push(`callbacks ${removed.length} from ${seen.size} distinct guests, expected ${n}`);
    for (const { i, ev } of removed) {
      if (ev.reason !== reason) out.problems.push(`guest ${i}: reason ${JSON.stringify(ev.reason)}`);
      if (ev.roomWasEnded !== true) out.problems.push(`guest ${i}: roomWasEnded ${ev.roomWasEnded}`);
      if (ev.peerWhoRemoved?.name !== "host") out.problems.push(`guest ${i}: peerWhoRemoved ${JSON.stringify(ev.peerWhoRemoved?.name)}`);
    }
    return out;
  } finally {
    raw.close();
    bare?.close(1000);
    for (const c of clients) {
      try {
        c.free();
      } catch {
        // Already freed or left: nothing to release.
      }
    }
  }
}

// Start-up: fetch + compile + instantiate, no HTTP cache, measured once per page load.
async function startup() {
  const url = "/pkg/hms_client_bg.wasm";
  const t0 = performance.now();
  const resp = await fetch(url, { cache: "no-store" });
  if (!resp.ok) throw new Error(`${url}: HTTP ${resp.status}`);
  let module;
  try {
    module = await WebAssembly.compileStreaming(resp.clone());
  } catch {
    // Served without application/wasm: compile from the bytes instead.
    module = await WebAssembly.compile(await resp.arrayBuffer());
  }
  const t1 = performance.now();
  await init({ module_or_path: module });
  const t2 = performance.now();
  return { fetchCompileMs: t1 - t0, instantiateMs: t2 - t1, totalMs: t2 - t0 };
}

// --- Fan-out against its floor (bench/fanout.mjs): one side per call, alternated by the
// driver. "sdk": a host HmsClient ends a room of n guest HmsClients; "bare": a bare host
// socket ends a room of n bare guest sockets doing onmessage + JSON.parse. Both time,
// from the end-room call, the host's answer (endRoom resolved / the bare answer) and
// the last guest hearing of the end (onRemovedFromRoom / the parsed notice).
async function fanout({ endpoint, hostToken, guestToken, n, side, reason, timeoutMs = 30000, profile = false }) {
  const url = (token) => `${endpoint}?peer=${uuid()}&token=${encodeURIComponent(token)}`;
  let heard = 0;
  let lastHeard = 0;
  let resolved = 0;
  const open = [];
  try {
    let end;
    if (side === "sdk") {
      const host = new HmsClient({ endpoint, requestTimeoutMs: timeoutMs });
      open.push(host);
      await host.join({ authToken: hostToken, userName: "host" });
      const guests = [];
      for (let i = 0; i < n; i++) {
        const g = new HmsClient({ endpoint, requestTimeoutMs: timeoutMs });
        open.push(g);
        g.onRemovedFromRoom(() => {
          heard += 1;
          lastHeard = performance.now();
        });
        guests.push(g.join({ authToken: guestToken, userName: `guest-${i}` }));
      }
      await Promise.all(guests);
      await waitFor(() => host.getPeers().length === n + 1, timeoutMs, "the host to see every guest");
      end = () => host.endRoom(false, reason).then(() => (resolved = performance.now()));
    } else {
      const host = await bareJoin(url(hostToken), timeoutMs);
      open.push(host);
      let joined = 0;
      const id = uuid();
      host.onmessage = (ev) => {
        const msg = JSON.parse(ev.data);
        if (msg.method === "on-peer-join") joined += 1;
        if (msg.id === id) resolved = performance.now();
      };
      const guests = await Promise.all(Array.from({ length: n }, () => bareJoin(url(guestToken), timeoutMs)));
      for (const g of guests) {
        open.push(g);
        g.onmessage = (ev) => {
          const msg = JSON.parse(ev.data);
          if (msg.method === "on-peer-leave-request") {
            heard += 1;
            lastHeard = performance.now();
          }
        };
      }
      await waitFor(() => joined === n, timeoutMs, "the bare host to see every guest");
      end = () => host.send(JSON.stringify({ jsonrpc: "2.0", id, method: "end-room", params: { lock: false, reason } }));
    }
    // Let the join traffic drain before timing.
    await sleep(200);
    // With `profile`, a CPU profile of the end only, handed to the driver by DevTools.
    if (profile) console.profile("fan-out");
    const t0 = performance.now();
    end();
    await waitFor(() => heard === n && resolved > 0, timeoutMs, `${n} ${side} guests to hear of the end (heard ${heard})`);
    if (profile) console.profileEnd("fan-out");
    return { side, n, answerMs: resolved - t0, lastHeardMs: lastHeard - t0 };
  } finally {
    for (const c of open) {
      try {
        if (c instanceof WebSocket) c.close(1000);
        else c.free();
      } catch {
        // Already closed or freed.
      }
    }
  }
}

window.bench = { trial, fanout };
startup().then(
  (s) => {
    window.benchStartup = s;
    status.textContent = "ready";
  },
  (e) => {
    window.benchError = String(e?.stack || e);
    status.textContent = `error: ${e}`;
  },
);
