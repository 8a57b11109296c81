import { resolve } from "node:path";
import { defineConfig } from "vite";

// One HTML entry per page; the build lands inside the Python package so `nchat-live serve` ships it
// without Node. The app serves the folder under /ui/ and the pages at /console, /watch/{id}, ...
export default defineConfig({
  base: "/ui/",
  build: {
    outDir: resolve(import.meta.dirname, "../src/nchat_live/web/static"),
    emptyOutDir: true,
    target: "es2020",
    sourcemap: false,
    rollupOptions: {
      input: {
        console: resolve(import.meta.dirname, "console.html"),
        watch: resolve(import.meta.dirname, "watch.html"),
        schedule: resolve(import.meta.dirname, "schedule.html"),
        dashboard: resolve(import.meta.dirname, "dashboard.html"),
        guest: resolve(import.meta.dirname, "guest.html"),
      },
    },
  },
  server: {
    proxy: {
      "/v1": { target: "http://127.0.0.1:8080", ws: true },
      "/whip": "http://127.0.0.1:8080",
      "/hls": "http://127.0.0.1:8080",
    },
  },
});
