// Vite builds the web app into web/dist (git-ignored), which the gateway serves at /. Files under
// assets/ carry a content hash in their names, so the gateway can let browsers cache them for a year.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    // No inline <script>: the gateway's Content-Security-Policy allows scripts from 'self' only.
    modulePreload: { polyfill: false },
    sourcemap: false,
    chunkSizeWarningLimit: 1024,
  },
  // `vite web` during development: the app at :5173 talks to a gateway at :8080 (CORS allows it).
  server: { fs: { allow: [".."] } },
});
