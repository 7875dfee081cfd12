import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { type ErrorBody, type RemoteFile, TusboxApi } from './api.ts'
import type { LocalFile } from './local-files.ts'
import {
  createProgressDisplay,
  type FileProgress,
  type OutputStream,
  type ProgressDisplay,
  type ProgressMode,
} from './progress.ts'
import { ResumeStore } from './resume-store.ts'
import { fingerprintOf, type SendResult, sendFile } from './send-file.ts'
import { formatBytes } from './units.ts'

export interface UploadRunOptions {
  readonly files: readonly LocalFile[]
  readonly endpoint: string
  readonly apiBase: string
  readonly token: string | undefined
  readonly chunkSize: number
  readonly parallel: number
  readonly batch: boolean
  readonly configDir: string
  readonly progress: ProgressMode
}

export interface UploadRunIo {
  readonly stderr: OutputStream
  /** Aborted when the user interrupts (Ctrl-C): uploads stop and stay resumable. */
  readonly interrupted: AbortSignal
}

/**
 * What became of a file. STORED, FAILED: the server's verdict. MISMATCH: stored, but not with the
 * bytes the file has now. ERROR: not finished for a reason outside the file (network,
 * credentials, server errors); the next run resumes it. INTERRUPTED, NOT_STARTED: stopped by the
 * user.
 */
export type OutcomeStatus =
  | 'STORED'
  | 'FAILED'
  | 'MISMATCH'
  | 'ERROR'
  | 'INTERRUPTED'
  | 'NOT_STARTED'

export interface FileOutcome {
  readonly path: string
  readonly size: number
  readonly status: OutcomeStatus
  readonly id: string | null
  readonly sha256: string | null
  readonly contentType: string | null
  /** Bytes the server already had from an earlier run, which this run did not send again. */
  readonly resumedFrom: number
  /**
   * Bytes the server has acknowledged: for INTERRUPTED and ERROR, at least what the next run
   * resumes from (the server also keeps what arrived of the chunk in flight).
   */
  readonly bytesAcknowledged: number
  readonly error: ErrorBody | null
}

export interface UploadRunResult {
  readonly files: readonly FileOutcome[]
  /**
   * completed: batch.completed is recorded. closed: declared complete, but some file in it is
   * not STORED, so it never completes. open: left for the next run to resume files into.
   */
  readonly batch: { readonly id: string; readonly state: 'completed' | 'closed' | 'open' } | null
  readonly interrupted: boolean
}

/** The server's verdict is in: nothing about these files changes by running again. */
export const FINAL_STATUSES: ReadonlySet<OutcomeStatus> = new Set(['STORED', 'FAILED', 'MISMATCH'])

/**
 * After the last byte the server validates and hashes the file before it answers, so the first
 * look usually finds it STORED; the backoff covers a finish that is still running elsewhere.
 */
const POLL_DELAYS_MS = [0, 100, 200, 400, 800, 1_500]
const POLL_INTERVAL_MAX_MS = 2_000
const POLL_TIMEOUT_MS = 60_000

