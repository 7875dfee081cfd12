/**
 * npm run bench [-- --quick] [-- --only D,E]: tusbox against the references it must be compared with, side by
 * side in one run on 127.0.0.1. See docs/benchmarks.md for what is measured and why.
 *
 *   A  node:http piping bodies to a file (and discarding them): what Node can ingest here
 *   B  bare @tus/server with the same FileStore, no database: what a user would run instead
 *   C  tusbox serve on the file store, with its own PostgreSQL
 *   D  tusbox serve on S3 (the fauxqs test server)
 *   E  the same bytes put to the same S3 server with @aws-sdk/lib-storage
 *
 * Every server is a child process (its RSS is its own), and so is the client that sends and times
 * every measured request (scripts/bench/load-process.ts), alone in a small heap. Every
 * scenario first warms every subject up with one unrecorded round, then measures several rounds,
 * the subjects taking turns within each round so that a change in the machine's load hits them
 * alike; a ratio is the median of the round-by-round ratios. Missed targets are reported, never
 * an exit code: only an error fails the run. Quick mode only proves the code runs: it judges no
 * target.
 */
import { randomUUID } from 'node:crypto'
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import type { S3Client } from '@aws-sdk/client-s3'
import pg from 'pg'
import { startEmbeddedPostgres } from '../src/db/embedded-postgres.ts'
import { createLogger } from '../src/lib/logger.ts'
import { emptyBucket } from '../test/helpers/s3-buckets.ts'
import { closeClient, expectStatus, GiB, KiB, MiB, send, tusUpload } from './bench/client.ts'
import type { LoadTask, UploadRoute } from './bench/load.ts'
import { type LoadClient, startLoadClient } from './bench/load-client.ts'
import {
  cpuSnapshot,
  describeMachine,
  type Machine,
  mainThreadCpuSeconds,
  othersCpuPercent,
  processCpuSeconds,
} from './bench/machine.ts'
import {
  type Figure,
  figuresTable,
  formatValue,
  passes,
  Results,
  type Series,
  SUBJECT_NAMES,
  SUBJECTS,
  type Subject,
  sizeLabel,
  type Target,
  targetsTable,
} from './bench/results.ts'
import {
  type ChildServer,
  createBucket,
  deleteBucket,
  emptyDirectory,
  externalS3,
  peakRssMiB,
  resetPeakRss,
  rssMiB,
  type S3Endpoint,
  s3Client,
  startBenchServer,
  startTusbox,
  testS3,
} from './bench/servers.ts'

/** Uploads sent at once. */
interface Crowd {
  readonly uploads: number
  readonly size: number
}

interface Plan {
  readonly mode: 'full' | 'quick'
  /**
   * Each figure is the median of this many runs, after one warm-up round (the leak check runs
   * once, cold).
   */
  readonly runs: number
  /** Each throughput upload: one PATCH, PATCHes of chunkSize, tus-js-client. */
  readonly throughputSize: number
  readonly chunkSize: number
  /** The largest is the size the finish-latency target is judged at. */
  readonly finishSizes: readonly [number, number, number]
  readonly creations: number
  readonly creationConcurrency: number
  /** Many large uploads at once; also the peak-RSS measurement. */
  readonly heavyCrowd: Crowd
  /** Many small uploads at once: per-upload overhead dominates. */
  readonly lightCrowd: Crowd
  readonly leakUploads: number
  readonly leakCheckpoint: number
  readonly leakSize: number
  /** A file sent with tus-js-client's parallelUploads, and the size of a final joined by itself. */
  readonly parallelSize: number
  /** The same through a link that lets each connection upload at most `throttle` bytes/s. */
  readonly throttledSize: number
  readonly throttle: number
}

const FULL: Plan = {
  mode: 'full',
  runs: 5,
  // The size of the independent measurement that found the old reference weak (issue 15).
  throughputSize: 512 * MiB,
  chunkSize: 8 * MiB,
  finishSizes: [MiB, 64 * MiB, GiB],
  creations: 2000,
  creationConcurrency: 8,
  heavyCrowd: { uploads: 64, size: 16 * MiB },
  lightCrowd: { uploads: 16, size: 2 * MiB },
  leakUploads: 500,
  leakCheckpoint: 100,
  leakSize: MiB,
  parallelSize: 256 * MiB,
  throttledSize: 128 * MiB,
  throttle: 16 * MiB,
}

/**
 * The same code paths with small sizes, for CI: well under a minute on two cores. Its figures are
 * dominated by warm-up and start-up costs, so it judges no target.
 */
const QUICK: Plan = {
  mode: 'quick',
  runs: 1,
  throughputSize: 32 * MiB,
  chunkSize: 8 * MiB,
  finishSizes: [MiB, 8 * MiB, 32 * MiB],
  creations: 200,
  creationConcurrency: 8,
  heavyCrowd: { uploads: 16, size: 2 * MiB },
  lightCrowd: { uploads: 4, size: 256 * KiB },
  leakUploads: 50,
  leakCheckpoint: 10,
  leakSize: 256 * KiB,
  parallelSize: 32 * MiB,
  throttledSize: 16 * MiB,
  throttle: 16 * MiB,
}

/**
 * The last PATCH of a finish-latency probe: small, so the figure is the finish step (type sniff,
 * hash, transaction; on S3 the multipart completion) and not the transfer of a chunk.
 */
