// docs/PRODUCTION.md's worked examples, run as written against the real server: each code
// block named mint-token.mjs (Node, jsonwebtoken), mint_token.py (Python, Debian's PyJWT)
// and backup.sh is copied out of the doc and run. A minted app token joins a room through
// the SDK in the browser with the role it names; a minted management token is accepted by
// the REST API; a token keyed with the hex-decoded secret is refused (the key is the
// secret's text); a backup taken while the server runs restores a locked room and its codes.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFile, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import jwt from "jsonwebtoken";
import { BROWSERS, Person, REPO, Server, closeBrowser, freshRoomId, launchBrowser, withTimeout } from "./harness.mjs";

const PYTHON = process.env.PYTHON ?? "/usr/bin/python3"; // Debian's, with python3-jwt

/** The fenced code block of docs/PRODUCTION.md whose info string names `file`. */
async function docBlock(file) {
  const doc = await readFile(join(REPO, "docs", "PRODUCTION.md"), "utf8");
  const m = new RegExp("```\\w+ " + file.replace(".", "\\.") + "\\n([\\s\\S]*?)```").exec(doc);
  assert.ok(m, `docs/PRODUCTION.md has no code block named ${file}`);
  return m[1];
}

/** Runs `cmd args` with `env` added; resolves with its trimmed stdout. */
function run(cmd, args, env, cwd) {
  return withTimeout(new Promise((resolve, reject) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, cwd, timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(" ")}: ${err.message}\n${stderr}`));
      else resolve(stdout.trim());
    });
  }), 25_000, `${cmd} ${args[0]}`);
}

let server;
let browser;
let work; // a temp dir holding the doc's files, with tests/e2e's node_modules beside them

/** Joins `server` with `authToken` through the SDK in a browser page; what the SDK says. */
async function joinWith(authToken) {
  const person = await Person.open(browser, "minted");
  try {
    await person.page.goto(`${server.origin}/`);
    return await person.page.evaluate(async (token, endpoint) => {
      const sdk = await import("/pkg/index.js");
      await sdk.default();
      const client = new sdk.HmsClient({ endpoint });
      try {
        await client.join({ authToken: token, userName: "Minted" });
        const me = client.getLocalPeer();
        return { joined: true, role: me.role.name, userId: me.userId, room: client.getRoom().id };
      } catch (e) {
        return { joined: false, code: e.code, name: e.name };
      } finally {
        client.free();
      }
    }, authToken, server.wsEndpoint);
  } finally {
    await person.close();
  }
}

async function restStatus(path, token, init = {}) {
  const res = await fetch(`${server.origin}${path}`, {
    ...init,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    signal: AbortSignal.timeout(10_000),
  });
  return res.status;
}

describe("docs/PRODUCTION.md, run as written", { timeout: 300_000 }, () => {
  before(async () => {
    server = await Server.start();
    browser = await launchBrowser(BROWSERS[0]);
    work = await mkdtemp(join(tmpdir(), "hms-production-"));
    await symlink(join(REPO, "tests", "e2e", "node_modules"), join(work, "node_modules"));
  });

  after(async () => {
    await closeBrowser(browser);
    await server?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const minters = [
    { name: "Node (jsonwebtoken)", file: "mint-token.mjs", cmd: process.execPath },
    { name: "Python (PyJWT)", file: "mint_token.py", cmd: PYTHON },
  ];
  for (const m of minters) {
    test(`${m.name}: the app token joins as its role; the management token opens the REST API`, { timeout: 60_000 }, async () => {
      const script = join(work, m.file);
      await writeFile(script, await docBlock(m.file));
      const room = freshRoomId("minted");
      const env = { HMS_SECRET: server.secret };

      const appToken = await run(m.cmd, [script, room, `u-${m.file}`, "host"], env, work);
      const joined = await joinWith(appToken);
      assert.deepEqual(joined, { joined: true, role: "host", userId: `u-${m.file}`, room });

      const guestToken = await run(m.cmd, [script, room, "u-guest", "guest"], env, work);
      assert.equal((await joinWith(guestToken)).role, "guest");

      const management = await run(m.cmd, [script, "--management"], env, work);
      assert.equal(await restStatus(`/v2/rooms/${room}`, management), 200);
      assert.equal(await restStatus(`/v2/rooms/${room}`, appToken), 401, "an app token cannot call the REST API");
    });
  }

  test("a token whose key is the hex-decoded secret is refused: the key is the secret's text", { timeout: 60_000 }, async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      access_key: "hms-local", room_id: freshRoomId("hexkey"), user_id: "u1", role: "host", type: "app", version: 2,
      iat: now, nbf: now - 5, exp: now + 600, jti: "jti-hexkey",
    };
    const wrong = jwt.sign(claims, Buffer.from(server.secret, "hex"), { algorithm: "HS256" });
    assert.deepEqual(await joinWith(wrong), { joined: false, code: 401, name: "InvalidToken" });
    const right = jwt.sign({ ...claims, jti: "jti-text" }, server.secret, { algorithm: "HS256" });
    assert.equal((await joinWith(right)).joined, true);
  });

  test("backup.sh while the server runs; restored into a new data dir, the lock and the room codes survive", { timeout: 60_000 }, async () => {
    const room = freshRoomId("backup");
    const codes = await server.roomCodes(room);
    // The server keeps codes as hashes and lists them without their text.
    const listed = (await server.rest("GET", `/v2/room-codes/room/${room}`)).data;
    await server.rest("POST", `/v2/rooms/${room}`, { enabled: false });

    const script = join(work, "backup.sh");
    await writeFile(script, await docBlock("backup.sh"));
    const dest = join(work, "backups");
    const backup = await run("bash", [script], { DATA: server.dataDir, DEST: dest }, work);
    assert.match(backup, /hms-\d{8}T\d{6}Z\.sqlite3$/);

    const restoredDir = await mkdtemp(join(tmpdir(), "hms-restored-"));
    await copyFile(backup, join(restoredDir, "hms.sqlite3"));
    const restored = await Server.start({ dataDir: restoredDir, secret: server.secret });
    try {
      assert.equal((await restored.rest("GET", `/v2/rooms/${room}`)).enabled, false, "still locked");
      assert.deepEqual((await restored.rest("GET", `/v2/room-codes/room/${room}`)).data, listed, "the same room codes");
      const exchange = () => fetch(`${restored.origin}/v2/token`, {
        method: "POST", body: JSON.stringify({ code: codes.guest }), headers: { "Content-Type": "application/json" },
      });
      assert.equal((await exchange()).status, 423, "a locked room refuses its codes");
      await restored.rest("POST", `/v2/rooms/${room}`, { enabled: true });
      assert.equal((await exchange()).status, 200, "a code from before the backup still gives a token");
    } finally {
      await restored.stop();
    }
  });
});
