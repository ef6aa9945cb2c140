// The examples (examples/vite-ts, examples/react, examples/webpack), each installed from the
// package's tarball and built by scripts/package-tests.sh, served by the real server, in
// Chromium and Firefox: closing a tab says goodbye at once; the host ends the room with a
// reason and a lock; the guest's screen shows who and why; the guest's rejoin is refused
// (423). And the React hook under StrictMode's double mount (Vite's dev server, React's
// development build): one join per person, and unmounting leaves.
// Screenshots: tests/artifacts/e2e/<browser>/example-*.png.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  BROWSERS, LAPTOP, PHONE, REPO, Server, closeBrowser, freshRoomId, launchBrowser, withDevServers, withPeople,
} from "./harness.mjs";

const EXAMPLES = ["vite-ts", "react", "webpack"];
const exampleDir = (name) => join(REPO, "examples", name);

/** The example's peer list as shown: "Hope (you) · host", ... in the list's order. */
function peerList(person) {
  return person.page.$$eval("[data-testid=peer]", (items) => items.map((li) => li.textContent.trim()));
}

async function waitForPeerList(person, want, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  let got = [];
  while (Date.now() < deadline) {
    got = await peerList(person);
    if (JSON.stringify([...got].sort()) === JSON.stringify([...want].sort())) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${person.label}: peer list is ${JSON.stringify(got)}, wanted ${JSON.stringify(want)}`);
}

/** Opens the example at `origin` with the room code and joins as `name`. */
async function joinAs(person, origin, code, name) {
  await person.page.goto(`${origin}/?code=${encodeURIComponent(code)}`);
  await person.byTestId("join-screen").waitFor({ timeout: 15_000 });
  assert.equal(await person.byTestId("join-code").inputValue(), code, "the room code comes from ?code=");
  await person.byTestId("join-name").fill(name);
  await person.byTestId("join-submit").click();
  await person.byTestId("room-screen").waitFor();
}

for (const browserName of BROWSERS) describe(`the examples in ${browserName}`, { timeout: 600_000 }, () => {
  let browser;
  before(async () => {
    browser = await launchBrowser(browserName);
  });
  after(() => closeBrowser(browser));

  for (const name of EXAMPLES) {
    test(`${name}: a closed tab leaves at once; the host ends the room with a lock; the guest sees who and why and cannot rejoin`, { timeout: 90_000 }, async (t) => {
      const dist = join(exampleDir(name), "dist");
      assert.ok(existsSync(join(dist, "index.html")), `${dist} is not built: run scripts/package-tests.sh`);
      const server = await Server.start({ www: dist });
      try {
        await withPeople(t, browser, server, `example-${name}`, async (open) => {
          const codes = await server.roomCodes(freshRoomId(name));
          const host = await open("host", { viewport: LAPTOP });
          const guest = await open("guest", { viewport: PHONE, isMobile: true });
          await joinAs(host, server.origin, codes.host, "Hope");
          await joinAs(guest, server.origin, codes.guest, "Gus");
          await waitForPeerList(host, ["Hope (you) · host", "Gus · guest"]);
          await waitForPeerList(guest, ["Gus (you) · guest", "Hope · host"]);
          assert.equal(await guest.byTestId("end-form").isVisible(), false, "a guest has no End room form");
          await host.screenshot(`example-${name}-host-room`);

          // Closing a tab says goodbye: the host's list drops that peer well within the
          // server's 15 s reconnect window, which is what an unannounced drop would wait for.
          const closer = await open("closer", { viewport: LAPTOP });
          await joinAs(closer, server.origin, codes.guest, "Cleo");
          await waitForPeerList(host, ["Hope (you) · host", "Gus · guest", "Cleo · guest"]);
          await closer.page.close({ runBeforeUnload: true });
          await waitForPeerList(host, ["Hope (you) · host", "Gus · guest"], 5_000);

          await host.byTestId("end-reason").fill("Standup is over");
          await host.byTestId("end-lock").check();
          await host.byTestId("end-submit").click();
          await host.byTestId("ended-screen").waitFor();
          assert.equal(await host.byTestId("ended-message").textContent(), "You ended the room: Standup is over");
          await guest.byTestId("ended-screen").waitFor();
          assert.equal(await guest.byTestId("ended-message").textContent(), "Hope ended the room: Standup is over");
          await host.screenshot(`example-${name}-host-ended`);
          await guest.screenshot(`example-${name}-guest-ended`);

          await guest.byTestId("back-button").click();
          await guest.byTestId("join-screen").waitFor();
          await guest.byTestId("join-name").fill("Gus");
          // The server refuses a locked room's code at the token request (423), which
          // Chromium logs; the app turns it into words.
          guest.allow(/Failed to load resource.*\b423\b/);
          await guest.byTestId("join-submit").click();
          await guest.byTestId("join-error").waitFor();
          assert.match(await guest.byTestId("join-error").textContent(), /^This room is locked/);
          assert.equal(await guest.byTestId("room-screen").isVisible(), false);
          await guest.screenshot(`example-${name}-guest-rejoin-refused`);
        });
      } finally {
        await server.stop();
      }
    });
  }

  test("react: useHmsRoom under StrictMode (dev server): one join per person, and unmounting leaves", { timeout: 120_000 }, async (t) => {
    const vite = { bin: join(exampleDir("react"), "node_modules", "vite", "bin", "vite.js"), cwd: exampleDir("react") };
    await withDevServers(t, vite, (server, dev) => withPeople(t, browser, server, "example-react-strict", async (open) => {
      const codes = await server.roomCodes(freshRoomId("strict"));
      const host = await open("host", { viewport: LAPTOP });
      const guest = await open("guest", { viewport: LAPTOP });
      // The dev server is not the room server: the app takes it from ?server=.
      for (const [who, code, name] of [[host, codes.host, "Hope"], [guest, codes.guest, "Gus"]]) {
        await who.page.goto(`${dev.origin}/?${new URLSearchParams({ code, server: server.origin })}`);
        await who.byTestId("join-screen").waitFor({ timeout: 20_000 });
        await who.byTestId("join-name").fill(name);
        await who.byTestId("join-submit").click();
        await who.byTestId("room-screen").waitFor();
      }
      await waitForPeerList(host, ["Hope (you) · host", "Gus · guest"]);
      await waitForPeerList(guest, ["Gus (you) · guest", "Hope · host"]);
      // StrictMode did mount twice: two clients asked for a token, only one joined
      // (the lists above show each person once).
      const tokenRequests = await guest.page.evaluate(() =>
        performance.getEntriesByType("resource").filter((e) => e.name.endsWith("/v2/token")).length);
      assert.equal(tokenRequests, 2, "StrictMode's first mount asked for a token too");

      // Leave unmounts the room component: the hook's cleanup leaves, and the host sees it.
      await guest.byTestId("leave-button").click();
      await guest.byTestId("join-screen").waitFor();
      await waitForPeerList(host, ["Hope (you) · host"], 5_000);
      await host.screenshot("example-react-strict-after-leave");
    }));
  });
});
