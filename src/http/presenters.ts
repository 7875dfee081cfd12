import type { BatchView } from '../uploads/batch.service.ts'
import type { UploadBatch, UploadFile } from '../uploads/types.ts'

export function presentFile(file: UploadFile) {
  return {
    id: file.id,
    status: file.status,
    filename: file.filename,
    contentType: file.detectedType ?? file.declaredType,
    declaredType: file.declaredType,
    size: file.size ?? file.declaredSize,
    sha256: file.sha256,
    batchId: file.batchId,
    error: file.errorCode ? { code: file.errorCode, message: file.errorMessage } : null,
    createdAt: file.createdAt.toISOString(),
    updatedAt: file.updatedAt.toISOString(),
    storedAt: file.storedAt?.toISOString() ?? null,
    deletedAt: file.deletedAt?.toISOString() ?? null,
    expiresAt: file.expiresAt?.toISOString() ?? null,
  }
}

export function presentBatch(batch: UploadBatch) {
  return {
    id: batch.id,
    expectedFiles: batch.expectedFiles,
    completeRequestedAt: batch.completeRequestedAt?.toISOString() ?? null,
    completedAt: batch.completedAt?.toISOString() ?? null,
    createdAt: batch.createdAt.toISOString(),
  }
}

export function presentBatchView(view: BatchView) {
  return {
    ...presentBatch(view.batch),
    allStored: view.allStored,
    files: view.files.map(presentFile),
  }
}