export async function runUpload(
  options: UploadRunOptions,
  io: UploadRunIo,
): Promise<UploadRunResult> {
  const { files } = options
  const signal = io.interrupted
  const headers: Record<string, string> = options.token
    ? { Authorization: `Bearer ${options.token}` }
    : {}
  const api = new TusboxApi(options.apiBase, headers)
  const store = new ResumeStore(options.configDir)
  const tracked: FileProgress[] = files.map((file) => ({
    file,
    phase: 'queued',
    sent: 0,
    resumedFrom: 0,
    startedAt: undefined,
  }))
  const outcomes: (FileOutcome | undefined)[] = files.map(() => undefined)
  const display = createProgressDisplay(options.progress, tracked, io.stderr)
  const onInterrupt = () =>
    display.note(
      'Interrupted: stopping; the uploads stay resumable (Ctrl-C again to quit at once).',
    )
  signal.addEventListener('abort', onInterrupt, { once: true })

  try {
    const total = files.reduce((sum, file) => sum + file.size, 0)
    const parallel = Math.min(options.parallel, files.length)
    const at = parallel === 1 ? 'one at a time' : `${parallel} at a time`
    display.note(
      `Uploading ${files.length} file${files.length === 1 ? '' : 's'} (${formatBytes(total)}) to ${options.endpoint}, ${at}`,
    )
    const runKey = JSON.stringify([
      'tusbox-run',
      ...files.map((file) => fingerprintOf(options.endpoint, file)).sort(),
    ])
    let batch: ChosenBatch | undefined
    try {
      batch = options.batch
        ? await chooseBatch(files, options.endpoint, runKey, store, api, display, signal)
        : undefined
    } catch (error) {
      // Interrupted before any file started: reported as such below, not as a failure.
      if (!signal.aborted) throw error
    }

    let next = 0
    let done = 0
    const work = async () => {
      while (!signal.aborted) {
        const index = next++
        const progress = tracked[index]
        if (!progress) return
        const outcome = await uploadOne(progress, {
          endpoint: options.endpoint,
          headers,
          chunkSize: options.chunkSize,
          batch,
          api,
          store,
          display,
          signal,
        })
        outcomes[index] = outcome
        progress.phase = 'done'
        done++
        const reason = outcome.error ? `: ${outcome.error.code}: ${outcome.error.message}` : ''
        display.note(`[${done}/${files.length}] ${outcome.status} ${outcome.path}${reason}`)
      }
    }
    if (!signal.aborted) await Promise.all(Array.from({ length: parallel }, work))

    const results = files.map((file, index) => outcomes[index] ?? notStarted(file))
    let batchResult: UploadRunResult['batch'] = null
    if (batch) {
      // A file left to resume keeps the batch open: the next run adds it, then completes it.
      const allSent = results.every((result) => FINAL_STATUSES.has(result.status))
      if (allSent && !signal.aborted) {
        const view = await api.completeBatch(batch.id)
        await store.forgetOpenBatch(runKey)
        batchResult = { id: batch.id, state: view.completedAt === null ? 'closed' : 'completed' }
      } else {
        batchResult = { id: batch.id, state: 'open' }
      }
    }
    return { files: results, batch: batchResult, interrupted: signal.aborted }
  } finally {
    signal.removeEventListener('abort', onInterrupt)
    display.stop()
    await store.settled()
  }
}

interface FileContext {
  readonly endpoint: string
  readonly headers: Readonly<Record<string, string>>
  readonly chunkSize: number
  readonly batch: ChosenBatch | undefined
  readonly api: TusboxApi
  readonly store: ResumeStore
  readonly display: ProgressDisplay
  readonly signal: AbortSignal
}

async function uploadOne(progress: FileProgress, context: FileContext): Promise<FileOutcome> {
  const { file } = progress
  progress.phase = 'sending'
  progress.startedAt = Date.now()
  const localHash = sha256OfFile(file.absolutePath, context.signal)
  const earlier = await storedEarlierInBatch(file, context.batch, localHash)
  if (earlier) {
    context.display.note(`${file.displayPath}: already stored in the batch as ${earlier.id}`)
    return {
      path: file.displayPath,
      size: file.size,
      status: 'STORED',
      id: earlier.id,
      sha256: earlier.sha256,
      contentType: earlier.contentType,
      resumedFrom: file.size,
      bytesAcknowledged: file.size,
      error: null,
    }
  }
  const result = await sendFile(
    file,
    {
      endpoint: context.endpoint,
      headers: context.headers,
      chunkSize: context.chunkSize,
      batchId: context.batch?.id,
      store: context.store,
    },
    {
      started(id, resumedFrom) {
        progress.resumedFrom = resumedFrom
        progress.sent = Math.max(progress.sent, resumedFrom)
        if (resumedFrom > 0) {
          context.display.note(
            `Resuming ${file.displayPath} at ${formatBytes(resumedFrom)} of ${formatBytes(file.size)} (upload ${id})`,
          )
        }
      },
      restarted(status) {
        context.display.note(
          `${file.displayPath}: the server no longer has the previous upload (${status}); starting over`,
        )
      },
      progress(bytesSent) {
        progress.sent = bytesSent
      },
      acknowledged(offset) {
        progress.sent = Math.max(progress.sent, offset)
      },
      retrying(reason, delayMs) {
        context.display.note(
          `${file.displayPath}: ${reason}; trying again in ${Math.round(delayMs / 1000)} s`,
        )
      },
    },
    context.signal,
  )
  if (result.kind !== 'sent') return outcomeOf(file, result, progress.resumedFrom)

  progress.phase = 'finishing'
  progress.sent = file.size
  const base = {
    path: file.displayPath,
    size: file.size,
    id: result.id,
    resumedFrom: result.resumedFrom,
  }
  let remote: RemoteFile | undefined
  try {
    remote = await waitUntilFinished(context.api, result.id, context.signal)
  } catch (error) {
    if (context.signal.aborted) return lastLook(context.api, base, localHash)
    return {
      ...base,
      status: 'ERROR',
      sha256: null,
      contentType: null,
      bytesAcknowledged: file.size,
      error: { code: 'status_unknown', message: (error as Error).message },
    }
  }
  if (!remote) return lastLook(context.api, base, localHash)
  return compareWithServer(base, remote, await localHash)
}

