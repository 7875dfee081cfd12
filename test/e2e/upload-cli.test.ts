import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { FileOutcome, UploadRunResult } from '../../src/client/upload-run.ts'
import { csvBytes, elfBytes, MiB, pngBytes, sha256 } from '../helpers/fixtures.ts'
import { startPausingProxy } from '../helpers/pausing-proxy.ts'
import { closedPort } from '../helpers/ports.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { jwtSettings, signHs256 } from '../helpers/tokens.ts'
import { runTusbox, spawnTusbox } from '../helpers/tusbox-process.ts'

/** ESC: every ANSI sequence starts with it. */
const ESCAPE = '\u001b'

type Output = UploadRunResult & { endpoint: string }

let workDir: string
let configDir: string

beforeEach(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), 'tusbox-upload-cli-'))
  configDir = path.join(workDir, 'config')
})

afterEach(async () => {
  await rm(workDir, { recursive: true, force: true })
})

/** Writes `bytes` at `relative` under the test's directory; returns the absolute path. */
async function file(relative: string, bytes: Uint8Array): Promise<string> {
  const absolute = path.join(workDir, relative)
  await mkdir(path.dirname(absolute), { recursive: true })
  await writeFile(absolute, bytes)
  return absolute
}

/** What the CLI keeps between runs: uploads to resume, batches left open. */
async function resumeEntries(kind: 'uploads' | 'batches' = 'uploads'): Promise<string[]> {
  return readdir(path.join(configDir, kind)).catch(() => [])
}

async function upload(endpoint: string, args: readonly string[], env: Record<string, string> = {}) {
  const result = await runTusbox(['upload', '--endpoint', endpoint, ...args], {
    TUSBOX_CONFIG_DIR: configDir,
    ...env,
  })
  // Run with pipes, as in CI: plain lines only.
  expect(result.stdout).not.toContain(ESCAPE)
  expect(result.stderr).not.toContain(ESCAPE)
  return result
}

function outcome(output: Output, name: string): FileOutcome {
  const found = output.files.find((entry) => path.basename(entry.path) === name)
  if (!found) throw new Error(`no outcome for ${name} in ${JSON.stringify(output)}`)
  return found
}

