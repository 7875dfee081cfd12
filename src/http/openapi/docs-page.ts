/**
 * A page to read /api/openapi.json without a CDN or a build step: it fetches the description and
 * lists each operation with its parameters, request body and answers. The description is the
 * source of truth; this only renders it.
 */
export const API_DOCS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tusbox API</title>
<style>
  body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #1d1d1f; }
  h1 { margin-bottom: 0 } .intro { color: #555 }
  section { border: 1px solid #ddd; border-radius: 6px; margin: 1rem 0; padding: .75rem 1rem; }
  .method { display: inline-block; min-width: 4.5rem; font-weight: 700; text-transform: uppercase; }
  .get { color: #0a7 } .post { color: #06c } .delete { color: #c33 }
  code, pre { font: 13px ui-monospace, monospace; background: #f5f5f7; padding: .1rem .3rem; border-radius: 3px; }
  pre { padding: .5rem; overflow: auto; } table { border-collapse: collapse; }
  td, th { text-align: left; padding: .15rem .75rem .15rem 0; vertical-align: top; }
</style>
</head>
<body>
<h1>tusbox API</h1>
<p class="intro">Generated from <a href="openapi.json">openapi.json</a>. Uploads themselves use tus, or Resumable Uploads for HTTP (the IETF draft), at <code>/files</code>; <code>GET /files/{id}</code> there (the upload URL, outside <code>/api</code>) downloads a STORED file exactly as <code>GET /api/files/{id}/content</code> does.</p>
<main id="operations">Loading…</main>
<script>
const text = (value) => String(value ?? '').replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c])
const schemaName = (schema) => schema?.$ref ? schema.$ref.split('/').pop() : schema?.type ?? ''
fetch('openapi.json').then((response) => response.json()).then((doc) => {
  const base = doc.servers?.[0]?.url ?? ''
  const sections = []
  for (const [path, operations] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      const params = (operation.parameters ?? []).map((p) =>
        '<tr><td><code>' + text(p.name) + '</code></td><td>' + text(p.in) + '</td><td>' + text(p.schema?.description ?? p.description ?? '') + '</td></tr>').join('')
      const body = operation.requestBody?.content?.['application/json']?.schema
      const answers = Object.entries(operation.responses).map(([status, answer]) =>
        '<tr><td><code>' + text(status) + '</code></td><td>' + text(answer.description) + '</td><td>' +
        text(schemaName(Object.values(answer.content ?? {})[0]?.schema)) + '</td></tr>').join('')
      sections.push('<section><div><span class="method ' + method + '">' + method + '</span><code>' +
        text(base + path) + '</code></div><p>' + text(operation.summary) + (operation.description ? ' ' + text(operation.description) : '') + '</p>' +
        (params ? '<table><tr><th>Parameter</th><th>In</th><th></th></tr>' + params + '</table>' : '') +
        (body ? '<p>Body: <code>' + text(schemaName(body)) + '</code></p>' : '') +
        '<table><tr><th>Answer</th><th></th><th>Schema</th></tr>' + answers + '</table></section>')
    }
  }
  const schemas = Object.entries(doc.components?.schemas ?? {}).map(([name, schema]) =>
    '<section><h3>' + text(name) + '</h3><pre>' + text(JSON.stringify(schema, null, 2)) + '</pre></section>').join('')
  document.getElementById('operations').innerHTML = sections.join('') + '<h2>Schemas</h2>' + schemas
}).catch((error) => { document.getElementById('operations').textContent = 'Could not load openapi.json: ' + error })
</script>
</body>
</html>
`
