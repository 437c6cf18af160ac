// Runs the suite from this folder (the package sits under node_modules,
// which vitest's default test discovery skips).
import { defineConfig } from "vitest/config"

export default defineConfig({
  test: { include: ["*.test.mjs"], testTimeout: 30000, hookTimeout: 30000 },
})