describe('tusbox upload against a server without authentication', () => {
  let server: TestServer

  beforeAll(async () => {
    server = await startTestServer()
  })

  afterAll(async () => {
    await server?.close()
  })

  it('uploads files and a directory, prints each one STORED with the sha256 of its bytes, and exits 0', async () => {
    const photo = pngBytes(300_000)
    const report = csvBytes(200)
    const data = Buffer.from('{"answer": 42}\n')
    const photoPath = await file('photo.png', photo)
    const docs = path.join(workDir, 'docs')
    await file('docs/report.csv', report)
    await file('docs/nested/data.json', data)
    await file('docs/.secret.txt', Buffer.from('not for upload\n'))
    await file('elsewhere/outside.png', pngBytes(1_000))
    await symlink(path.join(workDir, 'elsewhere/outside.png'), path.join(docs, 'link.png'))

    const result = await upload(server.tusEndpoint, [photoPath, docs])

    expect(result.code).toBe(0)
    const lines = result.stdout.split('\n')
    for (const [relative, bytes] of [
      ['photo.png', photo],
      ['docs/report.csv', report],
      ['docs/nested/data.json', data],
    ] as const) {
      const line = lines.find((candidate) => candidate.includes(path.join(workDir, relative)))
      expect(line).toMatch(new RegExp(`^STORED +\\S+ +id [0-9a-f-]{36} +sha256 ${sha256(bytes)}$`))
    }
    expect(result.stdout).not.toContain('.secret.txt')
    expect(result.stdout).not.toContain('link.png')
    expect(result.stderr).toContain(`Skipped 1 (hidden): ${path.join(docs, '.secret.txt')}`)
    expect(result.stderr).toContain(`Skipped 1 (symlinks, not followed inside directories)`)

    const rows = await server
      .knex('upload_files')
      .whereIn('filename', ['photo.png', 'report.csv', 'data.json'])
    expect(rows.map((row) => row.status)).toEqual(['STORED', 'STORED', 'STORED'])
    const csv = rows.find((row) => row.filename === 'report.csv')
    // Declared from the extension: text has no magic number, so only a declared text/csv is kept.
    expect(csv.detected_type).toBe('text/csv')
    expect(csv.metadata.relativePath).toBe('docs/report.csv')
    expect(await resumeEntries()).toEqual([])
  })

  it('exits 1 and reports a disallowed file FAILED with the server reason, storing the others', async () => {
    const good = await file('good.png', pngBytes(5_000))
    const tool = await file('tool.bin', elfBytes(5_000))

    const result = await upload(server.tusEndpoint, ['--json', good, tool])

    expect(result.code).toBe(1)
    const output = JSON.parse(result.stdout) as Output
    expect(outcome(output, 'good.png').status).toBe('STORED')
    const failed = outcome(output, 'tool.bin')
    expect(failed).toMatchObject({ status: 'FAILED', error: { code: 'unsupported_file_type' } })
    expect(failed.error?.message).toContain('application/x-elf')
    expect((await server.knex('upload_files').where({ id: failed.id }).first()).status).toBe(
      'FAILED',
    )
    expect(result.stderr).toContain('FAILED')
    // Resuming a refused upload is pointless: its entry is gone too.
    expect(await resumeEntries()).toEqual([])
  })

  it('reports a file over the server limit with its size, the limit and the setting to change', async () => {
    const small = await startTestServer({ FILE_UPLOAD_MAX_SIZE: '10000' })
    try {
      const big = await file('big.png', pngBytes(12_345))
      const result = await upload(small.tusEndpoint, [big])
      expect(result.code).toBe(1)
      expect(result.stdout + result.stderr).toContain(
        'The file is 12345 bytes; the limit is 10000 bytes (FILE_UPLOAD_MAX_SIZE on the server).',
      )
    } finally {
      await small.close()
    }
  })

  it('with --batch puts every file in one batch, completes it and records batch.completed', async () => {
    const paths = await Promise.all(
      ['a.png', 'b.png', 'c.csv'].map((name, index) =>
        file(`batch/${name}`, name.endsWith('.csv') ? csvBytes(10 + index) : pngBytes(3_000)),
      ),
    )

    const result = await upload(server.tusEndpoint, ['--batch', '--json', ...paths])

    expect(result.code).toBe(0)
    const output = JSON.parse(result.stdout) as Output
    expect(output.batch).toEqual({ id: expect.any(String), state: 'completed' })
    const batchId = output.batch?.id
    const ids = output.files.map((entry) => entry.id)
    const rows = await server.knex('upload_files').whereIn('id', ids as string[])
    expect(rows.map((row) => row.batch_id)).toEqual([batchId, batchId, batchId])
    const events = await server
      .knex('outbox_events')
      .where({ event_type: 'batch.completed', aggregate_id: batchId })
    expect(events).toHaveLength(1)
    expect([...events[0].payload.fileIds].sort()).toEqual([...ids].sort())
  })

  it('exits 2 with a usage message for bad options and missing files, before sending anything', async () => {
    const before = await server.knex('upload_files').count<{ count: string }[]>({ count: '*' })
    const missing = await upload(server.tusEndpoint, [path.join(workDir, 'nope.png')])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain('nope.png: no such file or directory.')

    const photo = await file('p.png', pngBytes(1_000))
    for (const args of [
      ['--chunk-size', '8', photo],
      ['--parallel', '0', photo],
      ['--no-such-option', photo],
      [],
    ]) {
      const result = await upload(server.tusEndpoint, args)
      expect(result.code).toBe(2)
      expect(result.stderr).toContain('tusbox upload --help')
    }
    const bad = await runTusbox(['upload', '--endpoint', 'ftp://example.test/files', photo], {})
    expect(bad.code).toBe(2)
    expect(await server.knex('upload_files').count<{ count: string }[]>({ count: '*' })).toEqual(
      before,
    )
  })

  it('exits 1 at once, sending nothing, when nothing listens at the endpoint', async () => {
    const photo = await file('p.png', pngBytes(1_000))
    const closed = await closedPort()

    const result = await upload(`http://127.0.0.1:${closed}/files`, [photo])

    expect(result.code).toBe(1)
    expect(result.stderr).toContain(`cannot reach http://127.0.0.1:${closed}/files (ECONNREFUSED)`)
    expect(await resumeEntries()).toEqual([])
  })

  it('lists upload and its options in tusbox --help and tusbox upload --help', async () => {
    const general = await runTusbox(['--help'], {})
    expect(general.code).toBe(0)
    expect(general.stdout).toMatch(/^ {2}upload <file\|dir>\.\.\. /m)

    const own = await runTusbox(['upload', '--help'], {})
    expect(own.code).toBe(0)
    for (const option of [
      '--endpoint',
      '--token',
      '--chunk-size',
      '--parallel',
      '--batch',
      '--json',
    ]) {
      expect(own.stdout).toContain(option)
    }
  })
})

