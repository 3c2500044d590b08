/// <reference types="vitest" />
import { defineConfig } from "vite";

// During `npm run dev` the API and the WebSocket gateway are reached through the local
// load balancer (nginx on 8080 by default), exactly like the built client does in production.
const backend = process.env.BACKEND_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  base: "/",
  esbuild: {
    jsx: "automatic",
    jsxImportSource: "preact",
  },
  build: {
    outDir: "dist",
    sourcemap: true,
    target: "es2020",
  },
  server: {
    proxy: {
      "/api": { target: backend, changeOrigin: true },
      "/ws": { target: backend.replace(/^http/, "ws"), ws: true },
    },
  },
  test: {
    include: ["test/**/*.test.ts", "test/**/*.test.tsx"],
    environment: "node",
    pool: "threads",
    poolOptions: { threads: { maxThreads: 1, minThreads: 1 } },
  },
});
