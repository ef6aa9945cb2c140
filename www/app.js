// The demo meeting app: join a room by room code, see who is there, end the room for
// everyone or remove a peer (when the local role may), and show who ended the room or
// removed us, and why. Plain ES module on top of the hms-client package served at /pkg/.
//
// Every peer-provided string (names, roles, reasons, room names) goes into the page through
// textContent or attributes, never innerHTML: a peer called "<img onerror=...>" stays text.

const SDK_URL = "/pkg/index.js";
const DEFAULT_END_REASON = "The meeting is over";
const DEFAULT_REMOVE_REASON = "You were asked to leave";

const $ = (id) => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`index.html lacks #${id}`);
  return el;
};

const ui = {
  loading: $("loading-screen"),
  loadingText: $("loading-text"),
  join: $("join-screen"),
  joinForm: $("join-form"),
  joinName: $("join-name"),
  joinCode: $("join-code"),
  joinError: $("join-error"),
  joinSubmit: $("join-submit"),
  room: $("room-screen"),
  roomName: $("room-name"),
  localRole: $("local-role"),
  roomError: $("room-error"),
  reconnecting: $("reconnecting"),
  peerCount: $("peer-count"),
  peerList: $("peer-list"),
  leaveButton: $("leave-button"),
  endButton: $("end-room-button"),
  ended: $("ended-screen"),
  endedTitle: $("ended-title"),
  endedMessage: $("ended-message"),
  endedDetail: $("ended-detail"),
  backButton: $("back-button"),
  endDialog: $("end-dialog"),
  endForm: $("end-form"),
  endReason: $("end-reason"),
  endLock: $("end-lock"),
  endError: $("end-error"),
  endCancel: $("end-cancel"),
  endConfirm: $("end-confirm"),
  removeDialog: $("remove-dialog"),
  removeForm: $("remove-form"),
  removeWho: $("remove-who"),
  removeReason: $("remove-reason"),
  removeError: $("remove-error"),
  removeCancel: $("remove-cancel"),
  removeConfirm: $("remove-confirm"),
};

/** The loaded SDK module: { HmsClient, HmsError }. */
let sdk = null;

/**
 * The current (or last) call session: { client, offs, finished }. A new HmsClient is made
 * for every join, so nothing of an ended session (callbacks, peers) leaks into the next.
 */
let session = null;

/** The peer the remove dialog is about: { peerId, name }. */
let removeTarget = null;

// ---------------------------------------------------------------------------------------
// Screens and small helpers

function showScreen(screen) {
  for (const s of [ui.loading, ui.join, ui.room, ui.ended]) s.hidden = s !== screen;
}

function showError(el, text) {
  el.textContent = text;
  el.hidden = !text;
}

function wsEndpoint() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

/** Accepts a bare code or a pasted demo URL that carries ?code=. */
function normaliseCode(raw) {
  const text = raw.trim();
  if (text.includes("code=")) {
    try {
      const code = new URL(text, location.href).searchParams.get("code");
      if (code) return code.trim();
    } catch {
      // Not a URL after all: fall through and use the text as typed.
    }
  }
  return text;
}

/** Error code and name of an HmsError (or of anything else that was thrown). */
function errorInfo(err) {
  return {
    code: typeof err?.code === "number" ? err.code : undefined,
    name: typeof err?.name === "string" ? err.name : "Error",
    message: typeof err?.message === "string" && err.message ? err.message : String(err),
  };
}

function isLocked({ code, name }) {
  return code === 423 || name === "RoomLocked";
}

/** Words for a failed join; `phase` is "code" (token exchange) or "join" (the socket). */
function joinErrorText(err, phase, code) {
  const info = errorInfo(err);
  if (isLocked(info)) return "This room is locked: nobody can join it any more.";
  if (phase === "code" && (info.code === 404 || info.code === 400 || info.name === "NotFound")) {
    return `The room code “${code}” is not valid. Check it and try again.`;
  }
  if (info.code === 401 || info.name === "InvalidToken") {
    return phase === "code"
      ? `The room code “${code}” is not valid. Check it and try again.`
      : "The server refused the access token for this room. Get a fresh link and try again.";
  }
  if (info.code === 6008 || info.name === "RequestTimeout") {
    return "The server did not answer in time. Try again.";
  }
  if ([1000, 1003, 6000].includes(info.code) || info.name === "FailedToConnect" || info.name === "ConnectionLost") {
    return "Could not reach the room server. Is it running?";
  }
  return `Could not join: ${info.message}`;
}

function initials(name) {
  const first = Array.from(name.trim())[0] ?? "?";
  return first.toUpperCase();
}