describe('tusbox upload with AUTH_MODE=jwt', () => {
  const SECRET = 'a-shared-hs256-secret-for-the-upload-cli'
  let server: TestServer

  beforeAll(async () => {
    server = await startTestServer({
      ...jwtSettings(SECRET),
    })
  })

  afterAll(async () => {
    await server?.close()
  })

  it('sends --token on every tus and API request, so the files and the batch belong to its subject', async () => {
    const token = await signHs256(SECRET, { sub: 'carol' })
    const photo = await file('mine.png', pngBytes(20_000))

    const result = await upload(server.tusEndpoint, ['--token', token, '--batch', '--json', photo])

    expect(result.code).toBe(0)
    const output = JSON.parse(result.stdout) as Output
    const stored = outcome(output, 'mine.png')
    expect(stored.status).toBe('STORED')
    const row = await server.knex('upload_files').where({ id: stored.id }).first()
    expect(row).toMatchObject({ owner: 'carol', batch_id: output.batch?.id })
    expect(output.batch?.state).toBe('completed')
  })

  it('takes the token from TUSBOX_TOKEN, and without any reports the 401 as an ERROR to run again', async () => {
    const photo = await file('env.png', pngBytes(2_000))
    const token = await signHs256(SECRET, { sub: 'dave' })

    const withEnv = await upload(server.tusEndpoint, ['--json', photo], { TUSBOX_TOKEN: token })
    expect(withEnv.code).toBe(0)
    const id = outcome(JSON.parse(withEnv.stdout), 'env.png').id
    expect((await server.knex('upload_files').where({ id }).first()).owner).toBe('dave')

    const without = await upload(server.tusEndpoint, ['--json', photo], { TUSBOX_TOKEN: '' })
    expect(without.code).toBe(1)
    expect(outcome(JSON.parse(without.stdout), 'env.png')).toMatchObject({
      status: 'ERROR',
      error: { code: 'missing_token' },
    })
  })
})

