/**
 * npm run bench [-- --quick]: tusbox against the references it must be compared with, side by
 * side in one run on 127.0.0.1. See docs/benchmarks.md for what is measured and why.
 *
 *   A  node:http piping bodies to a file (and discarding them): what Node can ingest here
 *   B  bare @tus/server with the same FileStore, no database: what a user would run instead
 *   C  tusbox serve on the file store, with its own PostgreSQL
 *   D  tusbox serve on S3 (the fauxqs test server)
 *   E  the same bytes put to the same S3 server with @aws-sdk/lib-storage
 *
 * Every server is a child process (its RSS is its own); this process is the client. Each figure
 * is the median of several runs, the subjects taking turns within each run so that a change in
 * the machine's load hits them alike. Missed targets are reported, never an exit code: only an
 * error fails the run.
 */
import { randomUUID } from 'node:crypto'
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import type { S3Client } from '@aws-sdk/client-s3'
import { Upload as S3Upload } from '@aws-sdk/lib-storage'
import pg from 'pg'
import * as tus from 'tus-js-client'
import { startEmbeddedPostgres } from '../src/db/embedded-postgres.ts'
import { createLogger } from '../src/lib/logger.ts'
import { emptyBucket } from '../test/helpers/s3-buckets.ts'
import {
  closeClient,
  expectStatus,
  fileBytes,
  fileStream,
  GiB,
  KiB,
  MiB,
  rufhUpload,
  send,
  sinkUpload,
  tusCreate,
  tusPatch,
  tusUpload,
} from './bench/client.ts'
import { cpuSnapshot, describeMachine, type Machine, othersCpuPercent } from './bench/machine.ts'
import {
  type Figure,
  figuresTable,
  passes,
  percentile,
  Results,
  ratio,
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
  emptyDirectory,
  peakRssMiB,
  resetPeakRss,
  rssMiB,
  S3_CREDENTIALS,
  S3_REGION,
  s3Client,
  startBenchServer,
  startTusbox,
} from './bench/servers.ts'

interface Plan {
  readonly mode: 'full' | 'quick'
  /** Each figure is the median of this many runs (the leak check runs once). */
  readonly runs: number
  /** The large upload, and the largest finish-latency size. */
  readonly bigSize: number
  readonly chunkSize: number
  readonly finishSizes: readonly [number, number, number]
  readonly creations: number
  readonly creationConcurrency: number
  readonly concurrentUploads: number
  readonly concurrentSize: number
  readonly leakUploads: number
  readonly leakCheckpoint: number
  readonly leakSize: number
}

const FULL: Plan = {
  mode: 'full',
  runs: 5,
  bigSize: GiB,
  chunkSize: 8 * MiB,
  finishSizes: [MiB, 64 * MiB, GiB],
  creations: 2000,
  creationConcurrency: 8,
  concurrentUploads: 64,
  concurrentSize: 16 * MiB,
  leakUploads: 500,
  leakCheckpoint: 100,
  leakSize: MiB,
}

/** The same code paths with small sizes, for CI: well under a minute on two cores. */
const QUICK: Plan = {
  mode: 'quick',
  runs: 1,
  bigSize: 32 * MiB,
  chunkSize: 8 * MiB,
  finishSizes: [MiB, 8 * MiB, 32 * MiB],
  creations: 200,
  creationConcurrency: 8,
  concurrentUploads: 16,
  concurrentSize: 2 * MiB,
  leakUploads: 50,
  leakCheckpoint: 10,
  leakSize: 256 * KiB,
}

/**
 * The last PATCH of a finish-latency probe: small, so the figure is the finish step (type sniff,
 * hash, transaction; on S3 the multipart completion) and not the transfer of a chunk.
 */
const FINISH_TAIL = 64 * KiB
/** tusbox's S3_PART_SIZE default; E uses the same part size. */
const S3_PART_SIZE = 8 * MiB
const ROOT = path.resolve(import.meta.dirname, '..')
const TUSBOX_BUCKET = 'bench-tusbox'
const RAW_BUCKET = 'bench-raw'

const { values: flags } = parseArgs({ options: { quick: { type: 'boolean', default: false } } })
const plan = flags.quick ? QUICK : FULL
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
  readonly s3: S3Client
}

