/**
 * node scripts/bench-compare.ts <other checkout> [--size MiB] [--chunk MiB] [--rounds N]
 *
 * The before/after of one change: this checkout's tusbox against another checkout's (for
 * example `git worktree add /tmp/before main`, then `npm ci` there) and bare @tus/server (B), in
 * one scenario: uploads of --size MiB (512) in PATCHes of --chunk MiB (the whole upload in one
 * PATCH when omitted) to the file store. One warm-up round, then --rounds (5) rounds taking turns;
 * per subject the medians of MiB/s and of the server's CPU per GiB on its main thread and on all
 * its threads, and the median of the round-by-round throughput ratios. Like `npm run bench`, it
 * measures honestly only on a quiet machine; CPU time is the least disturbed by others' load.
 */
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { startEmbeddedPostgres } from '../src/db/embedded-postgres.ts'
import { createLogger } from '../src/lib/logger.ts'
import { GiB, MiB } from './bench/client.ts'
import { type LoadClient, startLoadClient } from './bench/load-client.ts'
import { mainThreadCpuSeconds, processCpuSeconds } from './bench/machine.ts'
import { median } from './bench/results.ts'
import { type ChildServer, emptyDirectory, startBenchServer, startTusbox } from './bench/servers.ts'

const USAGE =
  'usage: node scripts/bench-compare.ts <other checkout> [--size MiB] [--chunk MiB] [--rounds N]'

const { values, positionals } = parsedArgs()
const other = positionals[0]
if (values.help) {
  process.stdout.write(`${USAGE}\n`)
  process.exit(0)
}
if (!other) usageError('name the other checkout')
const size = positiveNumber('--size', values.size) * MiB
const chunk = values.chunk ? positiveNumber('--chunk', values.chunk) * MiB : size
const rounds = positiveNumber('--rounds', values.rounds)

function parsedArgs() {
  try {
    return parseArgs({
      allowPositionals: true,
      options: {
        size: { type: 'string', default: '512' },
        chunk: { type: 'string' },
        rounds: { type: 'string', default: '5' },
        help: { type: 'boolean', default: false },
      },
    })
  } catch (error) {
    return usageError(error instanceof Error ? error.message : String(error))
  }
}

function positiveNumber(option: string, text: string): number {
  const value = Number(text)
  if (!Number.isFinite(value) || value <= 0) usageError(`${option} must be a positive number`)
  return value
}

function usageError(message: string): never {
  process.stderr.write(`bench-compare: ${message}\n${USAGE}\n`)
  process.exit(2)
}

interface Subject {
  readonly name: string
  readonly server: ChildServer
  readonly directory: string
  readonly runs: { mibPerSecond: number; mainCpuPerGiB: number; allCpuPerGiB: number }[]
}

/** One upload, with the server's CPU read from /proc around it. */
async function measureOnce(client: LoadClient, subject: Subject) {
  const { pid, url } = subject.server
  const main = mainThreadCpuSeconds(pid)
  const all = processCpuSeconds(pid)
  const [mibPerSecond = Number.NaN] = await client.run({
    kind: 'throughput',
    route: { via: 'tus', endpoint: url, chunk },
    size,
  })
  await emptyDirectory(subject.directory)
  return {
    mibPerSecond,
    mainCpuPerGiB: (mainThreadCpuSeconds(pid) - main) / (size / GiB),
    allCpuPerGiB: (processCpuSeconds(pid) - all) / (size / GiB),
  }
}

function summary(subject: Subject, against: Subject[]): string {
  const of = (pick: (run: Subject['runs'][number]) => number) =>
    (median(subject.runs.map(pick)) ?? Number.NaN).toFixed(2)
  const ratios = against.map((reference) => {
    const paired = subject.runs.map(
      (run, index) => run.mibPerSecond / (reference.runs[index]?.mibPerSecond ?? Number.NaN),
    )
    return `/${reference.name} ${(median(paired) ?? Number.NaN).toFixed(2)}`
  })
  return (
    `${subject.name}: ${of((run) => run.mibPerSecond)} MiB/s, CPU per GiB main thread ` +
    `${of((run) => run.mainCpuPerGiB)} s, all threads ${of((run) => run.allCpuPerGiB)} s` +
    (ratios.length > 0 ? `; throughput ${ratios.join(', ')}` : '')
  )
}

