// Joins the figures of one bench.sh run (bench/results/<run>/*.json) into one table:
// metric | median | spread | comparison (peer or floor) | ratio.
// Usage: node bench/report.mjs DIR
import { readFileSync, existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node bench/report.mjs DIR");
  process.exit(2);
}
const read = (f) => (existsSync(join(dir, f)) ? JSON.parse(readFileSync(join(dir, f), "utf8")) : null);
const rows = [];
const ms = (x) => `${x.toFixed(2)} ms`;
const kb = (b) => `${(b / 1024).toFixed(1)} KiB`;

const size = read("size.json");
if (size) {
  const ours = size.rows.find((r) => r.name === "hms-client pkg/");
  const bundled = size.rows.find((r) => r.name === "hms-client pkg/ bundled");
  for (const peer of size.rows.filter((r) => !r.name.startsWith("hms-client pkg/"))) {
    if (!ours || peer.gzip == null) {
      rows.push([`payload gzip vs ${peer.name}`, ours ? kb(ours.gzip) : "-", "- (deterministic)", `${peer.name}: ${peer.note}`, "-"]);
      continue;
    }
    rows.push([`payload gzip, pkg/ as shipped (.wasm + JS glue)`, kb(ours.gzip), "- (deterministic)", `${peer.name} ${kb(peer.gzip)}`, (ours.gzip / peer.gzip).toFixed(3)]);
    if (bundled) {
      rows.push([`payload gzip, pkg/ bundled+minified by esbuild like the peer`, kb(bundled.gzip), "- (deterministic)", `${peer.name} ${kb(peer.gzip)}`, (bundled.gzip / peer.gzip).toFixed(3)]);
    }
  }
}

const lat = read("latency.json");
if (lat) {
  const s = lat.startup.totalMs;
  rows.push(["wasm fetch+compile+instantiate", ms(s.median), `p10 ${ms(s.p10)} / p90 ${ms(s.p90)} (n=${s.n})`, "-", "-"]);
  for (const [n, r] of Object.entries(lat.trials)) {
    const spread = (m) => `p10 ${ms(m.p10)} / p90 ${ms(m.p90)} (n=${m.n})`;
    rows.push([`join (host into an empty room; trials with ${n} guests)`, ms(r.joinMs.median), spread(r.joinMs), `bare WS open + 1 round trip ${ms(r.rawConnectRoundTripMs.median)}`, (r.joinMs.median / r.rawConnectRoundTripMs.median).toFixed(2)]);
    rows.push([`endRoom resolve, ${n} guests in the room (and page)`, ms(r.endRoomMs.median), spread(r.endRoomMs), `bare WS round trip ${ms(r.rawRoundTripMs.median)}`, (r.endRoomMs.median / r.rawRoundTripMs.median).toFixed(2)]);
    if (r.lastRemovedMs.n) {
      rows.push([`last of ${n} guests' onRemovedFromRoom (from endRoom call)`, ms(r.lastRemovedMs.median), spread(r.lastRemovedMs), `bare WS round trip ${ms(r.rawRoundTripMs.median)}`, (r.lastRemovedMs.median / r.rawRoundTripMs.median).toFixed(2)]);
    }
  }
}

// Load runs: load-<name>.json, written by hms-loadtest --json. A distributed run
// (nodes > 1) is put beside the single node's run of the same size from the same
// bench.sh run.
const loadRuns = readdirSync(dir).filter((f) => /^load-.*\.json$/.test(f)).sort().map((f) => read(f));
const single = (l) => loadRuns.find((o) => (o.nodes ?? 1) === 1 && o.peers === l.peers && o.rooms === l.rooms);
for (const l of loadRuns) {
  const nodes = l.nodes ?? 1;
  const label = `${l.peers} peers / ${l.rooms} room${l.rooms > 1 ? "s" : ""}${nodes > 1 ? ` / ${nodes} nodes over Redis` : ""}`;
  const q = (m) => `p90 ${ms(m.p90)} / p99 ${ms(m.p99)} / max ${ms(m.max)}`;
  const verdict = l.failures === 0 ? "verified" : `${l.failures} FAILURES`;
  const one = nodes > 1 ? single(l) : null;
  // [comparison, ratio] against the single node, for a figure read by `get`.
  const vs = (get, fmt) => (one ? [`1 node ${fmt(get(one))}`, (get(l) / get(one)).toFixed(2)] : ["-", "-"]);
  rows.push([`load ${label}: peers held (${verdict})`, `${l.held}`, "-", "-", "-"]);
  rows.push([`load ${label}: join latency (connect+join)`, ms(l.join_ms.p50), q(l.join_ms), ...vs((x) => x.join_ms.p50, ms)]);
  rows.push([`load ${label}: joins/s`, `${Math.round(l.joins_per_s)}`, `all in ${l.join_span_s.toFixed(2)} s`, ...vs((x) => x.joins_per_s, (v) => `${Math.round(v)}`)]);
  rows.push([`load ${label}: end-room -> each peer's push (client-side fan-out)`, ms(l.fan_out_ms.p50), q(l.fan_out_ms), ...vs((x) => x.fan_out_ms.p50, ms)]);
  rows.push([`load ${label}: end-room sent -> {} answer (server-side fan-out: answered once every notice was written)`, ms(l.end_room_answer_ms.p50), q(l.end_room_answer_ms), ...vs((x) => x.end_room_answer_ms.p50, ms)]);
  rows.push([`load ${label}: end-room -> last peer of a room`, ms(l.fan_out_last_ms.p50), q(l.fan_out_last_ms) + ` (n=${l.fan_out_last_ms.n} rooms)`, ...vs((x) => x.fan_out_last_ms.p50, ms)]);
  if (l.server_fan_out_last_ms && l.server_fan_out_last_ms.n) {
    const both = one && one.server_fan_out_last_ms && one.server_fan_out_last_ms.n;
    rows.push([`load ${label}: server: notices queued -> last written${nodes > 1 ? " (owner: until each edge acknowledged)" : ""}`, ms(l.server_fan_out_last_ms.p50), q(l.server_fan_out_last_ms) + ` (n=${l.server_fan_out_last_ms.n} rooms)`, ...(both ? vs((x) => x.server_fan_out_last_ms.p50, ms) : ["-", "-"])]);
  }
  if (l.server_cpu_join_ms != null && l.server_cpu_end_ms != null) {
    const cpu = (x) => `${Math.round(x.server_cpu_join_ms)} / ${Math.round(x.server_cpu_end_ms)} ms`;
    const cpuVs = one && one.server_cpu_join_ms != null ? [`1 node ${cpu(one)}`, (l.server_cpu_join_ms / one.server_cpu_join_ms).toFixed(2)] : ["-", "-"];
    rows.push([`load ${label}: server CPU time (user+system${nodes > 1 ? ", all nodes" : ""}), joining / ending`, cpu(l), "from /proc/<pid>/stat, 10 ms ticks", ...cpuVs]);
  }
  if (l.page_read) {
    rows.push([`load ${label}: paged read of a room's peer list`, ms(l.page_read.ms), `${l.page_read.peers} peers in ${l.page_read.pages} pages`, "-", "-"]);
  }
  if (l.rss_per_peer_bytes != null) {
    rows.push([`load ${label}: server RSS per connected peer${nodes > 1 ? " (all nodes)" : ""}`, kb(l.rss_per_peer_bytes), `idle ${(l.rss_idle_bytes / 1048576).toFixed(1)} MiB -> ${(l.rss_loaded_bytes / 1048576).toFixed(1)} MiB`, ...vs((x) => x.rss_per_peer_bytes, kb)]);
  }
}

