import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// The IT console: static files built into the hub binary (crates/hub/build.rs embeds
// dist/), served at `/` under a strict Content-Security-Policy: no inline script or
// style, so nothing here may rely on one. Tests run the pure helpers with Vitest.
export default defineConfig({
  plugins: [svelte({ emitCss: true })],
  clearScreen: false,
  build: { outDir: "dist", emptyOutDir: true, target: "es2022", cssCodeSplit: false, assetsInlineLimit: 0 },
  test: { include: ["src/**/*.test.ts"] },
});
