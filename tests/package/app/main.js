// The smallest app on the hms-client package, built unchanged by every toolchain of the
// package tests (tests/package/build.mjs) and run by tests/e2e/toolchains.test.mjs:
// `?ws=<WebSocket endpoint>&code=<room code>&end=1` joins with the room code, and with
// end=1 ends the room with a lock. It reports in <body data-*> and in the page text.
import init, { HmsClient, HmsError } from "hms-client";

const params = new URLSearchParams(location.search);
const report = (key, value) => {
  document.body.dataset[key] = value;
  document.getElementById("log").textContent += `${key}: ${value}\n`;
};
const describe = (e) => (e instanceof HmsError ? `HmsError ${e.code} ${e.name}` : `${e?.name}: ${e?.message}`);

// No top-level await: Vite 6's default build target does not allow it.
async function main() {
  try {
    new HmsClient({ endpoint: params.get("ws") });
    report("beforeInit", "no error");
  } catch (e) {
    report("beforeInit", `${describe(e)} instanceof Error=${e instanceof Error}`);
  }

  try {
    await init();
    const client = new HmsClient({ endpoint: params.get("ws") });
    const token = await client.getAuthTokenByRoomCode(params.get("code"));
    await client.join({ authToken: token, userName: "Tess" });
    report("role", client.getLocalPeer()?.role.name ?? "?");
    if (params.get("end") === "1") {
      await client.endRoom(true, "Toolchain check done");
      report("ended", "yes");
    }
    report("result", "ok");
  } catch (e) {
    report("result", describe(e));
  }
}

main();
