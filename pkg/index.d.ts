// Types of the package entries: those of the wasm-bindgen glue (hms_client.d.ts), whose
// init (the default export) and initSync the entries wrap with the same signatures.
export * from "./hms_client.js";
export { default } from "./hms_client.js";