/** Starts PostgreSQL, the S3 server and the servers under test, all on 127.0.0.1. */
async function startLab(workdir: string): Promise<Lab> {
  const sinkDir = path.join(workdir, 'sink')
  const bareDir = path.join(workdir, 'bare-tus')
  const tusboxFileDir = path.join(workdir, 'tusbox-files')
  const tempDir = path.join(workdir, 'tmp')
  await Promise.all([sinkDir, bareDir, tusboxFileDir, tempDir].map((dir) => mkdir(dir)))

  const [postgres, s3Server, sink, bare] = await Promise.all([
    started(
      startEmbeddedPostgres({
        dir: path.join(workdir, 'postgres'),
        port: 0,
        database: 'postgres',
        logger: createLogger('warn'),
      }),
    ),
    started(startBenchServer('s3-server.ts', [], workdir)),
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
  } finally {
    await admin.end()
  }
  const s3 = s3Client(s3Server.url)
  stops.push(async () => s3.destroy())
  await Promise.all([createBucket(s3, TUSBOX_BUCKET), createBucket(s3, RAW_BUCKET)])

  const common = {
    AUTH_ALLOW_ANONYMOUS: 'true',
    FILE_UPLOAD_MAX_SIZE: String(plan.bigSize),
    CHECKSUM_TEMP_DIR: tempDir,
    // @tus/s3-store buffers parts in the system temporary directory: keep them in ours.
    TMPDIR: tempDir,
  }
  const [tusboxFile, tusboxS3] = await Promise.all([
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
    started(
      startTusbox(
        's3',
        {
          ...common,
          DATABASE_URL: databaseUrl('bench_s3'),
          STORAGE_BACKEND: 's3',
          AWS_STORAGE_BUCKET_NAME: TUSBOX_BUCKET,
          AWS_S3_ENDPOINT_URL: s3Server.url,
          AWS_S3_REGION_NAME: S3_REGION,
          AWS_ACCESS_KEY_ID: S3_CREDENTIALS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: S3_CREDENTIALS.secretAccessKey,
          AWS_S3_FORCE_PATH_STYLE: 'true',
          S3_PART_SIZE: String(S3_PART_SIZE),
        },
        workdir,
      ),
    ),
  ])
  return { sink, sinkDir, bare, bareDir, tusboxFile, tusboxFileDir, tusboxS3, s3 }
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

async function measure(
  lab: Lab,
  figures: readonly Figure[],
  contenders: readonly Contender[],
  options: { readonly runs?: number; readonly rss?: Figure } = {},
): Promise<void> {
  const clean = cleaner(lab)
  const runs = options.runs ?? plan.runs
  const before = cpuSnapshot()
  for (let run = 1; run <= runs; run++) {
    for (const contender of contenders) {
      if (stopping) throw new Error('the benchmark is stopping')
      const { pid, subject } = contender
      if (pid !== undefined) resetPeakRss(pid)
      const values = await contender.run()
      if (pid !== undefined) {
        const peak = peakRssMiB(pid)
        runPeaks.set(subject, Math.max(peak, runPeaks.get(subject) ?? 0))
        if (options.rss) results.add(options.rss, subject, peak)
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
  for (const figure of [...figures, ...(options.rss ? [options.rss] : [])]) {
    results.setOthersCpu(figure, others)
  }
}

function seconds(since: number): number {
  return (performance.now() - since) / 1000
}

/** MiB/s of one upload of `size` bytes, from its first request to its last answer. */
async function throughput(size: number, upload: () => Promise<unknown>): Promise<number[]> {
  const since = performance.now()
  await upload()
  return [size / MiB / seconds(since)]
}

/** E: the bytes put with lib-storage, with tusbox's part size and lib-storage's concurrency. */
function s3Put(lab: Lab, size: number): Promise<unknown> {
  return new S3Upload({
    client: lab.s3,
    params: { Bucket: RAW_BUCKET, Key: randomUUID(), Body: fileStream(size) },
    partSize: S3_PART_SIZE,
  }).done()
}

function tusJsClientUpload(endpoint: string, bytes: Buffer, chunkSize: number): Promise<void> {
  return new Promise((resolve, reject) => {
    new tus.Upload(bytes, {
      endpoint,
      chunkSize,
      retryDelays: [],
      metadata: { filename: 'bench.txt', filetype: 'text/plain' },
      onSuccess: () => resolve(),
      onError: reject,
    }).start()
  })
}

async function creationsPerSecond(create: () => Promise<unknown>): Promise<number[]> {
  let remaining = plan.creations
  const since = performance.now()
  await Promise.all(
    Array.from({ length: plan.creationConcurrency }, async () => {
      while (remaining > 0) {
        remaining--
        await create()
      }
    }),
  )
  return [plan.creations / seconds(since)]
}

/** All of the file but FINISH_TAIL in one PATCH, then the time the last PATCH takes. */
async function finishLatencyMs(endpoint: string, size: number): Promise<number[]> {
  const url = await tusCreate(endpoint, size)
  const head = size - FINISH_TAIL
  await tusPatch(url, 0, head)
  const since = performance.now()
  await tusPatch(url, head, FINISH_TAIL)
  return [performance.now() - since]
}

/** Aggregate MiB/s of all the uploads at once, and the 95th percentile of their durations. */
async function concurrently(upload: () => Promise<unknown>): Promise<number[]> {
  const since = performance.now()
  const durations = await Promise.all(
    Array.from({ length: plan.concurrentUploads }, async () => {
      const own = performance.now()
      await upload()
      return seconds(own)
    }),
  )
  const aggregate = (plan.concurrentUploads * plan.concurrentSize) / MiB / seconds(since)
  return [aggregate, percentile(durations, 95)]
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
  readonly concurrentThroughput: Figure
  readonly rssConcurrent: Figure
  readonly leakRatio: Figure
}

async function runScenarios(lab: Lab): Promise<Figures> {
  const big = sizeLabel(plan.bigSize)
  const chunk = sizeLabel(plan.chunkSize)
  const define = (id: string, label: string, unit: string, digits: number) =>
    results.define({ id, label, unit, digits })

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
    { runs: 1 },
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
        run: () =>
          creationsPerSecond(async () =>
            expectStatus(await send(`${lab.sink.url}/discard`, { method: 'POST' }), 204, 'POST'),
          ),
      },
      ...tusContenders(lab, (endpoint) => creationsPerSecond(() => tusCreate(endpoint, MiB))),
    ],
  )

  const finish = plan.finishSizes.map((size) =>
    define(`finish-${size}`, `Finish latency at ${sizeLabel(size)}`, 'ms', 1),
  ) as [Figure, Figure, Figure]
  for (const [index, size] of plan.finishSizes.entries()) {
    await measure(
      lab,
      [finish[index] as Figure],
      tusContenders(lab, (endpoint) => finishLatencyMs(endpoint, size)),
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
        run: () =>
          throughput(plan.bigSize, () =>
            sinkUpload(`${lab.sink.url}/file/${randomUUID()}`, plan.bigSize),
          ),
      },
      {
        subject: 'A discard',
        pid: lab.sink.pid,
        run: () =>
          throughput(plan.bigSize, () => sinkUpload(`${lab.sink.url}/discard`, plan.bigSize)),
      },
      ...tusContenders(lab, (endpoint) =>
        throughput(plan.bigSize, () => tusUpload(endpoint, plan.bigSize)),
      ),
      {
        subject: 'E',
        pid: undefined,
        run: () => throughput(plan.bigSize, () => s3Put(lab, plan.bigSize)),
      },
    ],
    { rss: rssSingle },
  )

  // The same bytes over RUFH, on tusbox only (bare @tus/server does not speak it): against the
  // one-PATCH tus figure, what the RUFH edge and its 104 progress answers cost.
  const rufh = define('rufh', `${big} upload, one RUFH creation (interop 8)`, 'MiB/s', 0)
  await measure(
    lab,
    [rufh],
    tusContenders(lab, (endpoint) =>
      throughput(plan.bigSize, () => rufhUpload(endpoint, plan.bigSize)),
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
        run: () =>
          throughput(plan.bigSize, () =>
            sinkUpload(`${lab.sink.url}/file/${randomUUID()}`, plan.bigSize, plan.chunkSize),
          ),
      },
      ...tusContenders(lab, (endpoint) =>
        throughput(plan.bigSize, () => tusUpload(endpoint, plan.bigSize, plan.chunkSize)),
      ),
    ],
  )

  const tusJsClient = define(
    'tus-js-client',
    `${big} upload, tus-js-client, ${chunk} chunks`,
    'MiB/s',
    0,
  )
  const bytes = fileBytes(plan.bigSize)
  await measure(
    lab,
    [tusJsClient],
    tusContenders(lab, (endpoint) =>
      throughput(plan.bigSize, () => tusJsClientUpload(endpoint, bytes, plan.chunkSize)),
    ),
  )

  const uploads = `${plan.concurrentUploads} concurrent uploads of ${sizeLabel(plan.concurrentSize)}`
  const concurrentThroughput = define('concurrent', `${uploads}, aggregate`, 'MiB/s', 0)
  const concurrentP95 = define('concurrent-p95', `${uploads}, p95 time per upload`, 's', 2)
  const rssConcurrent = define('rss-concurrent', `Peak RSS, ${uploads}`, 'MiB', 0)
  await measure(
    lab,
    [concurrentThroughput, concurrentP95],
    [
      {
        subject: 'A file',
        pid: lab.sink.pid,
        run: () =>
          concurrently(() =>
            sinkUpload(`${lab.sink.url}/file/${randomUUID()}`, plan.concurrentSize),
          ),
      },
      ...tusContenders(lab, (endpoint) =>
        concurrently(() => tusUpload(endpoint, plan.concurrentSize)),
      ),
      {
        subject: 'E',
        pid: undefined,
        run: () => concurrently(() => s3Put(lab, plan.concurrentSize)),
      },
    ],
    { rss: rssConcurrent },
  )

  const rssRun = define('rss-run', 'Peak RSS, whole run', 'MiB', 0)
  for (const [subject, peak] of runPeaks) results.add(rssRun, subject, peak)

  return {
    single,
    rufh,
    chunked,
    creations,
    finish,
    concurrentThroughput,
    rssConcurrent,
    leakRatio: leak[2],
  }
}

