import type { HttpBindings } from '@hono/node-server'
import { type Context, Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import type { Authenticate } from '../auth/authenticate.ts'
import type { CorsPolicy } from '../lib/cors-policy.ts'
import type { Logger } from '../lib/logger.ts'
import { VERSION } from '../lib/version.ts'
import type { OutboxOperations } from '../outbox/operations.ts'
import { isRufhRequest } from '../rufh/interop.ts'
import type { RufhHandler } from '../rufh/rufh-handler.ts'
import { TUS_PATH, type TusHandler } from '../tus/tus-server.ts'
import type { BatchService } from '../uploads/batch.service.ts'
import type { UploadService } from '../uploads/upload.service.ts'
import { type AppEnv, authenticateRequests } from './auth.ts'
import { cors } from './cors.ts'
import { handleError, jsonError } from './errors.ts'
import { serveFileContent } from './file-content.ts'
import { onlyHostNames } from './host-check.ts'
import { interimSender } from './interim.ts'
import { requestContext } from './request-context.ts'
import { apiRoutes, PUBLIC_API_PATHS } from './routes/api.ts'
import { demoRoutes } from './routes/demo.ts'
import { healthRoutes, type ReadinessCheck } from './routes/health.ts'
import { type MetricsExposition, metricsRoutes } from './routes/metrics.ts'
import { withUncopiedBody } from './uncopied-body.ts'

/**
 * JSON bodies on /api are a few bytes ({"expectedFiles": n}); they are read whole, so anything
 * much larger is refused (413) before it is buffered. Uploads go to /files, which streams.
 */
export const MAX_JSON_BODY_BYTES = 16 * 1024

export interface AppDeps {
  readonly tus: TusHandler
  readonly rufh: RufhHandler
  readonly authenticate: Authenticate
  readonly cors: CorsPolicy
  readonly uploads: UploadService
  readonly batches: BatchService
  readonly operations: OutboxOperations
  readonly readiness: readonly ReadinessCheck[]
  readonly demoPage: boolean
  /** The only Host names answered (AUTH_MODE=none); undefined answers any. */
  readonly hostNames: ReadonlySet<string> | undefined
  readonly metrics: MetricsExposition
  readonly logger: Logger
}

/** The whole HTTP surface; it never listens, so tests and the server share it. */
export function createApp(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>()
  app.use('*', requestContext(deps.logger))
  if (deps.hostNames) app.use('*', onlyHostNames(deps.hostNames))
  app.use('*', cors(deps.cors, TUS_PATH))
  const authenticate = authenticateRequests(deps.authenticate)
  app.use(TUS_PATH, authenticate)
  app.use(`${TUS_PATH}/*`, authenticate)
  app.use('/api/*', (c, next) =>
    PUBLIC_API_PATHS.includes(c.req.path.slice('/api'.length)) ? next() : authenticate(c, next),
  )

  // app.all: Hono routes HEAD through GET handlers, and tus needs its own HEAD. The body is
  // handed on as a stream; no body-parsing middleware may run on these paths. One endpoint,
  // two protocols: a request naming a RUFH interop version (and no tus version) is RUFH.
  const uploadEndpoint = (c: Context<AppEnv>) => {
    const env: Partial<HttpBindings> | undefined = c.env
    const request = withUncopiedBody(c.req.raw, env?.incoming)
    if (!isRufhRequest(request.headers)) return deps.tus(request, c.get('principal'))
    return deps.rufh(request, c.get('principal'), interimSender(env?.incoming, env?.outgoing))
  }
  // tusd and @tus/server serve an upload's file at its upload URL, and clients written for them
  // download from there (tus-js-client's own end-to-end specs do). HEAD, which Hono routes here
  // too, stays the protocols' resume check.
  app.get(`${TUS_PATH}/:id`, (c) =>
    c.req.raw.method === 'GET'
      ? serveFileContent(c, deps.uploads, c.req.param('id'))
      : uploadEndpoint(c),
  )
  app.all(TUS_PATH, uploadEndpoint)
  app.all(`${TUS_PATH}/*`, uploadEndpoint)

  app.use(
    '/api/*',
    bodyLimit({
      maxSize: MAX_JSON_BODY_BYTES,
      onError: (c) =>
        jsonError(c, 413, 'body_too_large', `Bodies are limited to ${MAX_JSON_BODY_BYTES} bytes.`),
    }),
  )
  app.route(
    '/api',
    apiRoutes({
      uploads: deps.uploads,
      batches: deps.batches,
      operations: deps.operations,
      version: VERSION,
    }),
  )
  app.route('/', healthRoutes(deps.readiness))
  app.route('/', metricsRoutes(deps.metrics, authenticate))
  if (deps.demoPage) app.route('/', demoRoutes())
  return withErrorAnswers(app, deps.logger)
}

export type WorkerAppDeps = Pick<AppDeps, 'authenticate' | 'readiness' | 'metrics' | 'logger'>

/**
 * What `tusbox worker` serves on WORKER_METRICS_PORT: its metrics (its deliveries, job failures
 * and purges are counted nowhere else) and its health, under the same access rule as the API's.
 */
export function createWorkerApp(deps: WorkerAppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>()
  app.use('*', requestContext(deps.logger))
  app.route('/', healthRoutes(deps.readiness))
  app.route('/', metricsRoutes(deps.metrics, authenticateRequests(deps.authenticate)))
  return withErrorAnswers(app, deps.logger)
}

function withErrorAnswers(app: Hono<AppEnv>, logger: Logger): Hono<AppEnv> {
  app.notFound((c) =>
    jsonError(c, 404, 'route_not_found', `No route for ${c.req.method} ${c.req.path}.`),
  )
  app.onError((error, c) => handleError(error, c, logger))
  return app
}
