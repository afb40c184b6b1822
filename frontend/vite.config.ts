import { defineConfig } from "vite";

// Relative to this directory (Vite's root): the package's ui_dist, served by the server.
const outDir = "../src/branchline/server/ui_dist";

export default defineConfig({
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir,
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 600,
  },
  server: {
    port: 5173,
    proxy: { "/api": "http://127.0.0.1:8765" },
  },
});
