import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { Hono } from 'hono'
import { DEMO_PAGE } from '../demo/page.ts'
import { htmlPageHeaders } from '../html-page.ts'

/** tus-js-client's own browser build, from the installed package: the page needs no CDN. */
const TUS_CLIENT_BUNDLE = readFileSync(
  createRequire(import.meta.url).resolve('tus-js-client/dist/tus.min.js'),
)

/** The demo page at / (DEMO_PAGE), and the tus client it runs. */
export function demoRoutes(): Hono {
  const routes = new Hono()
  const headers = htmlPageHeaders(DEMO_PAGE)
  routes.get('/', (c) => c.html(DEMO_PAGE, 200, headers))
  routes.get('/demo/tus.min.js', (c) =>
    c.body(TUS_CLIENT_BUNDLE, 200, {
      'Content-Type': 'text/javascript; charset=utf-8',
      'Cache-Control': 'public, max-age=3600',
    }),
  )
  return routes
}
