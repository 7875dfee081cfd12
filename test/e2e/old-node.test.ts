import { execFileSync } from 'node:child_process'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { runCommand } from '../helpers/run-command.ts'

const ROOT = path.resolve(import.meta.dirname, '../..')

/**
 * A shell without `source scripts/use-node.sh`: the system's Node and npm only. Debian's Node 20
 * at /usr/bin/node is the old Node a new user has (TUSBOX_OLD_NODE_DIR names another directory).
 */
const OLD_NODE_DIR = process.env.TUSBOX_OLD_NODE_DIR ?? '/usr/bin'

function oldNodeVersion(): string {
  return execFileSync(path.join(OLD_NODE_DIR, 'node'), ['--version'], { encoding: 'utf8' }).trim()
}

async function runInOldShell(command: string, args: readonly string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${OLD_NODE_DIR}:/bin` }
  // The npm running this test passes its own settings down; the old shell has none of them.
  for (const name of Object.keys(env)) if (name.startsWith('npm_')) delete env[name]
  const { code, stdout, stderr } = await runCommand(command, args, { cwd: ROOT, env })
  return { code, output: stdout + stderr }
}

describe('a shell without the Node set-up, on an older Node', () => {
  it('runs a Node older than 22.12 here, or this test proves nothing', () => {
    const [major = 0, minor = 0] = oldNodeVersion().slice(1).split('.').map(Number)
    expect(major < 22 || (major === 22 && minor < 12)).toBe(true)
  })

  it.each([
    ['npx tusbox --help', 'npx', ['tusbox', '--help']],
    ['npm start', 'npm', ['start']],
    ['npm test', 'npm', ['test']],
  ])('%s exits 1 saying what to run instead of npm EBADENGINE', async (_name, command, args) => {
    const { code, output } = await runInOldShell(command, args)
    expect(code).toBe(1)
    expect(output).toContain(
      `tusbox needs Node.js 22.12 or newer; this shell runs ${oldNodeVersion()}.`,
    )
    expect(output).toContain('run `source scripts/use-node.sh`')
    expect(output).not.toContain('npm error code EBADENGINE')
  })
})
