import type { ServerOptions } from '@tus/server'
import type { Principal } from '../auth/authenticate.ts'
import { databaseUnavailable } from '../db/errors.ts'
import { AppError, isAppError, TooManyError } from '../lib/errors.ts'
import { errorBody, STATUS_BY_KIND } from '../lib/http-status.ts'
import { addLogContext, type Logger } from '../lib/logger.ts'
import { type FinishUpload, failureError } from '../uploads/finish-upload.ts'
import { uploadIdFromStorageKey } from '../uploads/storage-key.ts'
import type { UploadFile } from '../uploads/types.ts'
import type { UploadAction, UploadService } from '../uploads/upload.service.ts'
import type { TusMetrics } from './tus-server.ts'

export interface HookDeps {
  readonly uploads: UploadService
  readonly finishUpload: FinishUpload
  readonly logger: Logger
  readonly metrics: TusMetrics
}

/**
 * What tusbox knows about each in-flight tus request: who sent it (set before @tus/server sees
 * it), the upload row it acted on (for Upload-Expires), and how long a refused client should
 * wait (Retry-After; @tus/server's onResponseError cannot set headers).
 */
export interface RequestState {
  readonly principal: Principal
  /** tus concatenation: the creation is of a partial upload. */
  readonly concat?: 'partial' | undefined
  file?: UploadFile
  retryAfterSeconds?: number
}

export type RequestStates = WeakMap<Request, RequestState>

type Hooks = Required<
  Pick<ServerOptions, 'onUploadCreate' | 'onUploadFinish' | 'onIncomingRequest' | 'onResponseError'>
>

const ACTION_BY_METHOD: Readonly<Record<string, UploadAction>> = {
  HEAD: 'resume-check',
  PATCH: 'append',
  DELETE: 'terminate',
}

export function createHooks(deps: HookDeps, states: RequestStates): Hooks {
  const stateOf = (req: Request): RequestState => {
    const state = states.get(req)
    if (!state) throw new Error('a tus request reached @tus/server without its principal')
    return state
  }
  return {
    async onIncomingRequest(req, storageKey) {
      // From here on (the POST that creates it included), the request's log lines name its upload.
      addLogContext({ uploadId: uploadIdFromStorageKey(storageKey) })
      const action = ACTION_BY_METHOD[req.method]
      if (!action) return
      const state = stateOf(req)
      state.file = await deps.uploads.admit(storageKey, action, state.principal.owner)
    },

    async onUploadCreate(req, upload) {
      const state = stateOf(req)
      const file = await deps.uploads.register({
        storageKey: upload.id,
        size: upload.size,
        metadata: upload.metadata,
        owner: state.principal.owner,
        concat: state.concat,
      })
      state.file = file
      deps.metrics.uploadCreated('tus')
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
      stateOf(req).file = file
      if (file.status === 'FAILED') throw failureError(file)
      return {}
    },

    async onResponseError(req, error) {
      if (error instanceof TooManyError) {
        const state = states.get(req)
        if (state) state.retryAfterSeconds = error.retryAfterSeconds
      }
      const known = isAppError(error) ? error : databaseUnavailable(error)
      if (known) {
        if (known.kind === 'unavailable') {
          deps.logger.warn('tus request failed: a service it needs is unavailable', {
            code: known.code,
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
