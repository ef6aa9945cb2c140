// The app through a server crash: it says it is reconnecting while the SDK reconnects,
// comes back to the same room when the server is up again, and says "Disconnected" when
// the server stays away. A server of its own, since this test kills it.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  BROWSERS, LAPTOP, PHONE, Person, Server, assertNoPageProblems, closeBrowser, freshRoomId, launchBrowser,
} from "./harness.mjs";

let server;
let browser;
const people = [];

async function open(label, opts) {
  const person = await Person.open(browser, label, opts);
  // While the server is down, each reconnect attempt is a refused WebSocket: the browser
  // logs it (Chromium: "WebSocket connection to ... failed"; Firefox: "can’t establish a
  // connection to the server at ws://..." or "The connection to ws://... was interrupted").
  person.allow(/WebSocket connection to .* failed|can.t establish a connection to the server at ws:|The connection to ws:.* was interrupted/);
  people.push(person);
  return person;
}

for (const browserName of BROWSERS) describe(`demo app across a server crash in ${browserName}`, { timeout: 180_000 }, () => {
  before(async () => {
    server = await Server.start();
    browser = await launchBrowser(browserName);
  });

  after(async () => {
    await Promise.all(people.splice(0).map((p) => p.close().catch(() => {})));
    await closeBrowser(browser);
    await server?.stop();
  });

  test("the app shows Reconnecting… and comes back to the room when the server returns", { timeout: 120_000 }, async (t) => {
    try {
      const room = freshRoomId("crash");
      const codes = await server.roomCodes(room);
      const host = await open("host", { viewport: LAPTOP });
      const guest = await open("guest-phone", { viewport: PHONE, isMobile: true });
      await host.goto(server.origin, codes.host);
      await host.joinAndWait("Hope");
      await guest.goto(server.origin, codes.guest);
      await guest.joinAndWait("Gus");
      await host.waitForPeers(["Hope (you)", "Gus"]);
      assert.equal(await host.byTestId("reconnecting").isVisible(), false);

      await server.crash();
      await host.byTestId("reconnecting").waitFor({ state: "visible", timeout: 20_000 });
      await guest.byTestId("reconnecting").waitFor({ state: "visible", timeout: 20_000 });
      assert.equal(await host.byTestId("room-screen").isVisible(), true, "the room stays on screen while reconnecting");
      await host.screenshot("reconnecting-laptop");
      await guest.screenshot("reconnecting-phone");

      await server.restart();
      await host.byTestId("reconnecting").waitFor({ state: "hidden", timeout: 30_000 });
      await guest.byTestId("reconnecting").waitFor({ state: "hidden", timeout: 30_000 });
      await host.waitForPeers(["Hope (you)", "Gus"], 15_000);
      await guest.waitForPeers(["Gus (you)", "Hope"], 15_000);

      // The session works after the reconnect: the host can still end the room for the guest.
      await host.byTestId("end-room-button").click();
      await host.byTestId("end-reason").fill("Back and done");
      await host.byTestId("end-confirm").click();
      assert.equal(await host.endedMessage(), "You ended the room");
      assert.equal(await guest.endedMessage(), "Hope ended the room: Back and done");
      assertNoPageProblems(people);
    } catch (err) {
      for (const p of people) await p.screenshot(`FAILED-reconnect-${p.label}`).catch(() => {});
      t.diagnostic(`server log tail:\n${server?.logText() ?? "(no server)"}`);
      throw err;
    }
  });

  // Last in this file: the server stays down. The SDK's reconnect budget (30 s by default)
  // runs out, onError fires, and the app says the connection is gone, with a way back.
  test("the app says Disconnected when the server does not come back", { timeout: 120_000 }, async (t) => {
    try {
      const room = freshRoomId("gone");
      const codes = await server.roomCodes(room);
      const host = await open("host-gone", { viewport: LAPTOP });
      await host.goto(server.origin, codes.host);
      await host.joinAndWait("Hope");

      await server.crash();
      await host.byTestId("reconnecting").waitFor({ state: "visible", timeout: 20_000 });
      await host.byTestId("ended-screen").waitFor({ state: "visible", timeout: 60_000 });
      assert.equal(await host.byTestId("ended-title").textContent(), "Disconnected");
      assert.equal(await host.byTestId("ended-message").textContent(), "The connection to the room server was lost");
      await host.screenshot("disconnected-laptop");
      await host.byTestId("back-button").click();
      await host.byTestId("join-screen").waitFor({ state: "visible" });
      assertNoPageProblems(people);
    } catch (err) {
      for (const p of people) await p.screenshot(`FAILED-gone-${p.label}`).catch(() => {});
      t.diagnostic(`server log tail:\n${server?.logText() ?? "(no server)"}`);
      throw err;
    }
  });
});