const FINISH_TAIL = 64 * KiB
/** Partial uploads per file in the parallel rows: tus-js-client's `parallelUploads: 4`. */
const FINAL_PARTS = 4
/** tusbox's S3_PART_SIZE default; E uses the same part size. */
const S3_PART_SIZE = 8 * MiB
const ROOT = path.resolve(import.meta.dirname, '..')
// A suffix of their own: an external S3 server may hold other runs' buckets.
const BUCKET_SUFFIX = randomUUID().slice(0, 8)
const TUSBOX_BUCKET = `bench-tusbox-${BUCKET_SUFFIX}`
const RAW_BUCKET = `bench-raw-${BUCKET_SUFFIX}`

const USAGE = `Usage: npm run bench [-- --quick] [-- --only D,E]
  --quick      small sizes, about 90 s: proves the code runs, judges no target (CI runs it)
  --only LIST  measure only these subjects (${SUBJECTS.join(', ')}); the others show —
  --help       this text
What is measured, and why: docs/benchmarks.md`

const flags = benchFlags()
const plan = flags.quick ? QUICK : FULL
/** --only D,E: measure these subjects alone (say, D and E on another S3 server); others show —. */
const onlySubjects = flags.only ? chosenSubjects(flags.only) : undefined

function benchFlags(): { quick: boolean; only: string | undefined } {
  const values = parsedArgs()
  if (values.help) {
    process.stdout.write(`${USAGE}\n`)
    process.exit(0)
  }
  return { quick: values.quick === true, only: values.only }
}

function parsedArgs(): { quick?: boolean; only?: string; help?: boolean } {
  try {
    return parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        only: { type: 'string' },
        help: { type: 'boolean', default: false },
      },
    }).values
  } catch (error) {
    return usageError(error instanceof Error ? error.message : String(error))
  }
}

function chosenSubjects(list: string): ReadonlySet<Subject> {
  const names = list.split(',').map((name) => name.trim())
  const unknown = names.filter((name) => !(SUBJECTS as readonly string[]).includes(name))
  if (unknown.length > 0) {
    usageError(`--only: unknown subject ${unknown.join(', ')} (one of ${SUBJECTS.join(', ')})`)
  }
  return new Set(names as Subject[])
}

function usageError(message: string): never {
  process.stderr.write(`bench: ${message}\n\n${USAGE}\n`)
  process.exit(2)
}
const startedAt = new Date()
const clock = performance.now()

/** What started, newest last: stopped in reverse order however the run ends. */
const stops: (() => Promise<void>)[] = []
let stopping: Promise<void> | undefined

function stopEverything(): Promise<void> {
  stopping ??= (async () => {
    // Requests still in flight would keep the servers' graceful shutdowns waiting.
    closeClient()
    for (const stop of stops.toReversed()) {
      try {
        await stop()
      } catch (error) {
        process.stderr.write(`bench: while stopping: ${String(error)}\n`)
      }
    }
  })()
  return stopping
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`bench: ${signal}, stopping what it started\n`)
    void stopEverything().finally(() => process.exit(130))
  })
}

/**
 * Registers what started for stopping. Something that finishes starting after the run already
 * failed (a sibling in Promise.all threw) is stopped at once instead of being left running.
 */
async function started<T extends { stop(): Promise<void> }>(starting: Promise<T>): Promise<T> {
  const thing = await starting
  if (stopping) {
    await thing.stop()
    throw new Error('the benchmark stopped while this was starting')
  }
  stops.push(() => thing.stop())
  return thing
}

function progress(message: string): void {
  const seconds = ((performance.now() - clock) / 1000).toFixed(1).padStart(6)
  process.stderr.write(`[${seconds} s] ${message}\n`)
}

interface Lab {
  readonly sink: ChildServer
  readonly sinkDir: string
  readonly bare: ChildServer
  readonly bareDir: string
  readonly tusboxFile: ChildServer
  readonly tusboxFileDir: string
  readonly tusboxS3: ChildServer
  /** D with its S3 requests counted (scripts/bench/s3-counting-proxy.ts). */
  readonly tusboxS3Counted: ChildServer
  readonly s3Proxy: ChildServer
  /** C and D behind a link that paces each connection (scripts/bench/throttle-proxy.ts). */
  readonly throttledFile: ChildServer
  readonly throttledS3: ChildServer
  readonly s3: S3Client
  readonly s3Endpoint: S3Endpoint
  /** The client every timed request comes from, a process of its own. */
  readonly client: LoadClient
}

/** The S3_TEST_* server when set, else the fauxqs test server in a child process. */
async function startS3(workdir: string): Promise<S3Endpoint> {
  const external = externalS3()
  if (external) return external
  const server = await started(startBenchServer('s3-server.ts', [], workdir))
  return testS3(server.url)
}

