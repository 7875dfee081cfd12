#!/usr/bin/env node
// Node >= 22.18 strips TypeScript types by default; 22.12–22.17 need the flag, so re-run with it.
import './check-node.js'
import { spawnSync } from 'node:child_process'
import v8 from 'node:v8'

if (!process.features.typescript) {
  const result = spawnSync(
    process.execPath,
    ['--experimental-strip-types', '--no-warnings=ExperimentalWarning', ...process.argv.slice(1)],
    { stdio: 'inherit' },
  )
  process.exit(result.status ?? 1)
}

tuneGarbageCollection()

const { main, reportFatal } = await import('../src/cli.ts')
try {
  const code = await main(process.argv.slice(2))
  if (code !== 0) process.exitCode = code
} catch (error) {
  reportFatal(error)
  process.exitCode = 1
}

/**
 * Upload bodies arrive as 64 KiB buffers held outside V8's heap, about 4,000 a second. With V8's
 * defaults, tusbox's modules grow the young generation to 16 MiB while loading, so young
 * collections come too rarely to free those buffers, and V8 marks the whole heap, again and again,
 * to free them: about half the CPU of a PATCH went to it (docs/benchmarks.md). Kept at its initial
 * size, the young generation frees most buffers young; with the old generation allowed to double
 * before a full collection, the few that live longer no longer force one every few megabytes.
 * Measured in one run (4 rounds of 512 MiB): CPU per PATCH 2.6 s → 1.3 s, peak RSS 207 → 144 MiB.
 * Both flags are read whenever V8 sizes a space, so they apply though the heap already exists
 * (Node accepts neither in NODE_OPTIONS). A flag given on the command line, or
 * --max-semi-space-size in NODE_OPTIONS, wins.
 */
function tuneGarbageCollection() {
  const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' ')
  // --max-semi-space-size and --semi-space-growth-factor both size the young generation.
  if (!given.includes('semi-space')) v8.setFlagsFromString('--semi-space-growth-factor=1')
  if (!given.includes('heap-growing')) v8.setFlagsFromString('--heap-growing-percent=100')
}
