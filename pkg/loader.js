// What both entries (index.js, inline.js) share: loading the WebAssembly module once, and
// a clear HmsError instead of a TypeError when the SDK is used before it is loaded.
// Hand-written; the generated wasm-bindgen glue is ./hms_client.js.

import wasmInit, { initSync as wasmInitSync, HmsClient as WasmHmsClient, HmsError } from "./hms_client.js";

// The HmsError for "used before init()", as the SDK's Rust side would make it: its error
// table (src/error.rs, NotInitialized) has no wasm to run yet, so the fields are copied
// here, and tests/package_entry.rs fails when they and the Rust table disagree.
const NOT_INITIALIZED = { name: "NotInitialized", code: 9002, action: "INIT", isTerminal: false };

let loaded; // the module's exports, once init() or initSync() has finished
let loading; // init()'s promise while (or since) it runs

/** The HmsError the SDK would make, made here because the module that makes them is not loaded. */
function notInitialized() {
  // The wasm does the same chaining once loaded; until then instanceof Error would fail.
  Object.setPrototypeOf(HmsError.prototype, Error.prototype);
  const { name, ...details } = NOT_INITIALIZED;
  const err = Object.assign(new Error("hms-client is not initialized: await init() (the package's default export) before new HmsClient()"), details);
  err.name = name;
  return Object.setPrototypeOf(err, HmsError.prototype);
}

/** `HmsClient`, refusing with an HmsError until init() or initSync() has finished. */
export class HmsClient extends WasmHmsClient {
  constructor(options) {
    if (!loaded) throw notInitialized();
    super(options);
  }
}

/** wasm-bindgen's initSync, marking the SDK ready. */
export function initSync(module) {
  loaded ??= wasmInitSync(module);
  return loaded;
}

/**
 * The default export of an entry: init(input?) loads the module once (concurrent and
 * repeated calls share one load, a failed load may be retried). Without `input` the bytes
 * come from `defaultSource()`.
 */
export function makeInit(defaultSource) {
  return function init(input) {
    if (loaded) return Promise.resolve(loaded);
    loading ??= (async () => {
      loaded = await wasmInit(input === undefined ? { module_or_path: await defaultSource() } : input);
      return loaded;
    })().catch((err) => {
      loading = undefined;
      throw err;
    });
    return loading;
  };
}