/** Starts PostgreSQL, the S3 server and the servers under test, all on 127.0.0.1. */
async function startLab(workdir: string): Promise<Lab> {
  const sinkDir = path.join(workdir, 'sink')
  const bareDir = path.join(workdir, 'bare-tus')
  const tusboxFileDir = path.join(workdir, 'tusbox-files')
  const tempDir = path.join(workdir, 'tmp')
  await Promise.all([sinkDir, bareDir, tusboxFileDir, tempDir].map((dir) => mkdir(dir)))

  const [postgres, s3Endpoint, sink, bare] = await Promise.all([
    started(
      startEmbeddedPostgres({
        dir: path.join(workdir, 'postgres'),
        port: 0,
        database: 'postgres',
        logger: createLogger('warn'),
      }),
    ),
    startS3(workdir),
    started(startBenchServer('sink-server.ts', [sinkDir], workdir)),
    started(startBenchServer('tus-reference-server.ts', [bareDir], workdir)),
  ])
  const { user, password, port } = postgres.connection
  const databaseUrl = (name: string) =>
    `postgres://${user}:${encodeURIComponent(String(password))}@127.0.0.1:${port}/${name}`
  const admin = new pg.Client({ connectionString: databaseUrl('postgres') })
  await admin.connect()
  try {
    // One database per tusbox, so that neither sees the other's rows or jobs.
    await admin.query('CREATE DATABASE bench_file')
    await admin.query('CREATE DATABASE bench_s3')
    await admin.query('CREATE DATABASE bench_s3_counted')
  } finally {
    await admin.end()
  }
  const s3 = s3Client(s3Endpoint)
  stops.push(async () => s3.destroy())
  await Promise.all([createBucket(s3, TUSBOX_BUCKET), createBucket(s3, RAW_BUCKET)])
  stops.push(async () => {
    for (const bucket of [TUSBOX_BUCKET, RAW_BUCKET]) {
      await emptyBucket(s3, bucket)
      await deleteBucket(s3, bucket)
    }
  })

  const common = {
    AUTH_ALLOW_ANONYMOUS: 'true',
    FILE_UPLOAD_MAX_SIZE: String(Math.max(plan.throughputSize, ...plan.finishSizes)),
    CHECKSUM_TEMP_DIR: tempDir,
    // A body of unknown length is staged in the system temporary directory: keep it in ours.
    TMPDIR: tempDir,
  }
  const s3Proxy = await started(startBenchServer('s3-counting-proxy.ts', [s3Endpoint.url], workdir))
  const onS3 = (database: string, endpointUrl: string) => ({
    ...common,
    DATABASE_URL: databaseUrl(database),
    STORAGE_BACKEND: 's3',
    AWS_STORAGE_BUCKET_NAME: TUSBOX_BUCKET,
    AWS_S3_ENDPOINT_URL: endpointUrl,
    AWS_S3_REGION_NAME: s3Endpoint.region,
    AWS_ACCESS_KEY_ID: s3Endpoint.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3Endpoint.secretAccessKey,
    AWS_S3_FORCE_PATH_STYLE: 'true',
    S3_PART_SIZE: String(S3_PART_SIZE),
  })
  const [tusboxFile, tusboxS3, tusboxS3Counted] = await Promise.all([
    started(
      startTusbox(
        'file',
        {
          ...common,
          DATABASE_URL: databaseUrl('bench_file'),
          STORAGE_BACKEND: 'file',
          FILE_STORE_DIR: tusboxFileDir,
        },
        workdir,
      ),
    ),
    started(startTusbox('s3', onS3('bench_s3', s3Endpoint.url), workdir)),
    // D's twin, whose S3 requests go through the counting proxy; only the request counts use it.
    started(startTusbox('s3-counted', onS3('bench_s3_counted', s3Proxy.url), workdir)),
  ])
  const throttled = (server: ChildServer) =>
    started(startBenchServer('throttle-proxy.ts', [server.url, String(plan.throttle)], workdir))
  const [throttledFile, throttledS3] = await Promise.all([
    throttled(tusboxFile),
    throttled(tusboxS3),
  ])
  // Started last, so stopped first: requests it has in flight would hold up the servers' stops.
  const client = await started(startLoadClient())
  return {
    sink,
    sinkDir,
    bare,
    bareDir,
    tusboxFile,
    tusboxFileDir,
    tusboxS3,
    tusboxS3Counted,
    s3Proxy,
    throttledFile,
    throttledS3,
    s3,
    s3Endpoint,
    client,
  }
}

/** Removes what a run uploaded (never timed): disks and the in-memory S3 server stay small. */
function cleaner(lab: Lab): (subject: Subject) => Promise<void> {
  return async (subject) => {
    switch (subject) {
      case 'A file':
      case 'A discard':
        return emptyDirectory(lab.sinkDir)
      case 'B':
        return emptyDirectory(lab.bareDir)
      case 'C':
        return emptyDirectory(lab.tusboxFileDir)
      case 'D':
        return emptyBucket(lab.s3, TUSBOX_BUCKET)
      case 'E':
        return emptyBucket(lab.s3, RAW_BUCKET)
    }
  }
}

/** One subject in one scenario. */
interface Contender {
  readonly subject: Subject
  /** The server whose RSS counts; undefined for E, which is the S3 server's own work. */
  readonly pid: number | undefined
  /** One run: one value per figure of the scenario. */
  run(): Promise<readonly number[]>
}

const results = new Results()
/** The highest RSS each subject's server reached in any measurement. */
const runPeaks = new Map<Subject, number>()

/** The server's CPU time per GiB received, on its main thread and on all its threads. */
interface CpuFigures {
  readonly mainThread: Figure
  readonly allThreads: Figure
  /** Bytes one run uploads. */
  readonly bytes: number
}

interface MeasureOptions {
  readonly runs?: number
  /** False for the leak check, which starts from fresh servers on purpose. */
  readonly warmUp?: boolean
  readonly rss?: Figure
  readonly cpu?: CpuFigures
}

/**
 * One unrecorded round, so that no subject is measured cold: a cold server (JIT, lazily loaded
 * modules, a young heap) made bare @tus/server look 2.5 times slower than it is.
 */
async function warmUp(
  contenders: readonly Contender[],
  clean: (subject: Subject) => Promise<void>,
) {
  for (const contender of contenders) {
    if (stopping) throw new Error('the benchmark is stopping')
    await contender.run()
    await clean(contender.subject)
  }
}

