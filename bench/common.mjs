// What the browser benchmarks share: Chromium's flags, the real server started on
// 127.0.0.1:0 serving bench/page and the package, tokens minted by the server's CLI,
// and nearest-rank statistics.
import { spawn, execFileSync } from "node:child_process";
import { createInterface } from "node:readline";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

// `--name value` pairs of the command line as an object.
export function cliArgs(argv = process.argv.slice(2)) {
  return Object.fromEntries(argv.reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
}

export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-quic",
];

// Flags of `serve` that raise its guards out of the way of 100+ sockets from one IP; each
// is passed only when `serve --help` lists it.
const GENEROUS = [
  ["--max-conns-per-ip", "0"],
  ["--max-frames-per-sec", "0"],
  // The guests of a trial share one token (one user): lift the per-user limits.
  ["--max-conns-per-user", "0"],
  ["--joins-per-user-per-min", "0"],
];

function quantile(sorted, q) {
  // Nearest rank, as the load tool does.
  if (!sorted.length) return NaN;
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}

export function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, p10: quantile(s, 0.1), median: quantile(s, 0.5), p90: quantile(s, 0.9), min: s[0], max: s[s.length - 1] };
}

// Starts `serverBin serve` on 127.0.0.1:0 with bench/page and `pkgDir`; resolves with
// the child and its address once it printed `listening on ...`.
export async function startServer({ serverBin, pkgDir, dataDir, secret }) {
  let help = "";
  try {
    help = execFileSync(serverBin, ["serve", "--help"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    help = String(e.stdout ?? "");
  }
  const words = new Set(help.split(/[\s,=]+/));
  const extra = GENEROUS.filter(([f]) => words.has(f)).map(([f, v]) => `${f}=${v}`);
  const child = spawn(
    serverBin,
    ["serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir, "--www", join(here, "page"), "--pkg", pkgDir, ...extra],
    { env: { ...process.env, HMS_SECRET: secret, RUST_LOG: "warn" }, stdio: ["ignore", "pipe", "inherit"] },
  );
  const rl = createInterface({ input: child.stdout });
  const line = await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error("server printed no line within 30 s")), 30000);
    rl.once("line", (l) => {
      clearTimeout(timer);
      res(l);
    });
    child.once("exit", (code) => rej(new Error(`server exited with ${code} before listening`)));
  });
  const m = /^listening on (127\.0\.0\.1:\d+)$/.exec(line.trim());
  if (!m) throw new Error(`unexpected first line from the server: ${line}`);
  rl.on("line", () => {}); // keep draining
  return { child, addr: m[1] };
}

// An auth token for (room, user, role), minted by the server's CLI with the same secret.
export function token({ serverBin, dataDir, secret }, room, user, role) {
  return execFileSync(serverBin, ["token", "--room", room, "--user", user, "--role", role, "--data-dir", dataDir], {
    encoding: "utf8",
    env: { ...process.env, HMS_SECRET: secret },
  }).trim().split("\n").pop().trim();
}
