// A tiny misbehaving room server for the SDK's browser tests: the faults the real server
// will not produce on demand. No dependencies (node's http + crypto; RFC 6455 framing of
// text frames only). Prints `listening on 127.0.0.1:PORT` first, like hms-server.
//
// ws://127.0.0.1:PORT/<mode>?peer=..&token=..  where <mode> is
//   silent  answers join (then sends on-policy-change and peer-list as a host) and then
//           never answers anything again            -> request timeouts (6008)
//   drop    like silent, but destroys the TCP connection (no close frame) as soon as a
//           request other than join/ping arrives    -> socket dropped mid-request (1003)
//   mute    answers join (+ policy, peer list), then sends nothing at all, not even ping
//           answers, and keeps the socket open      -> heartbeat timeout
//
// With `--server BIN --data-dir DIR` it also runs a real hms-server that tests may kill
// and restart (same port, same data dir, same HMS_SECRET from the environment):
//   GET /control/stop   SIGKILL the server (connections drop at once), answers when it's gone
//   GET /control/start  start it again if it is not running, answers once it listens
// and prints a second line `restartable server on 127.0.0.1:PORT`.
//
// http://127.0.0.1:PORT/token-fault/<status>/v2/token answers POST with <status> and the
// plain text `not json`: a token endpoint gone wrong (`getAuthTokenByRoomCode`'s
// `endpoint` option pointed at http://127.0.0.1:PORT/token-fault/<status>).
//
// The management REST API answers no CORS (it is for back ends), so the test page, served
// from another origin, reaches it through this server:
//   ANY /relay/127.0.0.1:PORT/<path>   forwards the method, Authorization, Content-Type
//                                      and body to http://127.0.0.1:PORT/<path> and
//                                      answers its status and body, with CORS open.
//
// With `--proxy-to HOST:PORT` it also runs a fault proxy in front of that (real) server
// and prints `proxy on 127.0.0.1:PORT`: it forwards every byte both ways, reading the
// WebSocket frames as they pass, and when the server answers a client's `end-room` it
// destroys that client's TCP connection instead of forwarding the answer (no close
// frame): the end is stored, the client never hears of it. Once per peer id, so the
// client's reconnect goes through untouched.
"use strict";
const http = require("http");
const crypto = require("crypto");

function frame(text) {
  const payload = Buffer.from(text, "utf8");
  let head;
  if (payload.length < 126) head = Buffer.from([0x81, payload.length]);
  else if (payload.length < 65536) { head = Buffer.alloc(4); head[0] = 0x81; head[1] = 126; head.writeUInt16BE(payload.length, 2); }
  else { head = Buffer.alloc(10); head[0] = 0x81; head[1] = 127; head.writeBigUInt64BE(BigInt(payload.length), 2); }
  return Buffer.concat([head, payload]);
}

// Yields {opcode, text} for each complete frame in buf; returns the unread rest.
function parse(buf, onFrame) {
  for (;;) {
    if (buf.length < 2) return buf;
    const opcode = buf[0] & 0x0f;
    const masked = (buf[1] & 0x80) !== 0;
    let len = buf[1] & 0x7f, off = 2;
    if (len === 126) { if (buf.length < 4) return buf; len = buf.readUInt16BE(2); off = 4; }
    else if (len === 127) { if (buf.length < 10) return buf; len = Number(buf.readBigUInt64BE(2)); off = 10; }
    const maskOff = off; if (masked) off += 4;
    if (buf.length < off + len) return buf;
    const data = Buffer.from(buf.subarray(off, off + len));
    if (masked) for (let i = 0; i < len; i++) data[i] ^= buf[maskOff + (i % 4)];
    onFrame(opcode, data.toString("utf8"));
    buf = buf.subarray(off + len);
  }
}

const host = { name: "host", priority: 100, permissions: { endRoom: true, removeOthers: true, mute: true, unmute: true, changeRole: true } };

const { spawn } = require("child_process");
const args = process.argv.slice(2);
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const serverBin = opt("--server"), dataDir = opt("--data-dir");
let child = null, childAddr = "127.0.0.1:0";