async function measure(
  lab: Lab,
  figures: readonly Figure[],
  everyContender: readonly Contender[],
  options: MeasureOptions = {},
): Promise<void> {
  const contenders = everyContender.filter(
    (contender) => onlySubjects?.has(contender.subject) ?? true,
  )
  if (contenders.length === 0) return
  const clean = cleaner(lab)
  const runs = options.runs ?? plan.runs
  if (options.warmUp ?? true) {
    await warmUp(contenders, clean)
    progress(`${figures[0]?.label} · warmed up`)
  }
  const before = cpuSnapshot()
  for (let run = 1; run <= runs; run++) {
    for (const contender of contenders) {
      if (stopping) throw new Error('the benchmark is stopping')
      const { pid, subject } = contender
      if (pid !== undefined) resetPeakRss(pid)
      const cpuBefore = pid === undefined ? undefined : serverCpu(pid)
      const values = await contender.run()
      if (pid !== undefined) {
        const peak = peakRssMiB(pid)
        runPeaks.set(subject, Math.max(peak, runPeaks.get(subject) ?? 0))
        if (options.rss) results.add(options.rss, subject, peak)
      }
      if (options.cpu && pid !== undefined && cpuBefore) {
        const cpuAfter = serverCpu(pid)
        const gibs = options.cpu.bytes / GiB
        results.add(options.cpu.mainThread, subject, (cpuAfter.main - cpuBefore.main) / gibs)
        results.add(options.cpu.allThreads, subject, (cpuAfter.all - cpuBefore.all) / gibs)
      }
      await clean(subject)
      const shown = figures.map((figure, index) => {
        const value = values[index]
        if (value === undefined) throw new Error(`${subject} gave no value for ${figure.id}`)
        results.add(figure, subject, value)
        return `${value.toFixed(figure.digits)} ${figure.unit}`
      })
      progress(`${figures[0]?.label} · run ${run}/${runs} · ${subject}: ${shown.join(', ')}`)
    }
  }
  const others = othersCpuPercent(before, cpuSnapshot())
  const cpu = options.cpu ? [options.cpu.mainThread, options.cpu.allThreads] : []
  for (const figure of [...figures, ...(options.rss ? [options.rss] : []), ...cpu]) {
    results.setOthersCpu(figure, others)
  }
}

function serverCpu(pid: number): { readonly main: number; readonly all: number } {
  return { main: mainThreadCpuSeconds(pid), all: processCpuSeconds(pid) }
}

function seconds(since: number): number {
  return (performance.now() - since) / 1000
}

/** One measurement, run by the client process. */
function load(lab: Lab, task: LoadTask): Promise<number[]> {
  return lab.client.run(task)
}

/** A: bodies appended to a new file of the sink, in requests of `chunk` bytes (one when omitted). */
function sinkFile(lab: Lab, chunk?: number): UploadRoute {
  return { via: 'sink-file', sinkUrl: lab.sink.url, ...(chunk ? { chunk } : {}) }
}

/** E: the bytes put with lib-storage, with tusbox's part size and lib-storage's concurrency. */
function rawS3(lab: Lab): UploadRoute {
  return { via: 's3', s3: lab.s3Endpoint, bucket: RAW_BUCKET, partSize: S3_PART_SIZE }
}

function tusJsClientRoute(endpoint: string, parallelUploads: number): UploadRoute {
  return { via: 'tus-js-client', endpoint, chunk: plan.chunkSize, parallelUploads }
}

function creationTask(target: { endpoint: string } | { sinkUrl: string }): LoadTask {
  return {
    kind: 'creations',
    target,
    count: plan.creations,
    concurrency: plan.creationConcurrency,
  }
}

/** RSS after the checkpoint, after the last upload, and their ratio. */
async function leakCheck(endpoint: string, pid: number): Promise<number[]> {
  let atCheckpoint = Number.NaN
  for (let upload = 1; upload <= plan.leakUploads; upload++) {
    await tusUpload(endpoint, plan.leakSize)
    if (upload === plan.leakCheckpoint) atCheckpoint = rssMiB(pid)
  }
  const atEnd = rssMiB(pid)
  return [atCheckpoint, atEnd, atEnd / atCheckpoint]
}

/** tusbox on each store: bare @tus/server (B) does not offer concatenation. */
function tusboxContenders(
  lab: Lab,
  run: (endpoint: string, pid: number) => Promise<number[]>,
): Contender[] {
  return tusContenders(lab, run).filter((contender) => contender.subject !== 'B')
}

/** tusbox on each store behind the throttling proxy: `run` gets the endpoint through it. */
function throttledContenders(
  lab: Lab,
  run: (endpoint: string, pid: number) => Promise<number[]>,
): Contender[] {
  const behind: [Subject, ChildServer, ChildServer][] = [
    ['C', lab.tusboxFile, lab.throttledFile],
    ['D', lab.tusboxS3, lab.throttledS3],
  ]
  return behind.map(([subject, server, proxy]) => ({
    subject,
    pid: server.pid,
    run: () => run(proxy.url, server.pid),
  }))
}

/** The tus servers, as contenders running `run` against their endpoint. */
function tusContenders(
  lab: Lab,
  run: (endpoint: string, pid: number) => Promise<number[]>,
): Contender[] {
  const servers: [Subject, ChildServer][] = [
    ['B', lab.bare],
    ['C', lab.tusboxFile],
    ['D', lab.tusboxS3],
  ]
  return servers.map(([subject, server]) => ({
    subject,
    pid: server.pid,
    run: () => run(server.url, server.pid),
  }))
}

