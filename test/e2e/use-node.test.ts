import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { runCommand } from '../helpers/run-command.ts'

const SCRIPT = path.resolve(import.meta.dirname, '../../scripts/use-node.sh')

/**
 * npm stands in for the registry download only, which takes tens of seconds for Node's 50 MB:
 * `npm install --prefix DIR node@24` links the Node running this test where the real package
 * puts its binary. Everything use-node.sh itself does (temporary folder, version check, rename,
 * replacing a broken install) runs for real. Installs wait until FAKE_NPM_PARALLEL of them have
 * started, so concurrent shells really overlap; FAKE_NPM_MODE=fail leaves a partial install.
 * Each install's --prefix is logged: two npm installs into one prefix at once is what broke it.
 */
const FAKE_NPM = `#!/bin/sh
case "$1" in
  config) echo undefined; exit 0 ;;
  --version) echo 0.0.0-fake; exit 0 ;;
esac
prefix=
while [ $# -gt 0 ]; do
  if [ "$1" = --prefix ]; then prefix="$2"; fi
  shift
done
echo "$prefix" >> "$FAKE_NPM_STARTED/../prefixes"
mkdir -p "$prefix/node_modules/.bin"
touch "$FAKE_NPM_STARTED/$$"
while [ "$(ls "$FAKE_NPM_STARTED" | wc -l)" -lt "$FAKE_NPM_PARALLEL" ]; do sleep 0.05; done
if [ "$FAKE_NPM_MODE" = fail ]; then
  echo 'half a binary' > "$prefix/node_modules/.bin/node"
  exit 1
fi
ln -s "$REAL_NODE" "$prefix/node_modules/.bin/node"
`

/** Debian's Node 20, older than tusbox needs, is what a shell without the set-up finds. */
const OLD_NODE_PATH = '/usr/bin:/bin'

describe('scripts/use-node.sh', () => {
  let work: string
  let nodeDir: string
  let fakeBin: string

  beforeEach(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'tusbox-use-node-'))
    nodeDir = path.join(work, 'cache', 'tusbox-node')
    fakeBin = path.join(work, 'bin')
    await mkdir(fakeBin)
    await writeFile(path.join(fakeBin, 'npm'), FAKE_NPM)
    await chmod(path.join(fakeBin, 'npm'), 0o755)
  })

  afterEach(async () => {
    await rm(work, { recursive: true, force: true })
  })

  async function sourceIt(options: { parallel?: number; mode?: 'fail' } = {}) {
    const started = path.join(work, `started-${options.parallel ?? 1}-${options.mode ?? 'ok'}`)
    await mkdir(started, { recursive: true })
    const { code, stdout, stderr } = await runCommand(
      'bash',
      ['-c', `source "${SCRIPT}" && node --version`],
      {
        env: {
          PATH: `${fakeBin}:${OLD_NODE_PATH}`,
          HOME: work,
          TUSBOX_NODE_DIR: nodeDir,
          REAL_NODE: process.execPath,
          FAKE_NPM_STARTED: started,
          FAKE_NPM_PARALLEL: String(options.parallel ?? 1),
          FAKE_NPM_MODE: options.mode ?? '',
        },
      },
    )
    return { code, stdout: stdout.trim(), stderr }
  }

  /** Nothing but the install is left beside it: no temporary or moved-aside folders. */
  async function expectOnlyTheInstall() {
    expect(await readdir(path.dirname(nodeDir))).toEqual(['tusbox-node'])
  }

  it('starts from an old Node: this test would prove nothing on a new one', async () => {
    const { stdout: version } = await runCommand('bash', ['-c', 'node --version'], {
      env: { PATH: OLD_NODE_PATH },
    })
    const [major = 0, minor = 0] = version.trim().slice(1).split('.').map(Number)
    expect(major < 22 || (major === 22 && minor < 12)).toBe(true)
  })

  it('installs, checks and renames Node into place, and the next shell reuses it', async () => {
    const first = await sourceIt()
    expect(first.code).toBe(0)
    expect(first.stdout).toBe(process.version)
    expect(first.stderr).toContain(`installing node@24 into ${nodeDir}`)
    await expectOnlyTheInstall()

    const second = await sourceIt()
    expect(second.code).toBe(0)
    expect(second.stdout).toBe(process.version)
    expect(second.stderr).not.toContain('installing')
  })

  it('leaves one working install when two shells source it at the same time', async () => {
    const results = await Promise.all([sourceIt({ parallel: 2 }), sourceIt({ parallel: 2 })])
    for (const result of results) {
      expect(result.code).toBe(0)
      expect(result.stdout).toBe(process.version)
    }
    const prefixes = (await readFile(path.join(work, 'prefixes'), 'utf8')).trim().split('\n')
    expect(prefixes).toHaveLength(2)
    expect(new Set(prefixes).size).toBe(2)
    expect(prefixes).not.toContain(nodeDir)
    await expectOnlyTheInstall()
    expect((await sourceIt()).stderr).not.toContain('installing')
  })

  it('replaces a broken install instead of using it', async () => {
    await mkdir(path.join(nodeDir, 'node_modules', '.bin'), { recursive: true })
    await writeFile(path.join(nodeDir, 'node_modules', '.bin', 'node'), 'half a binary')

    const result = await sourceIt()

    expect(result.code).toBe(0)
    expect(result.stdout).toBe(process.version)
    await expectOnlyTheInstall()
  })

  it('fails with a clear line when the install fails, leaving nothing that a later shell would reuse', async () => {
    const failed = await sourceIt({ mode: 'fail' })
    expect(failed.code).toBe(1)
    expect(failed.stderr).toContain('could not get Node.js >= 22.12')
    expect(await readdir(path.dirname(nodeDir))).toEqual([])

    const next = await sourceIt()
    expect(next.code).toBe(0)
    expect(next.stdout).toBe(process.version)
  })
})
