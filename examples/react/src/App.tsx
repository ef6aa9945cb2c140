// hms-client in a React app: join with a room code, see who is there, end the room for
// everyone (with a reason and a lock), and show who ended it and why. The room server is
// ?server=http://host:port, else the origin this page came from.

import { useEffect, useState, type FormEvent } from "react";
import { HmsError } from "hms-client";
import { useHmsRoom } from "./useHmsRoom";

const params = new URLSearchParams(location.search);
const server = new URL(params.get("server") ?? location.origin);
const endpoint = `${server.protocol === "https:" ? "wss:" : "ws:"}//${server.host}/ws`;

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

type Joining = { name: string; code: string };

export function App() {
  const [joining, setJoining] = useState<Joining | null>(null);
  const [error, setError] = useState("");
  const [name, setName] = useState("");
  const [code, setCode] = useState(params.get("code") ?? "");

  if (joining) {
    return (
      <Room
        {...joining}
        onExit={(why) => {
          setError(why);
          setJoining(null);
        }}
      />
    );
  }

  const submit = (ev: FormEvent) => {
    ev.preventDefault();
    setError("");
    setJoining({ name: name.trim(), code: code.trim() });
  };
  return (
    <form data-testid="join-screen" onSubmit={submit}>
      <h1>Join a room</h1>
      <label>
        Your name <input data-testid="join-name" required value={name} onChange={(e) => setName(e.target.value)} />
      </label>
      <label>
        Room code <input data-testid="join-code" required value={code} onChange={(e) => setCode(e.target.value)} />
      </label>
      <button data-testid="join-submit">Join</button>
      {error && <p className="error" data-testid="join-error" role="alert">{error}</p>}
    </form>
  );
}

/** In the room: mounted while joining or joined; unmounting leaves (useHmsRoom). */
function Room({ name, code, onExit }: Joining & { onExit: (why: string) => void }) {
  const { state, endRoom } = useHmsRoom(endpoint, code, name);
  const [reason, setReason] = useState("");
  const [lock, setLock] = useState(false);
  const [endError, setEndError] = useState("");

  useEffect(() => {
    if (state.phase === "failed") onExit(describe(state.error));
  }, [state, onExit]);

  if (state.phase === "joining" || state.phase === "failed") return <p data-testid="joining">Joining…</p>;
  if (state.phase === "ended") {
    return (
      <section data-testid="ended-screen">
        <h1 data-testid="ended-message">{state.message}</h1>
        <button data-testid="back-button" onClick={() => onExit("")}>Back</button>
      </section>
    );
  }

  const end = async (ev: FormEvent) => {
    ev.preventDefault();
    try {
      await endRoom(lock, reason.trim() || "The meeting is over");
    } catch (e) {
      setEndError(describe(e));
    }
  };
  return (
    <section data-testid="room-screen">
      <h1 data-testid="room-name">{state.roomName}</h1>
      <p>
        You are <strong data-testid="local-role">{state.me.role.name}</strong>.
      </p>
      <ul data-testid="peer-list">
        {state.peers.map((peer) => (
          <li key={peer.peerId} data-testid="peer">
            {peer.name}
            {peer.isLocal ? " (you)" : ""} · {peer.role.name}
          </li>
        ))}
      </ul>
      <button data-testid="leave-button" onClick={() => onExit("")}>Leave</button>
      {state.me.role.permissions.endRoom && (
        <form data-testid="end-form" onSubmit={end}>
          <h2>End the room for everyone</h2>
          <label>
            Reason <input data-testid="end-reason" maxLength={200} placeholder="The meeting is over" value={reason} onChange={(e) => setReason(e.target.value)} />
          </label>
          <label>
            <input data-testid="end-lock" type="checkbox" checked={lock} onChange={(e) => setLock(e.target.checked)} /> Lock it: nobody can join again
          </label>
          <button className="danger" data-testid="end-submit">End room</button>
          {endError && <p className="error" data-testid="end-error" role="alert">{endError}</p>}
        </form>
      )}
    </section>
  );
}
