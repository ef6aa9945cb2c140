// hms-client in a Vite + strict TypeScript app: join with a room code, see who is there,
// end the room for everyone (with a reason and a lock), and show who ended it and why.
// The room server is ?server=http://host:port, else the origin this page came from.

import init, { HmsClient, HmsError, type RemovedFromRoomEvent } from "hms-client";
import "./style.css";

const params = new URLSearchParams(location.search);
const server = new URL(params.get("server") ?? location.origin);
const endpoint = `${server.protocol === "https:" ? "wss:" : "ws:"}//${server.host}/ws`;

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`#${id} is missing from index.html`);
  return found as T;
}

const screens = { loading: el("loading"), join: el("join"), room: el("room"), ended: el("ended") };
function show(screen: keyof typeof screens): void {
  for (const [name, node] of Object.entries(screens)) node.hidden = name !== screen;
}

function say(node: HTMLElement, text: string): void {
  node.textContent = text;
  node.hidden = text === "";
}

/** An error in words; HmsError's stable `name` says what happened. */
function describe(e: unknown): string {
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

let client: HmsClient | null = null;
let unsubscribe: Array<() => void> = [];

/** Drops the current client: its callbacks first, then the client (free() also leaves). */
function dispose(): void {
  for (const off of unsubscribe) off();
  unsubscribe = [];
  client?.free();
  client = null;
}

function renderPeers(): void {
  if (!client) return;
  el("peers").replaceChildren(...client.getPeers().map((peer) => {
    const li = document.createElement("li");
    li.dataset.testid = "peer";
    li.textContent = `${peer.name}${peer.isLocal ? " (you)" : ""} · ${peer.role.name}`;
    return li;
  }));
}

function ended(text: string): void {
  dispose();
  el("ended-message").textContent = text;
  show("ended");
}

function onRemoved(ev: RemovedFromRoomEvent): void {
  const who = ev.peerWhoRemoved?.name;
  const what = ev.roomWasEnded ? (who ? `${who} ended the room` : "The room was ended") : `${who ?? "The server"} removed you`;
  ended(`${what}: ${ev.reason}`);
}

async function join(name: string, code: string): Promise<void> {
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

el<HTMLFormElement>("join").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  say(el("join-error"), "");
  try {
    await join(el<HTMLInputElement>("join-name").value.trim(), el<HTMLInputElement>("join-code").value.trim());
  } catch (e) {
    say(el("join-error"), describe(e));
  }
});

el<HTMLFormElement>("end").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!client) return;
  const reason = el<HTMLInputElement>("end-reason").value.trim() || "The meeting is over";
  try {
    await client.endRoom(el<HTMLInputElement>("end-lock").checked, reason);
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

el<HTMLInputElement>("join-code").value = params.get("code") ?? "";
await init();
show("join");