function targets(figures: Figures): Target[] {
  const m = (figure: Figure, subject: Subject) => results.median(figure, subject)
  const big = sizeLabel(plan.bigSize)
  const chunk = sizeLabel(plan.chunkSize)
  const [finishSmall, , finishBig] = figures.finish
  const small = sizeLabel(plan.finishSizes[0])
  const atLeast = (label: string, measured: number | undefined, goal: number): Target => ({
    label,
    measured,
    unit: '',
    digits: 2,
    direction: 'at least',
    goal,
  })
  const store = { C: 'file store', D: 'S3 store' } as const
  return [
    atLeast(`${big}, one PATCH: C/B`, ratio(m(figures.single, 'C'), m(figures.single, 'B')), 0.95),
    atLeast(
      `${big}, one PATCH: C/A (file)`,
      ratio(m(figures.single, 'C'), m(figures.single, 'A file')),
      0.85,
    ),
    atLeast(
      `${big}, ${chunk} PATCHes: C/B`,
      ratio(m(figures.chunked, 'C'), m(figures.chunked, 'B')),
      0.95,
    ),
    atLeast(
      `${big}, ${chunk} PATCHes: C/A (file)`,
      ratio(m(figures.chunked, 'C'), m(figures.chunked, 'A file')),
      0.85,
    ),
    ...(['C', 'D'] as const).flatMap((subject): Target[] => [
      {
        label: `Finish latency at ${big}, ${store[subject]} (${subject})`,
        measured: m(finishBig, subject),
        unit: ' ms',
        digits: 1,
        direction: 'at most',
        goal: 100,
      },
      {
        label: `Finish latency at ${big} / at ${small}, ${store[subject]} (${subject})`,
        measured: ratio(m(finishBig, subject), m(finishSmall, subject)),
        unit: '',
        digits: 2,
        direction: 'at most',
        goal: 2,
      },
    ]),
    ...(['C', 'D'] as const).map((subject) =>
      atLeast(
        `${big}, RUFH / tus one PATCH, ${store[subject]} (${subject})`,
        ratio(m(figures.rufh, subject), m(figures.single, subject)),
        0.95,
      ),
    ),
    atLeast('Creations/s: C/B', ratio(m(figures.creations, 'C'), m(figures.creations, 'B')), 0.5),
    atLeast(`${big}, one PATCH: D/E`, ratio(m(figures.single, 'D'), m(figures.single, 'E')), 0.9),
    atLeast(
      `${big}, ${chunk} PATCHes: D/E (E as above)`,
      ratio(m(figures.chunked, 'D'), m(figures.single, 'E')),
      0.9,
    ),
    atLeast(
      `${plan.concurrentUploads} concurrent uploads, aggregate: D/E`,
      ratio(m(figures.concurrentThroughput, 'D'), m(figures.concurrentThroughput, 'E')),
      0.9,
    ),
    ...(['C', 'D'] as const).flatMap((subject): Target[] => [
      {
        label: `Peak RSS, ${plan.concurrentUploads} concurrent uploads, ${store[subject]} (${subject})`,
        measured: m(figures.rssConcurrent, subject),
        unit: ' MiB',
        digits: 0,
        direction: 'at most',
        goal: 250,
      },
      {
        label: `No leak: RSS growth over ${plan.leakUploads} uploads, ${store[subject]} (${subject})`,
        measured: m(figures.leakRatio, subject),
        unit: '×',
        digits: 2,
        direction: 'at most',
        goal: 1.2,
      },
    ]),
  ]
}

interface Conditions {
  readonly machine: Machine
  readonly loadAverage: { readonly start: number[]; readonly end: number[] }
  /** CPU other processes used during the whole run, in percent of the machine. */
  readonly othersCpuPercent: number
}

function report(figures: Figures, conditions: Conditions) {
  const { machine: about, loadAverage: load } = conditions
  const list = targets(figures)
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
    `Each figure is the median of ${plan.runs} run${plan.runs === 1 ? '' : 's'} (the leak check runs once). ` +
      SUBJECTS.map((subject) => `${subject}: ${SUBJECT_NAMES[subject]}`).join('; ') +
      '.',
    '',
    targetsTable(list),
    '',
    figuresTable(results),
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