/** The figures the targets are judged on. */
interface Figures {
  readonly single: Figure
  readonly rufh: Figure
  readonly chunked: Figure
  readonly creations: Figure
  readonly finish: readonly [Figure, Figure, Figure]
  readonly heavyCrowd: Figure
  readonly lightCrowd: Figure
  readonly rssHeavyCrowd: Figure
  readonly leakRatio: Figure
  readonly s3RequestsSmall: Figure
  readonly sequential: Figure
  readonly parallel: Figure
  readonly throttledSequential: Figure
  readonly throttledParallel: Figure
}

/** A small upload: one PATCH, well below the part size. */
const SMALL_UPLOAD = 100 * KiB

/** The S3 requests of each counted upload, by operation, for the report. */
const s3RequestKinds: { label: string; counts: Record<string, number> }[] = []

async function proxyCounts(lab: Lab, method: 'GET' | 'DELETE'): Promise<Record<string, number>> {
  const answer = expectStatus(
    await send(`${lab.s3Proxy.url}/__bench/counts`, { method }),
    200,
    'S3 request counts',
  )
  return JSON.parse(answer.body) as Record<string, number>
}

/**
 * The S3 requests one upload through tusbox makes, creation to finish, by operation. Counted
 * once: the number does not vary from run to run.
 */
async function countS3Requests(
  lab: Lab,
  label: string,
  upload: () => Promise<unknown>,
): Promise<Figure> {
  const figure = results.define({
    id: `s3-requests-${s3RequestKinds.length}`,
    label,
    unit: 'requests',
    digits: 0,
  })
  await proxyCounts(lab, 'DELETE')
  await upload()
  const counts = await proxyCounts(lab, 'GET')
  await cleaner(lab)('D')
  const total = Object.values(counts).reduce((sum, count) => sum + count, 0)
  results.add(figure, 'D', total)
  s3RequestKinds.push({ label, counts })
  progress(`${label} · D: ${total}`)
  return figure
}

function byOperation(counts: Record<string, number>): string {
  return Object.entries(counts)
    .map(([operation, count]) => `${operation} ${count}`)
    .join(', ')
}

function s3RequestsText(): string {
  return s3RequestKinds
    .map(({ label, counts }) => `- ${label} (D): ${byOperation(counts)}`)
    .join('\n')
}

function crowdLabel(crowd: Crowd): string {
  return `${crowd.uploads} concurrent uploads of ${sizeLabel(crowd.size)}`
}

/** One scenario of many uploads at once: A file, B, C, D and E. */
async function measureCrowd(
  lab: Lab,
  crowd: Crowd,
  rss: boolean,
): Promise<{ aggregate: Figure; rss: Figure | undefined }> {
  const label = crowdLabel(crowd)
  const aggregate = results.define({
    id: `crowd-${crowd.uploads}x${crowd.size}`,
    label: `${label}, aggregate`,
    unit: 'MiB/s',
    digits: 0,
  })
  const p95 = results.define({
    id: `crowd-${crowd.uploads}x${crowd.size}-p95`,
    label: `${label}, p95 time per upload`,
    unit: 's',
    digits: 2,
  })
  const peak = rss
    ? results.define({
        id: `rss-crowd-${crowd.uploads}x${crowd.size}`,
        label: `Peak RSS, ${label}`,
        unit: 'MiB',
        digits: 0,
      })
    : undefined
  await measure(
    lab,
    [aggregate, p95],
    [
      {
        subject: 'A file',
        pid: lab.sink.pid,
        run: () => load(lab, { kind: 'crowd', route: sinkFile(lab), ...crowd }),
      },
      ...tusContenders(lab, (endpoint) =>
        load(lab, { kind: 'crowd', route: { via: 'tus', endpoint }, ...crowd }),
      ),
      {
        subject: 'E',
        pid: undefined,
        run: () => load(lab, { kind: 'crowd', route: rawS3(lab), ...crowd }),
      },
    ],
    { rss: peak },
  )
  return { aggregate, rss: peak }
}

/** tus-js-client with parallelUploads 1, then 4: the two figures. */
async function measureParallelUploads(
  lab: Lab,
  scenario: { readonly id: string; readonly size: number; readonly link: string },
  contenders: (lab: Lab, run: (endpoint: string, pid: number) => Promise<number[]>) => Contender[],
): Promise<[Figure, Figure]> {
  const label =
    `${sizeLabel(scenario.size)} upload, tus-js-client, ${sizeLabel(plan.chunkSize)} chunks` +
    scenario.link
  const figures: [Figure, Figure] = [
    results.define({
      id: `${scenario.id}-1`,
      label: `${label}, parallelUploads 1`,
      unit: 'MiB/s',
      digits: 0,
    }),
    results.define({
      id: `${scenario.id}-${FINAL_PARTS}`,
      label: `${label}, parallelUploads ${FINAL_PARTS}`,
      unit: 'MiB/s',
      digits: 0,
    }),
  ]
  for (const [figure, parallelUploads] of [
    [figures[0], 1],
    [figures[1], FINAL_PARTS],
  ] as const) {
    await measure(
      lab,
      [figure],
      contenders(lab, (endpoint) =>
        load(lab, {
          kind: 'throughput',
          route: tusJsClientRoute(endpoint, parallelUploads),
          size: scenario.size,
        }),
      ),
    )
  }
  return figures
}

