// The package's entry with the WebAssembly module inlined in JS (base64): nothing to fetch,
// so it works with every toolchain, including those that do not emit assets referenced by
// `new URL(..., import.meta.url)` (esbuild, Rollup), and in Node. It costs more bytes than
// fetching the .wasm file (README.md, "Bundlers"). The package's `exports` give it to
// toolchains that set neither the "development" nor the "production" condition.

export * from "./hms_client.js";
export { HmsClient, initSync } from "./loader.js";
import { makeInit } from "./loader.js";
import wasmBytes from "./hms_client_bg_inline.js";

/** Loads the WebAssembly module (from the inlined bytes unless `input` says otherwise). */
export default makeInit(async () => wasmBytes());
