// Compiled by `tsc --strict` (tests/package/tsconfig.*.json, TypeScript 5 and 7) against the
// package as installed from its tarball: the declarations must type-check without
// skipLibCheck under lib ["es2022", "dom"] and ["esnext", "dom"], and describe the API
// precisely (the @ts-expect-error lines fail the build if a type became too loose).
import init, { HmsClient, HmsError } from "hms-client";
import initInline, { HmsClient as InlineClient } from "hms-client/inline";
import type { HmsPeer, HmsRemovedCallback, RemovedFromRoomEvent } from "hms-client";

export async function run(code: string): Promise<string> {
  await init();
  await initInline();
  const client: HmsClient = new InlineClient({ endpoint: "ws://127.0.0.1:7880/ws", requestTimeoutMs: 5000 });
  const token: string = await client.getAuthTokenByRoomCode(code, { userId: "u1" });
  await client.join({ authToken: token, userName: "Ada" });
  const me: HmsPeer | undefined = client.getLocalPeer();
  const onRemoved: HmsRemovedCallback = (ev: RemovedFromRoomEvent) => {
    const who: string = ev.peerWhoRemoved?.name ?? "the server";
    console.log(who, ev.reason, ev.roomWasEnded);
  };
  const off: () => void = client.onRemovedFromRoom(onRemoved);
  try {
    if (me?.role.permissions.endRoom) await client.endRoom(true, "Meeting over");
  } catch (e) {
    if (e instanceof HmsError) {
      const code: number = e.code;
      return `${code} ${e.name} ${e.message}`;
    }
    throw e;
  } finally {
    off();
  }
  // @ts-expect-error endRoom takes (lock, reason)
  await client.endRoom("Meeting over");
  // @ts-expect-error the options need an endpoint
  new HmsClient({});
  client.free();
  return "ok";
}