async function runScenarios(lab: Lab): Promise<Figures> {
  const size = plan.throughputSize
  const big = sizeLabel(size)
  const chunk = sizeLabel(plan.chunkSize)
  const define = (id: string, label: string, unit: string, digits: number) =>
    results.define({ id, label, unit, digits })
  const cpuFigures = (id: string, label: string): CpuFigures => ({
    mainThread: define(`cpu-main-${id}`, `Server CPU per GiB, main thread, ${label}`, 's', 2),
    allThreads: define(`cpu-all-${id}`, `Server CPU per GiB, all threads, ${label}`, 's', 2),
    bytes: size,
  })

  const leak = [
    define(
      'leak-checkpoint',
      `RSS after ${plan.leakCheckpoint} sequential uploads of ${sizeLabel(plan.leakSize)}`,
      'MiB',
      0,
    ),
    define('leak-end', `RSS after ${plan.leakUploads} of them`, 'MiB', 0),
    define(
      'leak-ratio',
      `RSS growth from upload ${plan.leakCheckpoint} to ${plan.leakUploads}`,
      '×',
      2,
    ),
  ] as const
  // First, on fresh servers: the first uploads warm a process up, the rest must not grow it.
  await measure(
    lab,
    leak,
    tusContenders(lab, (endpoint, pid) => leakCheck(endpoint, pid)),
    { runs: 1, warmUp: false },
  )

  const creations = define(
    'creations',
    `Creations, POST only, ${plan.creationConcurrency} concurrent (A: empty POSTs)`,
    '/s',
    0,
  )
  await measure(
    lab,
    [creations],
    [
      {
        subject: 'A discard',
        pid: lab.sink.pid,
        run: () => load(lab, creationTask({ sinkUrl: lab.sink.url })),
      },
      ...tusContenders(lab, (endpoint) => load(lab, creationTask({ endpoint }))),
    ],
  )

  const finish = plan.finishSizes.map((finishSize) =>
    define(`finish-${finishSize}`, `Finish latency at ${sizeLabel(finishSize)}`, 'ms', 1),
  ) as [Figure, Figure, Figure]
  for (const [index, finishSize] of plan.finishSizes.entries()) {
    await measure(
      lab,
      [finish[index] as Figure],
      tusContenders(lab, (endpoint) =>
        load(lab, { kind: 'finish', endpoint, size: finishSize, tail: FINISH_TAIL }),
      ),
    )
  }

  const single = define('single', `${big} upload, one PATCH`, 'MiB/s', 0)
  const rssSingle = define('rss-single', `Peak RSS, ${big} upload in one PATCH`, 'MiB', 0)
  await measure(
    lab,
    [single],
    [
      {
        subject: 'A file',
        pid: lab.sink.pid,
        run: () => load(lab, { kind: 'throughput', route: sinkFile(lab), size }),
      },
      {
        subject: 'A discard',
        pid: lab.sink.pid,
        run: () =>
          load(lab, {
            kind: 'throughput',
            route: { via: 'sink-discard', sinkUrl: lab.sink.url },
            size,
          }),
      },
      ...tusContenders(lab, (endpoint) =>
        load(lab, { kind: 'throughput', route: { via: 'tus', endpoint }, size }),
      ),
      {
        subject: 'E',
        pid: undefined,
        run: () => load(lab, { kind: 'throughput', route: rawS3(lab), size }),
      },
    ],
    { rss: rssSingle, cpu: cpuFigures('single', 'one PATCH') },
  )

  // The same bytes over RUFH, on tusbox only (bare @tus/server does not speak it): against the
  // one-PATCH tus figure, what the RUFH edge and its 104 progress answers cost.
  const rufh = define('rufh', `${big} upload, one RUFH creation (interop 8)`, 'MiB/s', 0)
  await measure(
    lab,
    [rufh],
    tusContenders(lab, (endpoint) =>
      load(lab, { kind: 'throughput', route: { via: 'rufh', endpoint }, size }),
    ).filter((contender) => contender.subject !== 'B'),
  )

  const chunked = define('chunked', `${big} upload, ${chunk} PATCHes`, 'MiB/s', 0)
  await measure(
    lab,
    [chunked],
    [
      {
        subject: 'A file',
        pid: lab.sink.pid,
        run: () => load(lab, { kind: 'throughput', route: sinkFile(lab, plan.chunkSize), size }),
      },
      ...tusContenders(lab, (endpoint) =>
        load(lab, {
          kind: 'throughput',
          route: { via: 'tus', endpoint, chunk: plan.chunkSize },
          size,
        }),
      ),
    ],
    { cpu: cpuFigures('chunked', `${chunk} PATCHes`) },
  )

  const tusJsClient = define(
    'tus-js-client',
    `${big} upload, tus-js-client, ${chunk} chunks`,
    'MiB/s',
    0,
  )
  await measure(
    lab,
    [tusJsClient],
    tusContenders(lab, (endpoint) =>
      load(lab, { kind: 'throughput', route: tusJsClientRoute(endpoint, 1), size }),
    ),
  )

  const s3RequestsSmall = await countS3Requests(
    lab,
    `S3 requests, one ${sizeLabel(SMALL_UPLOAD)} upload in one PATCH`,
    () => tusUpload(lab.tusboxS3Counted.url, SMALL_UPLOAD),
  )
  await countS3Requests(
    lab,
    `S3 requests, one ${sizeLabel(3 * S3_PART_SIZE)} upload in ${sizeLabel(S3_PART_SIZE)} PATCHes`,
    () => tusUpload(lab.tusboxS3Counted.url, 3 * S3_PART_SIZE, S3_PART_SIZE),
  )

  const heavy = await measureCrowd(lab, plan.heavyCrowd, true)
  const light = await measureCrowd(lab, plan.lightCrowd, false)

  const [sequential, parallel] = await measureParallelUploads(
    lab,
    { id: 'parallel', size: plan.parallelSize, link: '' },
    tusboxContenders,
  )
  const [throttledSequential, throttledParallel] = await measureParallelUploads(
    lab,
    {
      id: 'parallel-throttled',
      size: plan.throttledSize,
      link: `, ${sizeLabel(plan.throttle)}/s per connection`,
    },
    throttledContenders,
  )

  const finalFinish = define(
    'final-finish',
    `Final upload of ${sizeLabel(plan.parallelSize)} from ${FINAL_PARTS} partials: join and finish`,
    'ms',
    0,
  )
  await measure(
    lab,
    [finalFinish],
    tusboxContenders(lab, (endpoint) =>
      load(lab, { kind: 'final', endpoint, size: plan.parallelSize, parts: FINAL_PARTS }),
    ),
  )

  const rssRun = define('rss-run', 'Peak RSS, whole run', 'MiB', 0)
  for (const [subject, peak] of runPeaks) results.add(rssRun, subject, peak)

  if (!heavy.rss) throw new Error('the heavy crowd measures peak RSS')
  return {
    single,
    rufh,
    chunked,
    creations,
    finish,
    heavyCrowd: heavy.aggregate,
    lightCrowd: light.aggregate,
    rssHeavyCrowd: heavy.rss,
    leakRatio: leak[2],
    s3RequestsSmall,
    sequential,
    parallel,
    throttledSequential,
    throttledParallel,
  }
}

