#!/usr/bin/env node
// Node >= 22.18 strips TypeScript types by default; 22.12–22.17 need the flag, so re-run with it.
import { spawnSync } from 'node:child_process'

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 12)) {
  process.stderr.write(
    `tusbox needs Node.js 22.12 or newer; this is ${process.version}. Install Node 24 (nvm install 24), or run \`source scripts/use-node.sh\` in this checkout.\n`,
  )
  process.exit(1)
}

if (!process.features.typescript) {
  const result = spawnSync(
    process.execPath,
    ['--experimental-strip-types', '--no-warnings=ExperimentalWarning', ...process.argv.slice(1)],
    { stdio: 'inherit' },
  )
  process.exit(result.status ?? 1)
}

const { main, reportFatal } = await import('../src/cli.ts')
try {
  const code = await main(process.argv.slice(2))
  if (code !== 0) process.exitCode = code
} catch (error) {
  reportFatal(error)
  process.exitCode = 1
}
