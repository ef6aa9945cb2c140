// Scenarios that use the SDK through its generated JS glue, as an app does: `new
// HmsClient(...)`, promises, callbacks, `instanceof`, property names. tests/browser.rs
// hands each one the exported classes (wasm-bindgen's glue for this test build) and the
// servers' URLs; a scenario throws on the first thing that is not as documented.

function check(cond, what) {
  if (!cond) throw new Error(`app check failed: ${what}`);
}

// Counts the frames of `method` the page's WebSockets send while `fn` runs.
async function countingFrames(method, fn) {
  const send = WebSocket.prototype.send;
  let n = 0;
  WebSocket.prototype.send = function (data) {
    if (typeof data === "string" && JSON.parse(data).method === method) n += 1;
    return send.call(this, data);
  };
  try {
    await fn();
  } finally {
    WebSocket.prototype.send = send;
  }
  return n;
}

function waitFor(cond, ms, what) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + ms;
    const tick = () => {
      if (cond()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 10);
    };
    tick();
  });
}

function checkError(e, code, name, action, isTerminal, HmsError) {
  check(e instanceof Error, `${name}: instanceof Error`);
  check(e instanceof HmsError, `${name}: instanceof HmsError`);
  check(e.code === code, `${name}: code ${e.code} === ${code}`);
  check(e.name === name, `name ${e.name} === ${name}`);
  check(e.action === action, `${name}: action ${e.action} === ${action}`);
  check(e.isTerminal === isTerminal, `${name}: isTerminal ${e.isTerminal} === ${isTerminal}`);
  check(typeof e.message === "string" && e.message.length > 0, `${name}: message`);
  check(typeof e.stack === "string", `${name}: stack`);
}

// Errors, options, shapes and connection states, seen from JS.
export async function apiFromJs(HmsClient, HmsError, { endpoint, hostToken, guestToken }) {
  let thrown;
  try {
    new HmsClient({ requestTimeoutMs: 5 });
  } catch (e) {
    thrown = e;
  }
  checkError(thrown, 6013, "ValidationFailed", "INIT", false, HmsError);

  const host = new HmsClient({ endpoint });
  check(host.getConnectionState() === "Disconnected", "a new client is Disconnected");
  const states = [];
  const off = host.onConnectionStateChange((s) => states.push(s));
  let rejected;
  await host.endRoom(false, "x").catch((e) => (rejected = e));
  checkError(rejected, 6000, "NotConnected", "END_ROOM", false, HmsError);
  await host.join({ authToken: hostToken, userName: "Hostess" }).catch((e) => {
    throw new Error(`host join: ${e.name} ${e.message}`);
  });
  check(JSON.stringify(states) === '["Connecting","Connected"]', `states while joining: ${JSON.stringify(states)}`);
  check(host.getConnectionState() === "Connected", "Connected after join");
  const me = host.getLocalPeer();
  check(me.isLocal === true && me.name === "Hostess" && me.role.permissions.endRoom === true, "getLocalPeer() shape");
  check(Object.keys(me.role.permissions).length === 10, "ten permissions");
  check(typeof host.getRoom().id === "string" && "sessionId" in host.getRoom(), "getRoom() shape");
  let again;
  await host.join({ authToken: hostToken, userName: "again" }).catch((e) => (again = e));
  checkError(again, 5001, "AlreadyJoined", "JOIN", false, HmsError);
  let bad;
  await host.join({ userName: "no token" }).catch((e) => (bad = e));
  checkError(bad, 6013, "ValidationFailed", "JOIN", false, HmsError);

  // A guest's endRoom is refused before any frame, with a 403 for END_ROOM.
  const guest = new HmsClient({ endpoint });
  await guest.join({ authToken: guestToken, userName: "Guido" });
  let denied;
  const frames = await countingFrames("end-room", () => guest.endRoom(true, "no").catch((e) => (denied = e)));
  checkError(denied, 403, "PermissionDenied", "END_ROOM", false, HmsError);
  check(frames === 0, `a refused endRoom sends nothing (sent ${frames})`);

  const removed = [];
  guest.onRemovedFromRoom((ev) => removed.push(ev));
  guest.onConnectionStateChange((s) => removed.push(s));
  off();
  host.onConnectionStateChange((s) => states.push(`after:${s}`));
  await host.leave();
  check(states.includes("after:Disconnecting") && states.at(-1) === "after:Disconnected", `leave states: ${JSON.stringify(states)}`);
  check(!states.includes("Disconnecting"), "an unsubscribed callback is not called");
  await guest.leave();
  host.free();
  guest.free();
  return "ok";
}

