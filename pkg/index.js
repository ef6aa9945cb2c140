// The package's main entry for browsers and for bundlers that emit assets referenced by
// `new URL(..., import.meta.url)` (webpack 5, Vite): init() fetches hms_client_bg.wasm
// from beside this module, or from where the bundler put it.
// Where that file is missing or answered by something else (Vite 6's dev server answers
// with its HTML page), it falls back to the copy inlined in JS, loaded only then.

export * from "./hms_client.js";
export { HmsClient, initSync } from "./loader.js";
import { makeInit } from "./loader.js";

const WASM_MAGIC = [0x00, 0x61, 0x73, 0x6d];

async function fetchWasm() {
  try {
    const res = await fetch(new URL("./hms_client_bg.wasm", import.meta.url));
    if (res.ok) {
      // The right MIME type allows streaming compilation; else check the bytes ourselves.
      if (res.headers.get("content-type")?.split(";")[0].trim() === "application/wasm") return res;
      const bytes = new Uint8Array(await res.arrayBuffer());
      if (WASM_MAGIC.every((b, i) => bytes[i] === b)) return bytes;
    }
  } catch {
    // No fetch of that URL here (no network, a file: URL, no import.meta.url): the inline copy.
  }
  const { default: wasmBytes } = await import("./hms_client_bg_inline.js");
  return wasmBytes();
}

/**
 * Loads the WebAssembly module; call it (once is enough) before `new HmsClient()`.
 * `input` is optional: a URL, a `Response`, bytes or a `WebAssembly.Module`, as
 * wasm-bindgen's init takes.
 */
export default makeInit(fetchWasm);
