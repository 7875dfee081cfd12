/**
 * The processes a benchmark run starts: every server under test is a child process of its own,
 * so its RSS is its own and none shares an event loop with the client.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createWriteStream, readFileSync, writeFileSync } from 'node:fs'
import { mkdir, readdir, rm } from 'node:fs/promises'
import path from 'node:path'
import { CreateBucketCommand, DeleteBucketCommand, S3Client } from '@aws-sdk/client-s3'
import { SETTING_NAMES } from '../../src/config.ts'

const ROOT = path.resolve(import.meta.dirname, '../..')
const STOP_TIMEOUT_MS = 35_000

export interface ChildServer {
  readonly pid: number
  /** Where it listens: the sink's base URL, the tus endpoint, or the S3 endpoint. */
  readonly url: string
  stop(): Promise<void>
}

interface ChildOptions {
  readonly args: readonly string[]
  readonly env?: Record<string, string>
  readonly cwd: string
  /** Both output streams go here, for a post-mortem. */
  readonly logFile: string
  /** The URL announced by a line on stdout or stderr, or undefined for any other line. */
  readonly readyUrl: (line: string) => string | undefined
}

/**
 * Starts a node child (with this process's flags, so TypeScript runs the same way) and resolves
 * once it announces its URL; rejects with its log when it exits first.
 */
async function startChild(options: ChildOptions): Promise<ChildServer> {
  const child = spawn(process.execPath, [...process.execArgv, ...options.args], {
    cwd: options.cwd,
    env: options.env ?? process.env,
    // stdin stays open: the bench's own servers exit when it closes, even after a kill -9 of us.
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  const log = createWriteStream(options.logFile, { flags: 'a' })
  child.stdout?.pipe(log)
  child.stderr?.pipe(log)
  const url = await new Promise<string>((resolve, reject) => {
    const onExit = (code: number | null) =>
      reject(
        new Error(
          `${options.args.join(' ')} exited (${code}) before it listened; see ${options.logFile}`,
        ),
      )
    // Lines by hand, not readline: closing a readline pauses its input, and a paused pipe would
    // stall the child the moment it logs more than the pipe holds.
    const watchers = [child.stdout, child.stderr].map((stream) => {
      let pending = ''
      const onData = (chunk: Buffer) => {
        const lines = (pending + chunk.toString('utf8')).split('\n')
        pending = lines.pop() ?? ''
        const found = lines.map(options.readyUrl).find((candidate) => candidate !== undefined)
        if (found === undefined) return
        child.off('exit', onExit)
        for (const { stream: watched, onData: listener } of watchers) watched?.off('data', listener)
        resolve(found)
      }
      stream?.on('data', onData)
      return { stream, onData }
    })
    child.once('exit', onExit)
  })
  const pid = child.pid
  if (pid === undefined) throw new Error(`${options.args.join(' ')} has no pid`)
  return { pid, url, stop: () => stopChild(child) }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
  await exited
  clearTimeout(timer)
}

function urlFromJsonLine(line: string): string | undefined {
  try {
    const parsed = JSON.parse(line) as { url?: unknown }
    return typeof parsed.url === 'string' ? parsed.url : undefined
  } catch {
    return undefined
  }
}

/** One of the bench's own servers (scripts/bench/*-server.ts), printing {"url"} when ready. */
export function startBenchServer(
  script: string,
  args: readonly string[],
  workdir: string,
): Promise<ChildServer> {
  return startChild({
    args: [path.join(import.meta.dirname, script), ...args],
    cwd: workdir,
    logFile: path.join(workdir, `${path.basename(script, '.ts')}.log`),
    readyUrl: urlFromJsonLine,
  })
}

/**
 * `tusbox serve` as ops run it (bin/tusbox.js), with only the settings given here: none
 * inherited from the shell or a .env (it runs in the work directory, which has none). The
 * settings it knows are this checkout's (SETTING_NAMES): another checkout gets the same ones.
 */
export async function startTusbox(
  name: string,
  settings: Record<string, string>,
  workdir: string,
  /** The checkout whose bin/tusbox.js runs: another one to compare two versions. */
  checkout = ROOT,
): Promise<ChildServer> {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !SETTING_NAMES.includes(key)),
  )
  const server = await startChild({
    args: [path.join(checkout, 'bin/tusbox.js'), 'serve'],
    env: { ...inherited, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...settings },
    cwd: workdir,
    logFile: path.join(workdir, `tusbox-${name}.log`),
    readyUrl: (line) =>
      line.includes('"message":"tusbox is listening"') ? urlFromJsonLine(line) : undefined,
  })
  return { ...server, url: `${server.url}/files` }
}

function procStatusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)
  if (!match) throw new Error(`/proc/${pid}/status has no ${field}`)
  return Number(match[1])
}

/** Resident memory now, in MiB. */
export function rssMiB(pid: number): number {
  return procStatusKiB(pid, 'VmRSS') / 1024
}

/**
 * Starts a new peak-RSS window: "5" in clear_refs resets VmHWM to the current RSS (Linux 4.0+),
 * so the peak read afterwards is the exact peak of what ran in between, with no sampling.
 */
export function resetPeakRss(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5')
}

/** The highest RSS since the last resetPeakRss, in MiB. */
export function peakRssMiB(pid: number): number {
  return procStatusKiB(pid, 'VmHWM') / 1024
}

/** Empties a directory but keeps it: the servers writing into it hold it open by path. */
export async function emptyDirectory(directory: string): Promise<void> {
  await mkdir(directory, { recursive: true })
  const entries = await readdir(directory)
  await Promise.all(
    entries.map((entry) => rm(path.join(directory, entry), { recursive: true, force: true })),
  )
}

/** Where D and E put their bytes, and how to sign in there. */
export interface S3Endpoint {
  readonly url: string
  readonly region: string
  readonly accessKeyId: string
  readonly secretAccessKey: string
  /** For the report: which S3 server this is. */
  readonly description: string
}

/**
 * The S3 server named by the S3_TEST_* settings the tests read (for example a radosgw started by
 * scripts/start-ceph-rgw.sh), or undefined: the benchmark then starts the fauxqs test server.
 */
export function externalS3(env: NodeJS.ProcessEnv = process.env): S3Endpoint | undefined {
  const url = env.S3_TEST_ENDPOINT
  if (!url) return undefined
  return {
    url,
    region: env.S3_TEST_REGION ?? 'us-east-1',
    accessKeyId: env.S3_TEST_ACCESS_KEY_ID ?? 'minioadmin',
    secretAccessKey: env.S3_TEST_SECRET_ACCESS_KEY ?? 'minioadmin',
    description: `the S3 server at ${url} (S3_TEST_ENDPOINT)`,
  }
}

/** The fauxqs test server's endpoint, once scripts/bench/s3-server.ts announced its URL. */
export function testS3(url: string): S3Endpoint {
  return {
    url,
    region: 'us-east-1',
    accessKeyId: 'tusbox-bench',
    secretAccessKey: 'tusbox-bench-secret',
    description: 'the fauxqs test server (test/helpers/s3-server.ts)',
  }
}

/** An S3 client configured as tusbox configures its own for an S3-compatible endpoint. */
export function s3Client(endpoint: S3Endpoint): S3Client {
  return new S3Client({
    endpoint: endpoint.url,
    region: endpoint.region,
    forcePathStyle: true,
    credentials: { accessKeyId: endpoint.accessKeyId, secretAccessKey: endpoint.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  })
}

export async function createBucket(client: S3Client, bucket: string): Promise<void> {
  await client.send(new CreateBucketCommand({ Bucket: bucket }))
}

export async function deleteBucket(client: S3Client, bucket: string): Promise<void> {
  await client.send(new DeleteBucketCommand({ Bucket: bucket }))
}
