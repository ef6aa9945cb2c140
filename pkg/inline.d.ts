// Types of the "hms-client/inline" entry: the same as the main entry.
export * from "./index.js";
export { default } from "./index.js";
