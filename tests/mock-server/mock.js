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

const server = http.createServer((req, res) => {
  const reply = (code, text) => { res.writeHead(code, { "Access-Control-Allow-Origin": "*", "Content-Type": "text/plain" }); res.end(text); };
  if (serverBin && req.url === "/control/stop") stopServer().then(() => reply(200, "stopped"));
  else if (serverBin && req.url === "/control/start") startServer().then((a) => reply(200, a), (e) => reply(500, String(e)));
  else reply(404, "not found");
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
const quit = () => { if (child) child.kill("SIGKILL"); process.exit(0); };
process.on("SIGTERM", quit);
process.on("SIGINT", quit);
