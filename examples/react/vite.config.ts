// React's JSX transform and Fast Refresh; nothing here concerns hms-client or its .wasm.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({ plugins: [react()] });
