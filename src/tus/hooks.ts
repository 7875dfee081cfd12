import type { ServerOptions } from '@tus/server'
import { databaseUnavailable } from '../db/errors.ts'
import { AppError, isAppError } from '../lib/errors.ts'
import { errorBody, STATUS_BY_KIND } from '../lib/http-status.ts'
import type { Logger } from '../lib/logger.ts'
import { type FinishUpload, failureError } from '../uploads/finish-upload.ts'
import { uploadIdFromStorageKey } from '../uploads/storage-key.ts'
import type { UploadFile } from '../uploads/types.ts'
import type { UploadAction, UploadService } from '../uploads/upload.service.ts'

export interface HookDeps {
  readonly uploads: UploadService
  readonly finishUpload: FinishUpload
  readonly logger: Logger
}

/** The upload row each in-flight tus request acted on, for response headers such as Upload-Expires. */
export type RequestUploads = WeakMap<Request, UploadFile>

type Hooks = Required<
  Pick<ServerOptions, 'onUploadCreate' | 'onUploadFinish' | 'onIncomingRequest' | 'onResponseError'>
>

const ACTION_BY_METHOD: Readonly<Record<string, UploadAction>> = {
  HEAD: 'resume-check',
  PATCH: 'append',
  DELETE: 'terminate',
}

export function createHooks(deps: HookDeps, requestUploads: RequestUploads): Hooks {
  return {
    async onIncomingRequest(req, storageKey) {
      const action = ACTION_BY_METHOD[req.method]
      if (!action) return
      requestUploads.set(req, await deps.uploads.admit(storageKey, action))
    },

    async onUploadCreate(req, upload) {
      const file = await deps.uploads.register({
        storageKey: upload.id,
        size: upload.size,
        metadata: upload.metadata,
        owner: null,
      })
      requestUploads.set(req, file)
      deps.logger.info('upload created', {
        uploadId: file.id,
        size: file.declaredSize,
        declaredType: file.declaredType,
      })
      return { metadata: upload.metadata }
    },

    // A rejected file answers the final PATCH (or creation-with-upload POST) with its reason;
    // tus-js-client passes that body to onError.
    async onUploadFinish(req, upload) {
      const id = uploadIdFromStorageKey(upload.id)
      if (!id) throw new AppError('not_found', 'upload_not_found', 'No such upload.')
      const file = await deps.finishUpload(id)
      requestUploads.set(req, file)
      if (file.status === 'FAILED') throw failureError(file)
      return {}
    },

    async onResponseError(req, error) {
      const known = isAppError(error) ? error : databaseUnavailable(error)
      if (known) {
        if (known.kind === 'unavailable') {
          deps.logger.warn('tus request failed: the database is unavailable', {
            method: req.method,
            url: req.url,
            reason: known.cause instanceof Error ? known.cause.message : known.message,
          })
        }
        return {
          status_code: STATUS_BY_KIND[known.kind],
          body: errorBody(known.code, known.message),
        }
      }
      if ('status_code' in error) return undefined
      deps.logger.error('tus request failed', { method: req.method, url: req.url, error })
      return {
        status_code: 500,
        body: errorBody('internal_error', 'Something went wrong; the upload can be resumed.'),
      }
    },
  }
}
