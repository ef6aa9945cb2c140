// A React hook around one HmsClient: the component that uses it is "in the room". Mounting
// creates the client, subscribes and joins; unmounting unsubscribes, leaves and frees.
// Under StrictMode, React mounts, unmounts and mounts again in development: the first
// client is cleaned up before its token request returns, so it never joins.

import { useCallback, useEffect, useRef, useState } from "react";
import { HmsClient, type HmsPeer, type RemovedFromRoomEvent } from "hms-client";

export type RoomState =
  | { phase: "joining" }
  | { phase: "joined"; roomName: string; me: HmsPeer; peers: HmsPeer[] }
  | { phase: "ended"; message: string }
  | { phase: "failed"; error: unknown };

/** Who ended the room or removed us, and why, in words. */
function removedMessage(ev: RemovedFromRoomEvent): string {
  const who = ev.peerWhoRemoved?.name;
  const what = ev.roomWasEnded ? (who ? `${who} ended the room` : "The room was ended") : `${who ?? "The server"} removed you`;
  return `${what}: ${ev.reason}`;
}

export function useHmsRoom(endpoint: string, roomCode: string, userName: string) {
  const [state, setState] = useState<RoomState>({ phase: "joining" });
  const clientRef = useRef<HmsClient | null>(null);

  useEffect(() => {
    let active = true; // false once this effect is cleaned up
    const client = new HmsClient({ endpoint });
    clientRef.current = client;

    const update = () => {
      if (!active) return;
      const me = client.getLocalPeer();
      if (me) setState({ phase: "joined", roomName: client.getRoom()?.name ?? "", me, peers: client.getPeers() });
    };
    const unsubscribe = [
      client.onPeerJoin(update),
      client.onPeerLeave(update),
      client.onRemovedFromRoom((ev) => active && setState({ phase: "ended", message: removedMessage(ev) })),
    ];
    // Closing the tab unmounts nothing: say goodbye then too (on beforeunload as well as
    // pagehide: Firefox may close the page's WebSocket before pagehide runs).
    const goodbye = () => void client.leave().catch(() => {});
    const pageEvents = ["beforeunload", "pagehide"] as const;
    for (const event of pageEvents) addEventListener(event, goodbye);

    (async () => {
      try {
        const authToken = await client.getAuthTokenByRoomCode(roomCode);
        if (!active) return; // unmounted while the token was on its way: never join
        await client.join({ authToken, userName });
        update();
      } catch (error) {
        if (active) setState({ phase: "failed", error });
      }
    })();

    return () => {
      active = false;
      for (const event of pageEvents) removeEventListener(event, goodbye);
      for (const off of unsubscribe) off();
      client.leave().catch(() => {}); // tells the server now; free() below releases the rest
      client.free();
      if (clientRef.current === client) clientRef.current = null;
    };
  }, [endpoint, roomCode, userName]);

  /** Ends the room for everyone; resolves once the server has done it. */
  const endRoom = useCallback(async (lock: boolean, reason: string) => {
    const client = clientRef.current;
    if (!client) return;
    await client.endRoom(lock, reason);
    setState({ phase: "ended", message: `You ended the room: ${reason}` });
  }, []);

  return { state, endRoom };
}
