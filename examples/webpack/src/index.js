// hms-client in a webpack 5 app (plain JavaScript): join with a room code, see who is
// there, end the room for everyone (with a reason and a lock), and show who ended it and
// why. The room server is ?server=http://host:port, else the origin this page came from.

import init, { HmsClient, HmsError } from "hms-client";

const params = new URLSearchParams(location.search);
const server = new URL(params.get("server") ?? location.origin);
const endpoint = `${server.protocol === "https:" ? "wss:" : "ws:"}//${server.host}/ws`;

const el = (id) => document.getElementById(id);
const screens = { loading: el("loading"), join: el("join"), room: el("room"), ended: el("ended") };
function show(screen) {
  for (const [name, node] of Object.entries(screens)) node.hidden = name !== screen;
}

function say(node, text) {
  node.textContent = text;
  node.hidden = text === "";
}

/** An error in words; HmsError's stable `name` says what happened. */
function describe(e) {
  if (!(e instanceof HmsError)) return String(e);
  switch (e.name) {
    case "RoomLocked":
      return "This room is locked: it was ended and nobody can join it again.";
    case "NotFound":
      return "That room code is not valid.";
    case "PermissionDenied":
      return "Your role may not do that.";
    default:
      return `${e.message} (${e.name}, ${e.code})`;
  }
}

let client = null;
let unsubscribe = [];

/** Drops the current client: its callbacks first, then the client (free() also leaves). */
function dispose() {
  for (const off of unsubscribe) off();
  unsubscribe = [];
  client?.free();
  client = null;
}

function renderPeers() {
  if (!client) return;
  el("peers").replaceChildren(...client.getPeers().map((peer) => {
    const li = document.createElement("li");
    li.dataset.testid = "peer";
    li.textContent = `${peer.name}${peer.isLocal ? " (you)" : ""} · ${peer.role.name}`;
    return li;
  }));
}

function ended(text) {
  dispose();
  el("ended-message").textContent = text;
  show("ended");
}

function onRemoved(ev) {
  const who = ev.peerWhoRemoved?.name;
  const what = ev.roomWasEnded ? (who ? `${who} ended the room` : "The room was ended") : `${who ?? "The server"} removed you`;
  ended(`${what}: ${ev.reason}`);
}

async function join(name, code) {
  const c = new HmsClient({ endpoint });
  // Subscribe before joining, so that nothing that happens right after the join is missed.
  unsubscribe = [c.onPeerJoin(renderPeers), c.onPeerLeave(renderPeers), c.onRemovedFromRoom(onRemoved)];
  client = c;
  try {
    const authToken = await c.getAuthTokenByRoomCode(code);
    await c.join({ authToken, userName: name });
  } catch (e) {
    dispose();
    throw e;
  }
  const me = c.getLocalPeer();
  el("room-name").textContent = c.getRoom()?.name ?? "";
  el("local-role").textContent = me?.role.name ?? "";
  el("end").hidden = !me?.role.permissions.endRoom;
  renderPeers();
  show("room");
}

el("join").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  say(el("join-error"), "");
  try {
    await join(el("join-name").value.trim(), el("join-code").value.trim());
  } catch (e) {
    say(el("join-error"), describe(e));
  }
});

el("end").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!client) return;
  const reason = el("end-reason").value.trim() || "The meeting is over";
  try {
    await client.endRoom(el("end-lock").checked, reason);
    ended(`You ended the room: ${reason}`);
  } catch (e) {
    say(el("end-error"), describe(e));
  }
});

el("leave").addEventListener("click", async () => {
  await client?.leave().catch(() => {});
  dispose();
  show("join");
});

el("back").addEventListener("click", () => show("join"));

// Closing the tab: say goodbye, so the others see us leave at once. On beforeunload too:
// Firefox may close the page's WebSocket before pagehide runs. A second leave() is a no-op.
for (const event of ["beforeunload", "pagehide"]) addEventListener(event, () => void client?.leave().catch(() => {}));

el("join-code").value = params.get("code") ?? "";
init().then(() => show("join"), (e) => say(el("loading"), `Could not load hms-client: ${describe(e)}`));