/** A stable hue per peer, so avatars are told apart at a glance. */
function hue(text) {
  let h = 0;
  for (const ch of text) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

// ---------------------------------------------------------------------------------------
// Join

function prefillJoin() {
  const params = new URLSearchParams(location.search);
  const code = params.get("code");
  if (code && !ui.joinCode.value) ui.joinCode.value = code;
  const savedName = sessionStorage.getItem("hms-demo-name");
  if (savedName && !ui.joinName.value) ui.joinName.value = savedName;
}

function showJoin() {
  disposeSession();
  prefillJoin();
  showError(ui.joinError, "");
  ui.joinSubmit.disabled = false;
  ui.joinSubmit.textContent = "Join";
  showScreen(ui.join);
  (ui.joinName.value ? ui.joinCode.value ? ui.joinSubmit : ui.joinCode : ui.joinName).focus();
}

async function onJoinSubmit(event) {
  event.preventDefault();
  const name = ui.joinName.value.trim();
  const code = normaliseCode(ui.joinCode.value);
  if (!name) return showError(ui.joinError, "Enter your name.");
  if (!code) return showError(ui.joinError, "Enter the room code.");
  ui.joinCode.value = code;
  sessionStorage.setItem("hms-demo-name", name);
  showError(ui.joinError, "");
  ui.joinSubmit.disabled = true;
  ui.joinSubmit.textContent = "Joining…";

  disposeSession();
  const client = new sdk.HmsClient({ endpoint: wsEndpoint() });
  const current = { client, offs: [], finished: false };
  session = current;

  let phase = "code";
  try {
    const token = await client.getAuthTokenByRoomCode(code, { endpoint: location.origin });
    phase = "join";
    subscribe(current);
    await client.join({ authToken: token, userName: name, metadata: "" });
  } catch (err) {
    if (session !== current || current.finished) return;
    current.finished = true;
    showError(ui.joinError, joinErrorText(err, phase, code));
    ui.joinSubmit.disabled = false;
    ui.joinSubmit.textContent = "Join";
    return;
  }
  if (session !== current || current.finished) return;
  // Keep the code in the address bar, so a reload or a copied link lands here again.
  const url = new URL(location.href);
  if (url.searchParams.get("code") !== code) {
    url.searchParams.set("code", code);
    history.replaceState(null, "", url);
  }
  showRoom(current);
}

function subscribe(current) {
  const { client } = current;
  const rerender = () => {
    if (session === current && !current.finished) renderPeers(current);
  };
  current.offs.push(client.onPeerJoin(rerender));
  current.offs.push(client.onPeerLeave(rerender));
  current.offs.push(client.onRemovedFromRoom((ev) => onRemoved(current, ev)));
  current.offs.push(client.onError((err) => onClientError(current, err)));
  // Reconnecting is the SDK's own business; the app only says so while it lasts.
  if (typeof client.onReconnecting === "function") {
    current.offs.push(client.onReconnecting(() => {
      if (session === current && !current.finished) ui.reconnecting.hidden = false;
    }));
  }
  if (typeof client.onReconnected === "function") {
    current.offs.push(client.onReconnected(() => {
      if (session !== current || current.finished) return;
      ui.reconnecting.hidden = true;
      renderPeers(current);
    }));
  }
}

/** Unsubscribes and frees the previous client; the SDK has closed its socket by then. */
function disposeSession() {
  if (!session) return;
  const old = session;
  session = null;
  old.finished = true;
  for (const off of old.offs) {
    try {
      off();
    } catch (err) {
      console.warn("unsubscribe failed", err);
    }
  }
  try {
    old.client.free();
  } catch (err) {
    console.warn("freeing the client failed", err);
  }
}

// ---------------------------------------------------------------------------------------
// The room

function showRoom(current) {
  const { client } = current;
  const room = client.getRoom();
  const local = client.getLocalPeer();
  ui.roomName.textContent = room?.name || room?.id || "Room";
  ui.localRole.textContent = local ? `${local.name} · ${local.role.name}` : "";
  ui.endButton.hidden = !local?.role.permissions.endRoom;
  ui.reconnecting.hidden = true;
  ui.leaveButton.disabled = false;
  showError(ui.roomError, "");
  renderPeers(current);
  showScreen(ui.room);
  document.title = `${ui.roomName.textContent} · hms-client demo`;
}

function renderPeers(current) {
  const { client } = current;
  const local = client.getLocalPeer();
  const canRemove = Boolean(local?.role.permissions.removeOthers);
  const peers = client.getPeers().slice();
  // The local peer first, then everyone else by name: a list that doesn't jump around.
  peers.sort((a, b) => (b.isLocal - a.isLocal) || a.name.localeCompare(b.name) || a.peerId.localeCompare(b.peerId));

  const items = peers.map((peer) => {
    const li = document.createElement("li");
    li.className = "peer";
    li.dataset.testid = "peer";
    li.dataset.peerId = peer.peerId;
    li.dataset.peerName = peer.name;
    if (peer.isLocal) li.dataset.local = "true";

    const avatar = document.createElement("span");
    avatar.className = "avatar";
    avatar.setAttribute("aria-hidden", "true");
    avatar.textContent = initials(peer.name);
    // From the name, so a person has the same colour in every tab.
    avatar.style.setProperty("--hue", String(hue(peer.name)));

    const who = document.createElement("span");
    who.className = "who";
    const nameLine = document.createElement("span");
    nameLine.className = "name-line";
    const nameEl = document.createElement("span");
    nameEl.className = "peer-name";
    nameEl.dataset.testid = "peer-name";
    nameEl.textContent = peer.name;
    nameLine.append(nameEl);
    if (peer.isLocal) {
      const you = document.createElement("span");
      you.className = "you";
      you.dataset.testid = "peer-you";
      you.textContent = " (you)";
      nameLine.append(you);
    }
    who.append(nameLine);
    const role = document.createElement("span");
    role.className = "role";
    role.dataset.testid = "peer-role";
    role.textContent = peer.role.name;
    const roleLine = document.createElement("span");
    roleLine.className = "role-line";
    roleLine.append(role);
    who.append(roleLine);

    li.append(avatar, who);
    if (canRemove && !peer.isLocal) {
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "small danger-outline";
      remove.dataset.testid = "remove-button";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", `Remove ${peer.name}`);
      remove.addEventListener("click", () => openRemoveDialog(peer));
      li.append(remove);
    }
    return li;
  });
  ui.peerList.replaceChildren(...items);
  ui.peerCount.textContent = String(peers.length);
  // The person the remove dialog is about has gone: nothing left to confirm.
  if (removeTarget && !peers.some((p) => p.peerId === removeTarget.peerId) && ui.removeDialog.open) {
    ui.removeDialog.close();
  }
}

async function onLeave() {
  const current = session;
  if (!current || current.finished) return;
  ui.leaveButton.disabled = true;
  current.finished = true;
  try {
    await current.client.leave();
  } catch (err) {
    // Leaving a room whose socket has already gone still ends at the join screen.
    console.warn("leave failed", err);
  }
  showJoin();
}

// ---------------------------------------------------------------------------------------
// End room / remove

function openEndDialog() {
  ui.endReason.value = "";
  ui.endLock.checked = false;
  showError(ui.endError, "");
  ui.endConfirm.disabled = false;
  ui.endConfirm.textContent = "End room";
  ui.endDialog.showModal();
  ui.endReason.focus();
}

async function onEndSubmit(event) {
  event.preventDefault();
  const current = session;
  if (!current || current.finished) return;
  const reason = ui.endReason.value.trim() || DEFAULT_END_REASON;
  const lock = ui.endLock.checked;
  ui.endConfirm.disabled = true;
  ui.endConfirm.textContent = "Ending…";
  showError(ui.endError, "");
  try {
    await current.client.endRoom(lock, reason);
  } catch (err) {
    if (session !== current || current.finished) return;
    const info = errorInfo(err);
    showError(ui.endError, info.code === 403
      ? "Your role is not allowed to end this room."
      : `Could not end the room: ${info.message}`);
    ui.endConfirm.disabled = false;
    ui.endConfirm.textContent = "End room";
    return;
  }
  finish(current, {
    title: "Room ended",
    message: "You ended the room",
    detail: `Reason: ${reason}.${lock ? " The room is locked: nobody can join it again." : ""}`,
  });
}

function openRemoveDialog(peer) {
  removeTarget = { peerId: peer.peerId, name: peer.name };
  ui.removeWho.textContent = peer.name;
  ui.removeReason.value = "";
  showError(ui.removeError, "");
  ui.removeConfirm.disabled = false;
  ui.removeConfirm.textContent = "Remove";
  ui.removeDialog.showModal();
  ui.removeReason.focus();
}

async function onRemoveSubmit(event) {
  event.preventDefault();
  const current = session;
  const target = removeTarget;
  if (!current || current.finished || !target) return;
  const reason = ui.removeReason.value.trim() || DEFAULT_REMOVE_REASON;
  ui.removeConfirm.disabled = true;
  ui.removeConfirm.textContent = "Removing…";
  try {
    await current.client.removePeer(target.peerId, reason);
  } catch (err) {
    if (session !== current || current.finished) return;
    const info = errorInfo(err);
    showError(ui.removeError, info.code === 403
      ? "Your role is not allowed to remove people."
      : info.code === 404
        ? `${target.name} has already left.`
        : `Could not remove ${target.name}: ${info.message}`);
    ui.removeConfirm.disabled = false;
    ui.removeConfirm.textContent = "Remove";
    return;
  }
  if (ui.removeDialog.open) ui.removeDialog.close();
}

// ---------------------------------------------------------------------------------------
// The end of a session

function onRemoved(current, ev) {
  if (session !== current || current.finished) return;
  const by = ev.peerWhoRemoved;
  const reason = ev.reason ? `: ${ev.reason}` : "";
  let title;
  let message;
  if (ev.roomWasEnded) {
    title = "Room ended";
    message = by ? `${by.name} ended the room${reason}` : `The room was ended${reason}`;
  } else {
    title = "You were removed";
    message = by ? `${by.name} removed you${reason}` : `You were removed from the room${reason}`;
  }
  finish(current, { title, message, detail: "" });
}

/** `onError` means the session is over on its own (server error, connection gone for good). */
function onClientError(current, err) {
  if (session !== current || current.finished) return;
  const info = errorInfo(err);
  let message = "The connection to the room server was lost";
  if (isLocked(info)) message = "The room was locked while you were away";
  else if (info.code === 401 || info.name === "InvalidToken") message = "The server no longer accepts your access to this room";
  const detail = info.code === 1006 || info.name === "ReconnectFailed"
    ? "Reconnecting did not succeed. Check that the room server is running, then join again."
    : `${info.message} (${info.name} ${info.code ?? ""})`.trim();
  finish(current, { title: "Disconnected", message, detail });
}

/** Tears the room UI down and shows the ended screen; the first ending wins. */
function finish(current, { title, message, detail }) {
  if (current.finished) return;
  current.finished = true;
  for (const dialog of [ui.endDialog, ui.removeDialog]) if (dialog.open) dialog.close();
  ui.peerList.replaceChildren();
  ui.endedTitle.textContent = title;
  ui.endedMessage.textContent = message;
  ui.endedDetail.textContent = detail;
  ui.endedDetail.hidden = !detail;
  showScreen(ui.ended);
  document.title = `${title} · hms-client demo`;
  ui.backButton.focus();
}

// ---------------------------------------------------------------------------------------
// Start

function wire() {
  // An empty reason field sends the text its placeholder shows.
  ui.endReason.placeholder = DEFAULT_END_REASON;
  ui.removeReason.placeholder = DEFAULT_REMOVE_REASON;
  ui.joinForm.addEventListener("submit", onJoinSubmit);
  ui.leaveButton.addEventListener("click", onLeave);
  ui.endButton.addEventListener("click", openEndDialog);
  ui.endForm.addEventListener("submit", onEndSubmit);
  ui.endCancel.addEventListener("click", () => ui.endDialog.close());
  // No closing by Escape while the request is on its way: its answer decides the screen.
  ui.endDialog.addEventListener("cancel", (e) => { if (ui.endConfirm.disabled) e.preventDefault(); });
  ui.removeForm.addEventListener("submit", onRemoveSubmit);
  ui.removeCancel.addEventListener("click", () => ui.removeDialog.close());
  ui.removeDialog.addEventListener("cancel", (e) => { if (ui.removeConfirm.disabled) e.preventDefault(); });
  // Closing or reloading the tab: say goodbye, so the others' lists drop this peer now
  // rather than after the server's reconnect window. On beforeunload as well as pagehide:
  // Firefox may close the page's WebSocket (1001) before pagehide runs (seen in the e2e
  // tests); a second leave() is a no-op.
  const goodbye = () => {
    if (session && !session.finished) session.client.leave().catch(() => {});
  };
  window.addEventListener("beforeunload", goodbye);
  window.addEventListener("pagehide", goodbye);
  ui.backButton.addEventListener("click", () => {
    document.title = "hms-client demo";
    showJoin();
  });
}

async function start() {
  wire();
  try {
    const mod = await import(SDK_URL);
    await mod.default();
    sdk = mod;
  } catch (err) {
    ui.loadingText.textContent =
      `Could not load the SDK from ${SDK_URL} (${errorInfo(err).message}). ` +
      "Build it with scripts/build-pkg.sh and serve it with --pkg pkg.";
    ui.loadingText.classList.add("error");
    throw err;
  }
  document.body.dataset.ready = "true";
  showJoin();
}

start();
