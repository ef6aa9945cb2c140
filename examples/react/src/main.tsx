import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import init from "hms-client";
import { App } from "./App";
import "./style.css";

// Load the WebAssembly once, before anything can make an HmsClient.
await init();

const root = document.getElementById("root");
if (!root) throw new Error("#root is missing from index.html");
// StrictMode mounts every component twice in development: useHmsRoom must clean up fully.
createRoot(root).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