/** How long an interrupted run still waits to learn whether a file it sent whole was stored. */
const LAST_LOOK_TIMEOUT_MS = 3_000

/**
 * Interrupted after its last byte: the server has usually stored the file already, and saying
 * INTERRUPTED would send the user to resume a file that is done. One look, briefly.
 */
async function lastLook(
  api: TusboxApi,
  base: Pick<FileOutcome, 'path' | 'size' | 'id' | 'resumedFrom'>,
  localHash: Promise<string | undefined>,
): Promise<FileOutcome> {
  if (!base.id) return interruptedAfterSending(base)
  try {
    const remote = await api.getFile(base.id, AbortSignal.timeout(LAST_LOOK_TIMEOUT_MS))
    if (remote.status !== 'UPLOADING') return compareWithServer(base, remote, await localHash)
  } catch {
    // No answer in time: the file may or may not be stored; the message below says how to know.
  }
  return interruptedAfterSending(base)
}

function compareWithServer(
  base: Pick<FileOutcome, 'path' | 'size' | 'id' | 'resumedFrom'>,
  remote: RemoteFile,
  localSha256: string | undefined,
): FileOutcome {
  const common = {
    ...base,
    sha256: remote.sha256,
    contentType: remote.contentType,
    bytesAcknowledged: base.size,
  }
  switch (remote.status) {
    case 'STORED':
      if (localSha256 !== undefined && remote.sha256 !== localSha256) {
        return {
          ...common,
          status: 'MISMATCH',
          error: {
            code: 'sha256_mismatch',
            message: `The server stored sha256 ${remote.sha256}, but the file now has ${localSha256}: did it change while it was sent?`,
          },
        }
      }
      return { ...common, status: 'STORED', error: null }
    case 'FAILED':
      return {
        ...common,
        status: 'FAILED',
        error: remote.error ?? { code: 'upload_failed', message: 'The server refused the file.' },
      }
    case 'UPLOADING':
      return {
        ...common,
        status: 'ERROR',
        error: {
          code: 'not_finished',
          message: `The server had not finished the file ${POLL_TIMEOUT_MS / 1000} s after its last byte.`,
        },
      }
    default:
      return {
        ...common,
        status: 'ERROR',
        error: {
          code: `file_${remote.status.toLowerCase()}`,
          message: `The file is ${remote.status}.`,
        },
      }
  }
}

function interruptedAfterSending(
  base: Pick<FileOutcome, 'path' | 'size' | 'id' | 'resumedFrom'>,
): FileOutcome {
  return {
    ...base,
    status: 'INTERRUPTED',
    sha256: null,
    contentType: null,
    bytesAcknowledged: base.size,
    error: {
      code: 'interrupted_while_finishing',
      message: `Every byte was sent; GET /api/files/${base.id} tells whether it was stored.`,
    },
  }
}

function outcomeOf(
  file: LocalFile,
  result: Exclude<SendResult, { kind: 'sent' }>,
  resumedFrom: number,
): FileOutcome {
  const base = {
    path: file.displayPath,
    size: file.size,
    id: result.id ?? null,
    sha256: null,
    contentType: null,
    resumedFrom,
  }
  switch (result.kind) {
    case 'refused':
      return { ...base, status: 'FAILED', bytesAcknowledged: 0, error: result.error }
    case 'error':
      return { ...base, status: 'ERROR', bytesAcknowledged: resumedFrom, error: result.error }
    case 'interrupted':
      return { ...base, status: 'INTERRUPTED', bytesAcknowledged: result.acknowledged, error: null }
  }
}