const workdir = await mkdtemp(path.join(os.tmpdir(), 'tusbox-compare-'))
// mkdtemp makes a private directory; the embedded PostgreSQL may run as another user.
await chmod(workdir, 0o755)
const stops: (() => Promise<unknown>)[] = [() => rm(workdir, { recursive: true, force: true })]
try {
  const directories = ['bare', 'this', 'other'].map((name) => path.join(workdir, name))
  const [bareDir = '', thisDir = '', otherDir = ''] = directories
  await Promise.all(directories.map((directory) => mkdir(directory)))
  const postgres = await startEmbeddedPostgres({
    dir: path.join(workdir, 'postgres'),
    port: 0,
    database: 'postgres',
    logger: createLogger('warn'),
  })
  stops.push(() => postgres.stop())
  const { user, password, port } = postgres.connection
  const databaseUrl = (name: string) =>
    `postgres://${user}:${encodeURIComponent(String(password))}@127.0.0.1:${port}/${name}`
  const admin = new pg.Client({ connectionString: databaseUrl('postgres') })
  await admin.connect()
  await admin.query('CREATE DATABASE compare_this')
  await admin.query('CREATE DATABASE compare_other')
  await admin.end()
  const settings = (database: string, directory: string) => ({
    AUTH_ALLOW_ANONYMOUS: 'true',
    FILE_UPLOAD_MAX_SIZE: String(size),
    STORAGE_BACKEND: 'file',
    DATABASE_URL: databaseUrl(database),
    FILE_STORE_DIR: directory,
    CHECKSUM_TEMP_DIR: workdir,
  })
  const start = async (
    name: string,
    starting: Promise<ChildServer>,
    directory: string,
  ): Promise<Subject> => {
    const server = await starting
    stops.push(() => server.stop())
    return { name, server, directory, runs: [] }
  }
  const subjects: [Subject, Subject, Subject] = [
    await start('B', startBenchServer('tus-reference-server.ts', [bareDir], workdir), bareDir),
    await start('this', startTusbox('this', settings('compare_this', thisDir), workdir), thisDir),
    await start(
      'other',
      startTusbox('other', settings('compare_other', otherDir), workdir, path.resolve(other)),
      otherDir,
    ),
  ]
  // Started last, so stopped first: requests it has in flight would hold up the servers' stops.
  const client = await startLoadClient()
  stops.push(() => client.stop())
  for (const subject of subjects) await measureOnce(client, subject)
  for (let round = 1; round <= rounds; round++) {
    for (const subject of subjects) {
      const run = await measureOnce(client, subject)
      subject.runs.push(run)
      process.stderr.write(
        `round ${round} ${subject.name}: ${run.mibPerSecond.toFixed(0)} MiB/s, CPU per GiB ` +
          `${run.mainCpuPerGiB.toFixed(2)} s main thread, ${run.allCpuPerGiB.toFixed(2)} s all\n`,
      )
    }
  }
  const [bare, mine, theirs] = subjects
  const what = chunk === size ? 'one PATCH' : `PATCHes of ${chunk / MiB} MiB`
  process.stdout.write(
    `${size / MiB} MiB in ${what}, medians of ${rounds} rounds after a warm-up; load average ` +
      `${os.loadavg()[0]?.toFixed(2)}\n${summary(bare, [])}\n${summary(mine, [theirs, bare])}\n` +
      `${summary(theirs, [bare])}\n`,
  )
} finally {
  for (const stop of stops.toReversed()) await stop().catch(() => undefined)
}