// endRoom called twice (a double click) gives the same promise and sends one frame;
// removePeer likewise per peer.
export async function callsTwice(HmsClient, { endpoint, hostToken, guestToken, otherToken }) {
  const host = new HmsClient({ endpoint });
  const guest = new HmsClient({ endpoint });
  const other = new HmsClient({ endpoint });
  await host.join({ authToken: hostToken, userName: "Hostess" });
  await guest.join({ authToken: guestToken, userName: "Guido" });
  await other.join({ authToken: otherToken, userName: "Olga" });
  const g = guest.getLocalPeer().peerId;
  const o = other.getLocalPeer().peerId;
  let p1, p2, p3;
  const removals = await countingFrames("peer-leave-request", async () => {
    p1 = host.removePeer(g, "first");
    p2 = host.removePeer(g, "second click");
    p3 = host.removePeer(o, "another peer");
    check(p1 === p2, "removePeer twice for one peer returns the same promise");
    check(p1 !== p3, "removePeer for another peer is another request");
    await Promise.all([p1, p3]);
  });
  check(removals === 2, `two peer-leave-request frames, not ${removals}`);
  // Settled: a new call is a new request (and the server says the peer is gone).
  const p4 = host.removePeer(g, "late");
  check(p4 !== p1, "a settled removePeer is not reused");
  await p4.then(
    () => check(false, "removing a removed peer must fail"),
    (e) => check(e.code === 404, `404 for a removed peer, got ${e.code}`),
  );

  const ends = await countingFrames("end-room", async () => {
    const a = host.endRoom(false, "first click");
    const b = host.endRoom(true, "second click");
    check(a === b, "endRoom twice returns the same promise");
    await a;
  });
  check(ends === 1, `one end-room frame, not ${ends}`);
  check(host.getConnectionState() === "Disconnected", "left after endRoom");
  host.free();
  guest.free();
  other.free();
  return "ok";
}

// The endRoom answer is lost (the fault proxy cuts the host's socket right after the
// server stored the end and answered): the SDK reconnects, learns the outcome and
// resolves; it never reports a failure it does not know.
export async function endRoomAnswerLost(HmsClient, { proxyEndpoint, endpoint, hostToken, guestToken }) {
  const host = new HmsClient({ endpoint: proxyEndpoint, requestTimeoutMs: 5000 });
  const guest = new HmsClient({ endpoint });
  await host.join({ authToken: hostToken, userName: "Hostess" });
  await guest.join({ authToken: guestToken, userName: "Guido" });
  const seen = { states: [], errors: [], removedHost: 0, reconnecting: 0, removedGuest: [] };
  host.onConnectionStateChange((s) => seen.states.push(s));
  host.onError((e) => seen.errors.push(e));
  host.onRemovedFromRoom(() => seen.removedHost++);
  host.onReconnecting(() => seen.reconnecting++);
  guest.onRemovedFromRoom((ev) => seen.removedGuest.push(ev));
  const t0 = Date.now();
  const first = host.endRoom(true, "answer lost");
  check(host.endRoom(false, "again") === first, "the same promise while it waits");
  await first.catch((e) => {
    throw new Error(`endRoom rejected although the room ended: ${e.name} ${e.code} ${e.message}`);
  });
  const took = Date.now() - t0;
  check(seen.reconnecting === 1, `it reconnected to learn the outcome (${seen.reconnecting})`);
  check(seen.errors.length === 0, `no onError: ${seen.errors.map((e) => e.name)}`);
  check(seen.removedHost === 0, "the caller gets no removed callback");
  check(host.getConnectionState() === "Disconnected", `host state ${host.getConnectionState()}`);
  check(seen.states.includes("Reconnecting") && seen.states.at(-1) === "Disconnected", `host states ${JSON.stringify(seen.states)}`);
  await waitFor(() => seen.removedGuest.length === 1, 5000, "the guest's removal");
  const ev = seen.removedGuest[0];
  check(ev.roomWasEnded === true && ev.reason === "answer lost" && ev.peerWhoRemoved?.name === "Hostess", `guest event ${JSON.stringify(ev)}`);
  await new Promise((r) => setTimeout(r, 200));
  check(seen.removedGuest.length === 1, "the guest is removed once");
  host.free();
  guest.free();
  return { took };
}