const series = (figure: Figure, subject: Subject): Series => ({ figure, subject })

/**
 * "C 300 MiB/s, B 388 MiB/s": the medians a target rests on, so no ratio hides its reference. A
 * median of another figure than the first one's says which.
 */
function basis(list: readonly Series[]): string {
  const first = list[0]?.figure
  return list
    .map(({ figure, subject }) => {
      const value = formatValue(results.median(figure, subject), figure.digits)
      const which = figure === first ? '' : ` (${figure.label})`
      return `${subject} ${value} ${figure.unit}${which}`
    })
    .join(', ')
}

function targets(figures: Figures): Target[] {
  const size = sizeLabel(plan.throughputSize)
  const chunk = sizeLabel(plan.chunkSize)
  const [finishSmall, , finishBig] = figures.finish
  const small = sizeLabel(plan.finishSizes[0])
  const largest = sizeLabel(plan.finishSizes[2])
  /** A ratio of paired runs, with the medians of both sides and of any `context` beside it. */
  const atLeast = (
    label: string,
    numerator: Series,
    denominator: Series,
    goal: number,
    context: readonly Series[] = [],
  ): Target => ({
    label,
    measured: results.pairedRatio(numerator, denominator),
    unit: '',
    digits: 2,
    direction: 'at least',
    goal,
    basis: basis([numerator, denominator, ...context]),
  })
  const throughputTargets = (figure: Figure, label: string): Target[] => [
    atLeast(`${label}: C/B`, series(figure, 'C'), series(figure, 'B'), 0.95, [
      series(figure, 'A file'),
    ]),
    atLeast(`${label}: C/A (file)`, series(figure, 'C'), series(figure, 'A file'), 0.85, [
      series(figure, 'B'),
    ]),
  ]
  const store = { C: 'file store', D: 'S3 store' } as const
  return [
    ...throughputTargets(figures.single, `${size}, one PATCH`),
    ...throughputTargets(figures.chunked, `${size}, ${chunk} PATCHes`),
    ...(['C', 'D'] as const).flatMap((subject): Target[] => [
      {
        label: `Finish latency at ${largest}, ${store[subject]} (${subject})`,
        measured: results.median(finishBig, subject),
        unit: ' ms',
        digits: 1,
        direction: 'at most',
        goal: 100,
        basis: basis([series(finishBig, 'B')]),
      },
      {
        label: `Finish latency at ${largest} / at ${small}, ${store[subject]} (${subject})`,
        measured: results.pairedRatio(series(finishBig, subject), series(finishSmall, subject)),
        unit: '',
        digits: 2,
        direction: 'at most',
        goal: 2,
        basis: basis([series(finishBig, subject), series(finishSmall, subject)]),
      },
    ]),
    ...(['C', 'D'] as const).map((subject) =>
      atLeast(
        `${size}, RUFH / tus one PATCH, ${store[subject]} (${subject})`,
        series(figures.rufh, subject),
        series(figures.single, subject),
        0.95,
      ),
    ),
    ...(['C', 'D'] as const).map((subject) =>
      atLeast(
        `${sizeLabel(plan.throttledSize)} at ${sizeLabel(plan.throttle)}/s per connection, ` +
          `tus-js-client parallelUploads ${FINAL_PARTS} / 1, ${store[subject]} (${subject})`,
        series(figures.throttledParallel, subject),
        series(figures.throttledSequential, subject),
        1.5,
      ),
    ),
    atLeast(
      'Creations/s: C/B',
      series(figures.creations, 'C'),
      series(figures.creations, 'B'),
      0.6,
      [series(figures.creations, 'A discard')],
    ),
    atLeast(
      `${size}, one PATCH: D/E`,
      series(figures.single, 'D'),
      series(figures.single, 'E'),
      0.9,
    ),
    atLeast(
      `${size}, ${chunk} PATCHes: D/E (E in one upload)`,
      series(figures.chunked, 'D'),
      series(figures.single, 'E'),
      0.9,
    ),
    atLeast(
      `${crowdLabel(plan.heavyCrowd)}, aggregate: D/E`,
      series(figures.heavyCrowd, 'D'),
      series(figures.heavyCrowd, 'E'),
      0.9,
    ),
    atLeast(
      `${crowdLabel(plan.lightCrowd)}, aggregate: D/E`,
      series(figures.lightCrowd, 'D'),
      series(figures.lightCrowd, 'E'),
      0.7,
    ),
    {
      label: `S3 requests, one ${sizeLabel(SMALL_UPLOAD)} upload in one PATCH (D)`,
      measured: results.median(figures.s3RequestsSmall, 'D'),
      unit: '',
      digits: 0,
      direction: 'at most',
      // What S3 needs: CreateMultipartUpload, UploadPart, CompleteMultipartUpload.
      goal: 3,
      basis: byOperation(s3RequestKinds[0]?.counts ?? {}),
    },
    ...(['C', 'D'] as const).flatMap((subject): Target[] => [
      {
        label: `Peak RSS, ${crowdLabel(plan.heavyCrowd)}, ${store[subject]} (${subject})`,
        measured: results.median(figures.rssHeavyCrowd, subject),
        unit: ' MiB',
        digits: 0,
        direction: 'at most',
        goal: 250,
        basis: basis([series(figures.rssHeavyCrowd, 'B')]),
      },
      {
        label: `No leak: RSS growth over ${plan.leakUploads} uploads, ${store[subject]} (${subject})`,
        measured: results.median(figures.leakRatio, subject),
        unit: '×',
        digits: 2,
        direction: 'at most',
        goal: 1.2,
        basis: basis([series(figures.leakRatio, 'B')]),
      },
    ]),
  ]
}