console.log("| metric | median | spread | comparison (peer or floor) | ratio |");
console.log("|---|---:|---|---|---:|");
for (const r of rows) console.log(`| ${r.join(" | ")} |`);

// Issue 11 (big rooms): its table, before (the recorded run of commit 7f73636 in
// docs/BENCHMARKS.md, the figures the issue quotes) beside this run, with the server's
// own fan-out time (notices queued -> last written and flushed) beside the clients' view.
const loads = readdirSync(dir).filter((f) => /^load-.*\.json$/.test(f)).map(read);
const load = (peers, rooms) => loads.find((l) => (l.nodes ?? 1) === 1 && l.peers === peers && l.rooms === rooms);
const big = load(10000, 1);
const many = load(10000, 100);
if (big || many) {
  const na = "- (not run)";
  const cpu = (l, k) => (l && l[k] != null ? `; server CPU ${Math.round(l[k])} ms` : "");
  const serverView = (l) => (l && l.server_fan_out_last_ms && l.server_fan_out_last_ms.n ? `server: queued -> last written ${ms(l.server_fan_out_last_ms.max)}${cpu(l, "server_cpu_end_ms")}` : "-");
  const out = [];
  out.push([
    "joins/s into one room of 10,000",
    "103 (97 s to fill it)",
    big ? `${Math.round(big.joins_per_s)} (${big.join_span_s.toFixed(1)} s to fill it)` : na,
    `>= 3,000, within 2x of 100 small rooms${many ? ` (this run: ${Math.round(many.joins_per_s)}/s)` : ""}`,
    big && big.server_cpu_join_ms != null ? `server CPU while joining ${Math.round(big.server_cpu_join_ms)} ms` : "-",
  ]);
  out.push([
    "end-room -> last of 10,000 peers in one room",
    "356 ms",
    big ? ms(big.fan_out_last_ms.max) : na,
    "<= 100 ms",
    serverView(big),
  ]);
  out.push([
    "end-room -> last peer, 10,000 peers in 100 rooms ended at once",
    "354 ms",
    many ? ms(many.fan_out_last_ms.max) : na,
    "<= 100 ms",
    many && many.server_fan_out_span_ms != null ? `server: first queued -> last written, all rooms ${ms(many.server_fan_out_span_ms)}${cpu(many, "server_cpu_end_ms")}` : "-",
  ]);
  const rss = (l) => (l && l.rss_per_peer_bytes != null ? kb(l.rss_per_peer_bytes) : "-");
  out.push(["server memory per connected peer, 10k in 100 rooms / 10k in one room", "30.7 / 54.9 KiB", `${rss(many)} / ${rss(big)}`, "<= 16 KiB, the same for both", "-"]);
  const pr = big && big.page_read;
  out.push(["paged read of the 10,000-peer room's list (every peer once)", "- (no paged list)", pr ? `${ms(pr.ms)} (${pr.peers} peers, ${pr.pages} pages)` : na, "every peer exactly once (verified)", "-"]);
  console.log();
  console.log("Issue 11 (big rooms): before = the recorded run of commit 7f73636 (docs/BENCHMARKS.md); after = this run");
  console.log();
  console.log("| measure | before | after | goal | server's own view |");
  console.log("|---|---:|---:|---|---|");
  for (const r of out) console.log(`| ${r.join(" | ")} |`);
}
