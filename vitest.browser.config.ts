import { defineConfig } from 'vitest/config'
import base from './vitest.config.ts'

/** Tests that drive a real chromium: `npm run test:browser` (CI installs Debian's chromium). */
export default defineConfig({
  test: { ...base.test, include: ['test/browser/**/*.test.ts'], exclude: ['node_modules/**'] },
})
