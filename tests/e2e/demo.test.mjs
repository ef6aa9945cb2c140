// End-to-end tests of the demo app (www/) on the real SDK (pkg/) and the real room server,
// in headless Chromium and Firefox (harness.mjs: BROWSERS). Each test gets a fresh room;
// people get their own browser context. Screenshots of every screen land in
// tests/artifacts/e2e/<browser>/ for a person to look at.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  BROWSERS, LAPTOP, PHONE, Server, closeBrowser, freshRoomId, launchBrowser, withPeople,
} from "./harness.mjs";

const TEST_TIMEOUT = 90_000;

let server;
let browser;

/** A test of `body(open)` with people's tabs (harness.mjs: withPeople). */
function scenario(name, body) {
  test(name, { timeout: TEST_TIMEOUT }, (t) => withPeople(t, browser, server, name, body));
}

/** Screenshot + the check a person would do at a glance: nothing sticks out sideways. */
async function shot(person, name) {
  await person.screenshot(name);
  assert.equal(await person.overflowsSideways(), false, `${name}: the page is wider than the ${person.label} viewport`);
}

for (const browserName of BROWSERS) describe(`demo app end to end in ${browserName}`, { timeout: 10 * TEST_TIMEOUT }, () => {
  before(async () => {
    server = await Server.start();
    browser = await launchBrowser(browserName);
  });

  after(async () => {
    await closeBrowser(browser);
    await server?.stop();
  });

  scenario("host and guest join the same room and see each other; only the host may end or remove", async (open) => {
    const room = freshRoomId("join");
    const codes = await server.roomCodes(room);
    const host = await open("host", { viewport: LAPTOP });
    const guest = await open("guest", { viewport: LAPTOP });

    await host.goto(server.origin, codes.host);
    assert.equal(await host.byTestId("join-code").inputValue(), codes.host, "the room code comes from ?code=");
    await host.byTestId("join-name").fill("Hope");
    await shot(host, "join-laptop");
    await host.joinAndWait("Hope");
    assert.equal((await host.byTestId("room-name").textContent()).trim(), room);
    await host.waitForPeers(["Hope (you)"]);

    await guest.goto(server.origin, codes.guest);
    await guest.joinAndWait("Gus");
    await guest.waitForPeers(["Gus (you)", "Hope"]);
    await host.waitForPeers(["Hope (you)", "Gus"]);

    // Roles beside names.
    assert.equal(await host.peerRow("Hope").getByTestId("peer-role").textContent(), "host");
    assert.equal(await host.peerRow("Gus").getByTestId("peer-role").textContent(), "guest");
    assert.equal(await guest.peerRow("Hope").getByTestId("peer-role").textContent(), "host");

    // Permissions decide the controls: the host has End room and Remove beside the other
    // peer (not beside itself); the guest has neither.
    await host.byTestId("end-room-button").waitFor({ state: "visible" });
    assert.equal(await host.peerRow("Gus").getByTestId("remove-button").count(), 1);
    assert.equal(await host.peerRow("Hope").getByTestId("remove-button").count(), 0);
    assert.equal(await guest.byTestId("end-room-button").isVisible(), false, "a guest sees no End room button");
    assert.equal(await guest.byTestId("remove-button").count(), 0, "a guest sees no Remove button");
    await shot(host, "room-host-laptop");
    await shot(guest, "room-guest-laptop");

    // A peer-chosen name is shown as text, never parsed as HTML.
    const evil = await open("evil", { viewport: LAPTOP });
    const evilName = `<img src=x onerror="window.__xss=1">Eve`;
    await evil.goto(server.origin, codes.guest);
    await evil.joinAndWait(evilName);
    await host.waitForPeers(["Hope (you)", "Gus", evilName]);
    assert.equal(await host.locator("[data-testid=peer-list] img").count(), 0);
    assert.equal(await host.page.evaluate(() => window.__xss), undefined);

    // Live updates when people leave.
    await evil.byTestId("leave-button").click();
    await evil.byTestId("join-screen").waitFor({ state: "visible" });
    await host.waitForPeers(["Hope (you)", "Gus"]);
    await guest.waitForPeers(["Gus (you)", "Hope"]);

    // Closing the tab says goodbye: the host's list drops the guest well within the
    // server's 15 s reconnect window, which is what an unannounced drop would wait for.
    await guest.page.close({ runBeforeUnload: true });
    await host.waitForPeers(["Hope (you)"], 5_000);
  });

  scenario("host ends the room with a reason and a lock; the guest sees who and why and cannot rejoin", async (open) => {
    const room = freshRoomId("end");
    const codes = await server.roomCodes(room);
    const host = await open("host", { viewport: LAPTOP });
    const guest = await open("guest-phone", { viewport: PHONE, isMobile: true });

    await host.goto(server.origin, codes.host);
    await host.joinAndWait("Hope");
    await guest.goto(server.origin, codes.guest);
    await shot(guest, "join-phone");
    await guest.joinAndWait("Gus");
    await guest.waitForPeers(["Gus (you)", "Hope"]);
    await host.waitForPeers(["Hope (you)", "Gus"]);
    await shot(guest, "room-guest-phone");

    await host.byTestId("end-room-button").click();
    await host.byTestId("end-dialog").waitFor({ state: "visible" });
    await host.byTestId("end-reason").fill("Standup is over");
    await host.byTestId("end-lock").check();
    await shot(host, "end-dialog-laptop");
    await host.byTestId("end-confirm").click();

    assert.equal(await host.endedMessage(), "You ended the room");
    assert.match(await host.byTestId("ended-detail").textContent(), /Standup is over.*locked/);
    assert.equal(await host.byTestId("room-screen").isVisible(), false, "the host's room UI is torn down");
    await shot(host, "ended-self-laptop");

    assert.equal(await guest.endedMessage(), "Hope ended the room: Standup is over");
    assert.equal(await guest.byTestId("room-screen").isVisible(), false, "the guest's room UI is torn down");
    await shot(guest, "ended-by-host-phone");

    // The way back leads to the join screen, code still filled in; the locked room says so.
    await guest.byTestId("back-button").click();
    await guest.byTestId("join-screen").waitFor({ state: "visible" });
    assert.equal(await guest.byTestId("join-code").inputValue(), codes.guest);
    // The server refuses a locked room's code at the token request (423), which the
    // browser logs; the app turns it into words.
    guest.allow(/Failed to load resource.*\b423\b/);
    await guest.join("Gus");
    await guest.byTestId("join-error").waitFor({ state: "visible" });
    assert.match(await guest.byTestId("join-error").textContent(), /^This room is locked/);
    assert.equal(await guest.byTestId("room-screen").isVisible(), false);
    await shot(guest, "join-locked-phone");
  });

  scenario("host removes a guest; the guest sees who and why, the others' lists update", async (open) => {
    const room = freshRoomId("remove");
    const codes = await server.roomCodes(room);
    const host = await open("host-phone", { viewport: PHONE, isMobile: true });
    const gus = await open("gus", { viewport: LAPTOP });
    const gia = await open("gia", { viewport: LAPTOP });

    await host.goto(server.origin, codes.host);
    await host.joinAndWait("Hope");
    await gus.goto(server.origin, codes.guest);
    await gus.joinAndWait("Gus");
    await gia.goto(server.origin, codes.guest);
    await gia.joinAndWait("Gia");
    await host.waitForPeers(["Hope (you)", "Gus", "Gia"]);
    await gia.waitForPeers(["Gia (you)", "Hope", "Gus"]);
    await shot(host, "room-host-phone");

    await host.peerRow("Gus").getByTestId("remove-button").click();
    await host.byTestId("remove-dialog").waitFor({ state: "visible" });
    assert.equal(await host.byTestId("remove-who").textContent(), "Gus");
    await host.byTestId("remove-reason").fill("Please use the other room");
    await shot(host, "remove-dialog-phone");
    await host.byTestId("remove-confirm").click();

    assert.equal(await gus.endedMessage(), "Hope removed you: Please use the other room");
    await shot(gus, "ended-removed-laptop");
    await host.waitForPeers(["Hope (you)", "Gia"]);
    await gia.waitForPeers(["Gia (you)", "Hope"]);
    await host.byTestId("remove-dialog").waitFor({ state: "hidden" });
    assert.equal(await host.byTestId("room-screen").isVisible(), true, "the host stays in the room");
    await shot(host, "room-after-remove-phone");

    // The room is not locked: the removed guest can come back.
    await gus.byTestId("back-button").click();
    await gus.joinAndWait("Gus");
    await host.waitForPeers(["Hope (you)", "Gus", "Gia"]);
  });

  scenario("host ends the room without a lock and without a reason: the default reason, and the room opens again", async (open) => {
    const room = freshRoomId("nolock");
    const codes = await server.roomCodes(room);
    const host = await open("host", { viewport: LAPTOP });
    const guest = await open("guest", { viewport: LAPTOP });

    await host.goto(server.origin, codes.host);
    await host.joinAndWait("Hope");
    await guest.goto(server.origin, codes.guest);
    await guest.joinAndWait("Gus");
    await host.waitForPeers(["Hope (you)", "Gus"]);

    // Cancel first: nothing happens, the room goes on.
    await host.byTestId("end-room-button").click();
    await host.byTestId("end-cancel").click();
    await host.byTestId("end-dialog").waitFor({ state: "hidden" });
    await guest.waitForPeers(["Gus (you)", "Hope"]);

    await host.byTestId("end-room-button").click();
    assert.equal(await host.byTestId("end-lock").isChecked(), false, "lock is off unless ticked");
    await host.byTestId("end-confirm").click();
    assert.equal(await host.endedMessage(), "You ended the room");
    assert.equal(await guest.endedMessage(), "Hope ended the room: The meeting is over");

    // Not locked: both can start a new session of the same room.
    await host.byTestId("back-button").click();
    await host.joinAndWait("Hope");
    await guest.byTestId("back-button").click();
    await guest.joinAndWait("Gus");
    await host.waitForPeers(["Hope (you)", "Gus"]);
    await guest.waitForPeers(["Gus (you)", "Hope"]);

    // Closing the tab says goodbye: the host's list drops the guest well within the
    // server's 15 s reconnect window, which is what an unannounced drop would wait for.
    await guest.page.close({ runBeforeUnload: true });
    await host.waitForPeers(["Hope (you)"], 5_000);
  });

  scenario("a back end ends the room through the REST API; everyone sees the reason", async (open) => {
    const room = freshRoomId("rest");
    const codes = await server.roomCodes(room);
    const host = await open("host", { viewport: LAPTOP });
    const guest = await open("guest-phone", { viewport: PHONE, isMobile: true });

    await host.goto(server.origin, codes.host);
    await host.joinAndWait("Hope");
    await guest.goto(server.origin, codes.guest);
    await guest.joinAndWait("Gus");
    await host.waitForPeers(["Hope (you)", "Gus"]);

    await server.endRoom(room, "Scheduled maintenance", false);

    assert.equal(await guest.endedMessage(), "The room was ended: Scheduled maintenance");
    assert.equal(await host.endedMessage(), "The room was ended: Scheduled maintenance");
    await shot(guest, "ended-by-server-phone");
    await shot(host, "ended-by-server-laptop");
  });

  scenario("a bad room code is refused in words", async (open) => {
    const person = await open("visitor-phone", { viewport: PHONE, isMobile: true });
    // The token request's 404 is the expected answer; the app turns it into words.
    person.allow(/Failed to load resource.*\b(400|404)\b/);
    await person.goto(server.origin, "nope-nope-nop");
    await person.join("Vic");
    await person.byTestId("join-error").waitFor({ state: "visible" });
    assert.match(await person.byTestId("join-error").textContent(), /room code “nope-nope-nop” is not valid/);
    assert.equal(await person.byTestId("room-screen").isVisible(), false);
    assert.equal(await person.byTestId("join-submit").isEnabled(), true, "Join can be pressed again");
    await shot(person, "join-bad-code-phone");

    // An empty name is caught before anything is sent.
    await person.byTestId("join-name").fill("");
    await person.byTestId("join-submit").click();
    assert.equal(await person.byTestId("join-error").textContent(), "Enter your name.");
  });
});
