// Only under lib esnext (tsconfig.esnext.json): `using` needs TypeScript's Disposable type.
import { HmsClient } from "hms-client";

export function peersOnce(endpoint: string): number {
  using client = new HmsClient({ endpoint });
  return client.getPeers().length;
}
