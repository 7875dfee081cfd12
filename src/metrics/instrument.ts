import { performance } from 'node:perf_hooks'
import type { Transaction } from '../db/transaction.ts'
import type { PurgeReport } from '../uploads/purge.ts'
import type { UploadFile } from '../uploads/types.ts'
import {
  type FailureFacts,
  type StoredFacts,
  UploadRepository,
} from '../uploads/upload.repository.ts'
import type { Metrics } from './metrics.ts'

/**
 * The repository handed to the finish step, noting which uploads it moved out of UPLOADING.
 * The finish step is idempotent and shared by racing callers (the final PATCH, a resuming
 * client's HEAD, the repair job, in any process), so the row it returns does not say whether
 * this call stored it; markStored and markFailed run once per upload, in the transaction that
 * moves it, on the one process whose row lock won.
 */
export class FinishObservingUploadRepository extends UploadRepository {
  readonly #moved = new Set<string>()

  override async markStored(id: string, facts: StoredFacts, tx: Transaction): Promise<UploadFile> {
    const file = await super.markStored(id, facts, tx)
    this.#moved.add(id)
    return file
  }

  override async markFailed(id: string, facts: FailureFacts, tx: Transaction): Promise<UploadFile> {
    const file = await super.markFailed(id, facts, tx)
    this.#moved.add(id)
    return file
  }

  /** True once for an upload marked since the last call, false for every other caller. */
  takeMoved(id: string): boolean {
    return this.#moved.delete(id)
  }
}

/**
 * Counts each upload the finish step stored or failed, once, with the duration of the call
 * that did it. A call that found the upload already finished, or threw (its transaction rolled
 * back), counts nothing.
 */
export function measureFinish<File extends UploadFile | undefined>(
  finish: (id: string) => Promise<File>,
  uploads: FinishObservingUploadRepository,
  metrics: Pick<Metrics, 'uploadFinished'>,
): (id: string) => Promise<File> {
  return async (id) => {
    const started = performance.now()
    let file: File
    try {
      file = await finish(id)
    } catch (error) {
      uploads.takeMoved(id)
      throw error
    }
    if (uploads.takeMoved(id) && file) {
      metrics.uploadFinished(file, (performance.now() - started) / 1000)
    }
    return file
  }
}

/** The purge handler, counting what each run purged. */
export function countPurges<A extends unknown[]>(
  purge: (...args: A) => Promise<PurgeReport>,
  metrics: Pick<Metrics, 'purged'>,
): (...args: A) => Promise<PurgeReport> {
  return async (...args) => {
    const report = await purge(...args)
    metrics.purged(report)
    return report
  }
}
