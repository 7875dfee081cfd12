import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { Hono } from 'hono'
import { DEMO_PAGE } from '../demo/page.ts'

/** tus-js-client's own browser build, from the installed package: the page needs no CDN. */
const TUS_CLIENT_BUNDLE = readFileSync(
  createRequire(import.meta.url).resolve('tus-js-client/dist/tus.min.js'),
)

/** The demo page at / (DEMO_PAGE), and the tus client it runs. */
export function demoRoutes(): Hono {
  const routes = new Hono()
  routes.get('/', (c) => c.html(DEMO_PAGE))
  routes.get('/demo/tus.min.js', (c) =>
    c.body(TUS_CLIENT_BUNDLE, 200, {
      'Content-Type': 'text/javascript; charset=utf-8',
      'Cache-Control': 'public, max-age=3600',
    }),
  )
  return routes
}