function notStarted(file: LocalFile): FileOutcome {
  return {
    path: file.displayPath,
    size: file.size,
    status: 'NOT_STARTED',
    id: null,
    sha256: null,
    contentType: null,
    resumedFrom: 0,
    bytesAcknowledged: 0,
    error: null,
  }
}

interface ChosenBatch {
  readonly id: string
  /** Files an earlier run already stored in it. */
  readonly stored: readonly RemoteFile[]
  /** Those matched to a local file in this run: each stands for one file only. */
  readonly matched: Set<string>
}

/**
 * The batch an interrupted run of the same files left open, or the open batch of an upload about
 * to be resumed (its bytes are in that batch already); else a new one.
 */
async function chooseBatch(
  files: readonly LocalFile[],
  endpoint: string,
  runKey: string,
  store: ResumeStore,
  api: TusboxApi,
  display: ProgressDisplay,
  signal: AbortSignal,
): Promise<ChosenBatch> {
  const candidates = new Set<string>()
  const leftOpen = await store.openBatchOf(runKey)
  if (leftOpen) candidates.add(leftOpen)
  for (const file of files) {
    for (const entry of await store.findUploadsByFingerprint(fingerprintOf(endpoint, file))) {
      if (entry.metadata.batchId) candidates.add(entry.metadata.batchId)
    }
  }
  for (const id of candidates) {
    const batch = await api.findBatch(id, signal)
    if (batch && batch.completeRequestedAt === null && batch.completedAt === null) {
      const stored = batch.files.filter((file) => file.status === 'STORED')
      display.note(
        `Continuing batch ${id} of an interrupted run (${stored.length} file${stored.length === 1 ? '' : 's'} stored in it)`,
      )
      return { id, stored, matched: new Set() }
    }
  }
  const batch = await api.createBatch(signal)
  await store.rememberOpenBatch(runKey, batch.id)
  display.note(`Created batch ${batch.id}`)
  return { id: batch.id, stored: [], matched: new Set() }
}

/**
 * A file an interrupted run already stored in the continued batch, same name and same bytes: a
 * finished upload leaves no resume entry, so without this check it would be sent (and added to
 * the batch) a second time.
 */
async function storedEarlierInBatch(
  file: LocalFile,
  batch: ChosenBatch | undefined,
  localHash: Promise<string | undefined>,
): Promise<RemoteFile | undefined> {
  const name = path.basename(file.absolutePath)
  const candidates = (batch?.stored ?? []).filter(
    (stored) => stored.filename === name && stored.size === file.size,
  )
  if (!batch || candidates.length === 0) return undefined
  const sha256 = await localHash
  const match = candidates.find(
    (stored) => stored.sha256 === sha256 && !batch.matched.has(stored.id),
  )
  if (match) batch.matched.add(match.id)
  return match
}

/** Polls the file until it is no longer UPLOADING; undefined when interrupted first. */
async function waitUntilFinished(
  api: TusboxApi,
  id: string,
  signal: AbortSignal,
): Promise<RemoteFile | undefined> {
  const deadline = Date.now() + POLL_TIMEOUT_MS
  for (let attempt = 0; ; attempt++) {
    try {
      await delay(POLL_DELAYS_MS[attempt] ?? POLL_INTERVAL_MAX_MS, undefined, { signal })
    } catch {
      return undefined
    }
    const file = await api.getFile(id, signal)
    if (file.status !== 'UPLOADING' || Date.now() > deadline) return file
  }
}

/**
 * The file's SHA-256, computed while it is sent, to check what the server stored (undefined if
 * the file cannot be read: the upload reports that itself).
 */
async function sha256OfFile(filePath: string, signal: AbortSignal): Promise<string | undefined> {
  const hash = createHash('sha256')
  try {
    for await (const chunk of createReadStream(filePath, { signal })) hash.update(chunk as Buffer)
    return hash.digest('hex')
  } catch {
    return undefined
  }
}
