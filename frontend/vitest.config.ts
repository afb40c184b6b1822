import { defineConfig } from "vitest/config";

// Unit tests of the web app's pure modules (src/lib); the browser tests in tests/ cover the pages.
export default defineConfig({
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