// Starts hms-server (if not running) and resolves with its address.
function startServer() {
  if (child) return Promise.resolve(childAddr);
  return new Promise((resolve, reject) => {
    const c = spawn(serverBin, ["serve", "--addr", childAddr, "--data-dir", dataDir], { stdio: ["ignore", "pipe", "inherit"] });
    child = c;
    let out = "";
    const timer = setTimeout(() => reject(new Error("hms-server did not start")), 15000);
    c.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (\S+)/);
      if (m) { clearTimeout(timer); childAddr = m[1]; resolve(childAddr); }
    });
    c.on("exit", () => { if (child === c) child = null; });
  });
}

function stopServer() {
  if (!child) return Promise.resolve();
  const c = child;
  return new Promise((resolve) => { c.on("exit", () => resolve()); c.kill("SIGKILL"); });
}

// Forwards a test page's REST call to a server on loopback (see the header); every wait
// has a deadline.
function relay(req, res, target) {
  const cors = { "Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "authorization, content-type", "Access-Control-Allow-Methods": "GET, POST" };
  if (req.method === "OPTIONS") { res.writeHead(204, cors); res.end(); return; }
  const m = /^\/relay\/127\.0\.0\.1:(\d+)(\/.*)$/.exec(target);
  if (!m) { res.writeHead(400, cors); res.end("relay: only /relay/127.0.0.1:PORT/<path>"); return; }
  const headers = {};
  for (const h of ["authorization", "content-type"]) if (req.headers[h]) headers[h] = req.headers[h];
  const out = http.request({ host: "127.0.0.1", port: Number(m[1]), path: m[2], method: req.method, headers, timeout: 10000 }, (answer) => {
    res.writeHead(answer.statusCode, { ...cors, "Content-Type": answer.headers["content-type"] || "text/plain" });
    answer.pipe(res);
  });
  out.on("timeout", () => out.destroy(new Error("timed out")));
  out.on("error", (e) => { if (!res.headersSent) res.writeHead(502, cors); res.end("relay: " + e.message); });
  req.pipe(out);
}

const server = http.createServer((req, res) => {
  let m;
  const reply = (code, text) => { res.writeHead(code, { "Access-Control-Allow-Origin": "*", "Content-Type": "text/plain" }); res.end(text); };
  if (req.url.startsWith("/relay/")) relay(req, res, req.url);
  else if (serverBin && req.url === "/control/stop") stopServer().then(() => reply(200, "stopped"));
  else if (serverBin && req.url === "/control/start") startServer().then((a) => reply(200, a), (e) => reply(500, String(e)));
  else if ((m = /^\/token-fault\/(\d{3})\/v2\/token$/.exec(req.url))) {
    // A token endpoint that answers with plain text (CORS preflight allowed).
    if (req.method === "OPTIONS") {
      res.writeHead(204, { "Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "POST", "Access-Control-Allow-Headers": "content-type" });
      res.end();
    } else reply(Number(m[1]), "not json");
  } else reply(404, "not found");
});
server.on("upgrade", (req, socket) => {
  const url = new URL(req.url, "http://x");
  const mode = url.pathname.replace(/^\//, "");
  const peer = url.searchParams.get("peer") || "p";
  const accept = crypto.createHash("sha1").update(req.headers["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
  socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n");
  const send = (obj) => socket.write(frame(JSON.stringify(obj)));
  let rest = Buffer.alloc(0);
  socket.on("error", () => {});
  socket.on("data", (chunk) => {
    rest = parse(Buffer.concat([rest, chunk]), (opcode, text) => {
      if (opcode === 8) { socket.end(); return; }
      if (opcode !== 1) return;
      let msg; try { msg = JSON.parse(text); } catch { return; }
      if (msg.method === "join") {
        send({ jsonrpc: "2.0", id: msg.id, result: {} });
        send({ method: "on-policy-change", params: { name: "host", known_roles: { host }, template_id: "mock" } });
        send({ method: "peer-list", params: { peers: { [peer]: { peer_id: peer, info: { name: msg.params.name, data: "", user_id: "u", type: "regular" }, role: "host", tracks: {}, groups: [] } }, room: { room_id: "mock", name: "mock", session_id: "s" } } });
      } else if (msg.method === "ping" && mode !== "mute") {
        send({ jsonrpc: "2.0", id: msg.id, result: { timestamp: msg.params.timestamp } });
      } else if (mode === "mute") {
        // say nothing
      } else if (mode === "drop" && msg.id) {
        socket.destroy();
      }
    });
  });
});
server.listen(0, "127.0.0.1", async () => {
  process.stdout.write("listening on 127.0.0.1:" + server.address().port + "\n");
  if (serverBin) {
    const addr = await startServer();
    process.stdout.write("restartable server on " + addr + "\n");
  }
});
// Splits `buf` into complete raw frames (Buffers, header included); returns the rest.
function rawFrames(buf, onFrame) {
  for (;;) {
    if (buf.length < 2) return buf;
    const masked = (buf[1] & 0x80) !== 0;
    let len = buf[1] & 0x7f, off = 2;
    if (len === 126) { if (buf.length < 4) return buf; len = buf.readUInt16BE(2); off = 4; }
    else if (len === 127) { if (buf.length < 10) return buf; len = Number(buf.readBigUInt64BE(2)); off = 10; }
    if (masked) off += 4;
    if (buf.length < off + len) return buf;
    onFrame(buf.subarray(0, off + len));
    buf = buf.subarray(off + len);
  }
}

const proxyTo = opt("--proxy-to");
if (proxyTo) {
  const net = require("net");
  const [toHost, toPort] = proxyTo.split(":");
  const cutPeers = new Set();
  const proxy = net.createServer((client) => {
    const upstream = net.connect(Number(toPort), toHost);
    let peer = null, upgraded = false, head = Buffer.alloc(0), fromServer = Buffer.alloc(0), fromClient = Buffer.alloc(0);
    const endRoomIds = new Set();
    const close = () => { client.destroy(); upstream.destroy(); };
    client.on("error", close); upstream.on("error", close);
    client.on("close", close); upstream.on("close", close);
    client.on("data", (chunk) => {
      upstream.write(chunk);
      if (peer === null) {
        // The upgrade request's head names the peer; frames follow its blank line.
        head = Buffer.concat([head, chunk]);
        const at = head.indexOf("\r\n\r\n");
        if (at < 0) return;
        const m = /GET (\S+) HTTP/.exec(head.subarray(0, at).toString("latin1"));
        peer = (m && new URL(m[1], "http://x").searchParams.get("peer")) || "";
        chunk = head.subarray(at + 4);
      }
      // Reads the client's frames for the ids of its end-room requests.
      fromClient = parse(Buffer.concat([fromClient, chunk]), (opcode, text) => {
        if (opcode !== 1) return;
        try { const msg = JSON.parse(text); if (msg.method === "end-room" && msg.id) endRoomIds.add(msg.id); } catch {}
      });
    });
    upstream.on("data", (chunk) => {
      if (!upgraded) {
        // The 101 response passes as it is; frames follow its blank line.
        const all = Buffer.concat([fromServer, chunk]);
        const at = all.indexOf("\r\n\r\n");
        if (at < 0) { fromServer = all; return; }
        upgraded = true;
        client.write(all.subarray(0, at + 4));
        chunk = all.subarray(at + 4);
        fromServer = Buffer.alloc(0);
      }
      fromServer = rawFrames(Buffer.concat([fromServer, chunk]), (f) => {
        if (client.destroyed) return;
        let cut = false;
        if ((f[0] & 0x0f) === 1 && endRoomIds.size && !cutPeers.has(peer)) {
          parse(Buffer.from(f), (opcode, text) => {
            try { const msg = JSON.parse(text); if (msg.id && endRoomIds.has(msg.id)) cut = true; } catch {}
          });
        }
        if (cut) {
          cutPeers.add(peer);
          process.stderr.write(`fault proxy: cut peer ${peer} at its end-room answer\n`);
          close();
        } else client.write(f);
      });
    });
  });
  proxy.listen(0, "127.0.0.1", () => process.stdout.write("proxy on 127.0.0.1:" + proxy.address().port + "\n"));
}

const quit = () => { if (child) child.kill("SIGKILL"); process.exit(0); };
process.on("SIGTERM", quit);
process.on("SIGINT", quit);