interface Conditions {
  readonly machine: Machine
  readonly loadAverage: { readonly start: number[]; readonly end: number[] }
  /** CPU other processes used during the whole run, in percent of the machine. */
  readonly othersCpuPercent: number
  /** Which S3 server D and E used. */
  readonly s3Server: string
}

function report(figures: Figures, conditions: Conditions) {
  const { machine: about, loadAverage: load } = conditions
  // Quick mode's figures are warm-up and start-up dominated: judging targets on them misleads.
  const list = plan.mode === 'full' ? targets(figures) : []
  const durationSeconds = Math.round(seconds(clock))
  const loadText = (values: number[]) => values.map((value) => value.toFixed(2)).join(' ')
  const markdown = [
    `## tusbox benchmark, ${plan.mode} mode`,
    '',
    `${startedAt.toISOString()}, ${durationSeconds} s. ${about.cpus} × ${about.cpuModel}, ` +
      `${about.memoryGiB} GiB RAM, Node ${about.node}, ${about.kernel}; files on ${about.filesystem}. ` +
      `Load average (1/5/15 min) at the start ${loadText(load.start)}, at the end ${loadText(load.end)}; ` +
      `other processes used ${conditions.othersCpuPercent.toFixed(0)} % of the machine's CPU during the run ` +
      "(per figure in the last column: what ran outside the benchmark's process tree).",
    '',
    `Each figure is the median of ${plan.runs} run${plan.runs === 1 ? '' : 's'} after one warm-up round ` +
      '(the leak check runs once, on fresh servers); each ratio is the median of the run-by-run ratios. ' +
      SUBJECTS.map((subject) => `${subject}: ${SUBJECT_NAMES[subject]}`).join('; ') +
      `. D and E use ${conditions.s3Server}.` +
      (onlySubjects ? ` Only ${[...onlySubjects].join(', ')} were measured (--only).` : ''),
    '',
    plan.mode === 'full'
      ? targetsTable(list)
      : 'Quick mode proves that the benchmark runs; its small sizes measure start-up and warm-up, ' +
        'so it judges no target and shows no ratio. Run the full mode for figures.',
    '',
    figuresTable(results),
    '',
    'S3 requests by operation:',
    '',
    s3RequestsText(),
    '',
  ].join('\n')
  const json = {
    mode: plan.mode,
    startedAt: startedAt.toISOString(),
    durationSeconds,
    ...conditions,
    plan,
    subjects: SUBJECT_NAMES,
    targets: list.map((target) => ({ ...target, pass: passes(target) ?? null })),
    figures: results.toJSON(),
    s3Requests: s3RequestKinds,
  }
  return { markdown, json }
}

async function main(): Promise<void> {
  const loadAtStart = os.loadavg()
  const cpuAtStart = cpuSnapshot()
  const workdir = await mkdtemp(path.join(os.tmpdir(), 'tusbox-bench-'))
  stops.push(() => rm(workdir, { recursive: true, force: true }))
  // mkdtemp makes a private directory; the embedded PostgreSQL may run as another user.
  await chmod(workdir, 0o755)
  const machine = describeMachine(workdir)
  progress(
    `${plan.mode} mode in ${workdir}; load average ${loadAtStart.map((v) => v.toFixed(2)).join(' ')}`,
  )
  const lab = await startLab(workdir)
  progress('servers are up')
  const figures = await runScenarios(lab)
  const { markdown, json } = report(figures, {
    machine,
    loadAverage: { start: loadAtStart, end: os.loadavg() },
    othersCpuPercent: othersCpuPercent(cpuAtStart, cpuSnapshot()),
    s3Server: lab.s3Endpoint.description,
  })

  const outDir = path.join(ROOT, 'bench-results')
  await mkdir(outDir, { recursive: true })
  const base = path.join(outDir, `${startedAt.toISOString().replace(/[:.]/g, '-')}-${plan.mode}`)
  await writeFile(`${base}.md`, markdown)
  await writeFile(`${base}.json`, `${JSON.stringify(json, null, 2)}\n`)
  process.stdout.write(`${markdown}\n`)
  process.stdout.write(`Written to ${base}.md and ${base}.json\n`)
}

try {
  await main()
} catch (error) {
  // After a signal, requests fail because their servers are being stopped: that is no news.
  if (!stopping) {
    process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`)
  }
  process.exitCode = 1
} finally {
  await stopEverything()
}