describe('tusbox upload interrupted and run again', () => {
  let proxy: Awaited<ReturnType<typeof startPausingProxy>>
  let server: TestServer
  let endpoint: string

  beforeAll(async () => {
    proxy = await startPausingProxy()
    // Location headers name the proxy, so every PATCH goes through it.
    server = await startTestServer({ PUBLIC_URL: proxy.url })
    proxy.setTarget(server.url)
    endpoint = `${proxy.url}/files`
  })

  afterAll(async () => {
    await proxy?.close()
    await server?.close()
  })

  /**
   * Starts `tusbox upload` with 1 MiB chunks, lets `patches` PATCH requests through, and sends
   * SIGINT once the next one is waiting: the server then has exactly what those carried. Later
   * requests pass again, counted from zero.
   */
  async function interruptAfter(
    patches: number,
    paths: readonly string[],
    extraArgs: readonly string[] = [],
  ) {
    const held = proxy.holdPatchesAfter(patches)
    const child = spawnTusbox(
      ['upload', '--endpoint', endpoint, '--chunk-size', '1MiB', '--json', ...extraArgs, ...paths],
      { TUSBOX_CONFIG_DIR: configDir },
    )
    const output = collect(child)
    await Promise.race([held, once(child, 'exit').then(() => failEarly(output))])
    child.kill('SIGINT')
    const [code] = await once(child, 'exit')
    proxy.passAll()
    expect(output.stdout).not.toContain(ESCAPE)
    expect(output.stderr).not.toContain(ESCAPE)
    return { code, output: JSON.parse(output.stdout) as Output, stderr: output.stderr }
  }

  it('exits 130 on SIGINT keeping the upload resumable, and the next run resumes it without resending the first chunk', async () => {
    const bytes = pngBytes(3 * MiB)
    const big = await file('big.png', bytes)

    const first = await interruptAfter(1, [big])

    expect(first.code).toBe(130)
    expect(first.output.interrupted).toBe(true)
    const stopped = outcome(first.output, 'big.png')
    expect(stopped).toMatchObject({ status: 'INTERRUPTED', bytesAcknowledged: MiB })
    expect(stopped.id).toMatch(/^[0-9a-f-]{36}$/)
    expect(first.stderr).toContain('Interrupted')
    expect(await resumeEntries()).toHaveLength(1)

    const second = await upload(endpoint, ['--json', big])

    expect(second.code).toBe(0)
    const done = outcome(JSON.parse(second.stdout), 'big.png')
    expect(done).toMatchObject({
      status: 'STORED',
      id: stopped.id,
      resumedFrom: MiB,
      sha256: sha256(bytes),
    })
    expect(second.stderr).toContain(`Resuming ${big} at 1.0 MiB of 3.0 MiB`)
    expect(proxy.patchBytes).toBe(bytes.length - MiB)
    expect(await server.knex('upload_files').where({ filename: 'big.png' })).toHaveLength(1)
    expect(await resumeEntries()).toEqual([])
  })

  it('leaves an interrupted --batch run open; the same command again sends only the rest into that batch and completes it', async () => {
    const small = await file('first.csv', csvBytes(5))
    const big = await file('second.png', pngBytes(2 * MiB + 1000))

    // One at a time: first.csv is stored (its one PATCH) before second.png sends its first chunk.
    const first = await interruptAfter(2, [small, big], ['--batch', '--parallel', '1'])

    expect(first.code).toBe(130)
    const batchId = first.output.batch?.id
    expect(first.output.batch).toEqual({ id: expect.any(String), state: 'open' })
    expect(await resumeEntries('batches')).toHaveLength(1)
    expect(outcome(first.output, 'first.csv').status).toBe('STORED')

    const second = await upload(endpoint, ['--batch', '--json', small, big])

    expect(second.code).toBe(0)
    const output = JSON.parse(second.stdout) as Output
    expect(second.stderr).toContain(`Continuing batch ${batchId}`)
    expect(output.batch).toEqual({ id: batchId, state: 'completed' })
    // Stored by the first run: found in the batch by name and sha256, not sent again.
    expect(outcome(output, 'first.csv')).toMatchObject({
      status: 'STORED',
      id: outcome(first.output, 'first.csv').id,
      resumedFrom: (await stat(small)).size,
    })
    expect(outcome(output, 'second.png')).toMatchObject({ status: 'STORED', resumedFrom: MiB })
    expect(proxy.patchBytes).toBe((await stat(big)).size - MiB)
    const events = await server
      .knex('outbox_events')
      .where({ event_type: 'batch.completed', aggregate_id: batchId })
    expect(events[0].payload.fileIds).toHaveLength(2)
    expect(await server.knex('upload_files').where({ batch_id: batchId })).toHaveLength(2)
    expect(await resumeEntries('batches')).toEqual([])
  })

  it('on SIGINT while a creation is unanswered, waits for its answer and records it: the next run resumes that upload instead of creating another', async () => {
    const bytes = pngBytes(2 * MiB)
    const photo = await file('created.png', bytes)
    const created = proxy.holdNextAnswer('POST')
    const child = spawnTusbox(['upload', '--endpoint', endpoint, '--json', photo], {
      TUSBOX_CONFIG_DIR: configDir,
    })
    const output = collect(child)
    await Promise.race([created, once(child, 'exit').then(() => failEarly(output))])
    child.kill('SIGINT')
    await printed(child, output, 'Interrupted')
    proxy.passAll()
    const [code] = await once(child, 'exit')

    expect(code).toBe(130)
    const stopped = outcome(JSON.parse(output.stdout) as Output, 'created.png')
    expect(stopped).toMatchObject({ status: 'INTERRUPTED', bytesAcknowledged: 0 })
    expect(stopped.id).toMatch(/^[0-9a-f-]{36}$/)
    expect(output.stderr).toContain(`Resumable on the next run: ${photo}`)
    expect(await resumeEntries()).toHaveLength(1)

    const second = await upload(endpoint, ['--json', photo])

    expect(second.code).toBe(0)
    expect(outcome(JSON.parse(second.stdout), 'created.png')).toMatchObject({
      status: 'STORED',
      id: stopped.id,
      sha256: sha256(bytes),
    })
    expect(await server.knex('upload_files').where({ filename: 'created.png' })).toHaveLength(1)
  })

  it('reports a file whose last byte was sent before SIGINT as STORED, not interrupted', async () => {
    const bytes = csvBytes(50)
    const small = await file('small.csv', bytes)
    // The first look at the file after its last byte is held: SIGINT comes while it waits.
    const polled = proxy.holdNextAnswer('GET')
    const child = spawnTusbox(['upload', '--endpoint', endpoint, '--json', small], {
      TUSBOX_CONFIG_DIR: configDir,
    })
    const output = collect(child)
    await Promise.race([polled, once(child, 'exit').then(() => failEarly(output))])
    child.kill('SIGINT')
    const [code] = await once(child, 'exit')
    proxy.passAll()

    expect(code).toBe(130)
    const result = JSON.parse(output.stdout) as Output
    expect(outcome(result, 'small.csv')).toMatchObject({ status: 'STORED', sha256: sha256(bytes) })
    expect(output.stderr).not.toContain('Resumable on the next run')
  })

  it('starts over when the server no longer has the upload a resume entry names', async () => {
    const bytes = pngBytes(2 * MiB)
    const photo = await file('gone.png', bytes)
    const first = await interruptAfter(1, [photo])
    const { id } = outcome(first.output, 'gone.png')
    const terminated = await fetch(`${server.tusEndpoint}/${id}`, {
      method: 'DELETE',
      headers: { 'Tus-Resumable': '1.0.0' },
    })
    expect(terminated.status).toBe(204)

    const second = await upload(endpoint, ['--json', photo])

    expect(second.code).toBe(0)
    expect(second.stderr).toContain('the server no longer has the previous upload (410)')
    const done = outcome(JSON.parse(second.stdout), 'gone.png')
    expect(done).toMatchObject({ status: 'STORED', resumedFrom: 0, sha256: sha256(bytes) })
    expect(done.id).not.toBe(id)
    expect(proxy.patchBytes).toBe(bytes.length)
  })
})

function collect(child: ChildProcess) {
  const output = { stdout: '', stderr: '' }
  child.stdout?.on('data', (chunk: Buffer) => {
    output.stdout += chunk.toString()
  })
  child.stderr?.on('data', (chunk: Buffer) => {
    output.stderr += chunk.toString()
  })
  return output
}

/** Resolves once the child has written `text` on stderr. */
function printed(child: ChildProcess, output: { stderr: string }, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (output.stderr.includes(text)) resolve()
    }
    child.stderr?.on('data', check)
    child.once('exit', () =>
      reject(new Error(`exited before printing "${text}":\n${output.stderr}`)),
    )
    check()
  })
}

function failEarly(output: { stdout: string; stderr: string }): never {
  throw new Error(
    `tusbox upload ended before a PATCH was held:\n${output.stdout}\n${output.stderr}`,
  )
}
