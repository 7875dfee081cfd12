/**
 * The demo page at `/`: tus-js-client in the browser, served by tusbox itself (no CDN). It shows
 * what an integration does: resumable uploads with progress, pause and resume, the server's own
 * error messages, and the list of the user's files from the JSON API.
 */
export const DEMO_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tusbox</title>
<style>
  :root { --accent: #2563eb; --bad: #b91c1c; --good: #15803d; }
  body { font: 15px/1.5 system-ui, sans-serif; max-width: 56rem; margin: 2rem auto; padding: 0 1rem; color: #1f2937; }
  h1 { margin: 0 0 .25rem } .hint { color: #6b7280; margin-top: 0 }
  #drop { border: 2px dashed #9ca3af; border-radius: 10px; padding: 2rem; text-align: center; cursor: pointer; }
  #drop.over { border-color: var(--accent); background: #eff6ff; }
  .upload { border: 1px solid #e5e7eb; border-radius: 8px; padding: .6rem .8rem; margin: .6rem 0; }
  .upload .top { display: flex; flex-wrap: wrap; gap: .25rem .75rem; align-items: center; }
  .upload .state.error { flex-basis: 100%; order: 3; }
  .upload .name { flex: 1; font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  progress { width: 100%; height: .6rem; }
  .error { color: var(--bad); } .done { color: var(--good); }
  button { font: inherit; padding: .2rem .7rem; border-radius: 6px; border: 1px solid #d1d5db; background: #fff; cursor: pointer; }
  table { width: 100%; border-collapse: collapse; margin-top: .5rem; font-size: 14px; table-layout: fixed; }
  th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #e5e7eb; vertical-align: top; overflow-wrap: anywhere; }
  th.size, td.size { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
  col.name { width: 34% } col.status { width: 24% } col.size { width: 12% } col.hash { width: 20% } col.link { width: 10% }
  code { font: 12px ui-monospace, monospace; }
  .hash button { font-size: 12px; padding: 0 .4rem; margin-left: .3rem; }
  .muted { color: #6b7280; font-size: 13px; }
  .field { display: grid; grid-template-columns: max-content 1fr; gap: .25rem .75rem; align-items: center; margin: 1rem 0; }
  .field .muted { grid-column: 2; }
  input[type=text] { width: 100%; box-sizing: border-box; padding: .3rem .5rem; font: 13px ui-monospace, monospace; border: 1px solid #d1d5db; border-radius: 6px; }
  .pager { display: flex; gap: .75rem; align-items: center; justify-content: flex-end; margin-top: .5rem; }
  h2 { display: flex; align-items: center; gap: .75rem; } h2 button { font-size: 14px; font-weight: normal; }
</style>
</head>
<body>
<h1>tusbox</h1>
<p class="hint">Resumable uploads over <a href="https://tus.io">tus</a>. Drop files below; pause, close the tab, come back: uploads resume where they stopped.</p>
<div class="field">
  <label for="token">Bearer token</label>
  <input id="token" type="text" autocomplete="off" placeholder="eyJ…">
  <span class="muted">Only when the server runs with AUTH_MODE=jwt.</span>
</div>
<div id="drop" tabindex="0">Drop files here, or click to choose<input id="picker" type="file" multiple hidden></div>
<div id="uploads"></div>
<h2>Your files <button id="refresh">Refresh</button></h2>
<p id="files-error" class="error"></p>
<table>
<colgroup><col class="name"><col class="status"><col class="size"><col class="hash"><col class="link"></colgroup>
<thead><tr><th>Name</th><th>Status</th><th class="size">Size</th><th>SHA-256</th><th></th></tr></thead><tbody id="files"></tbody>
</table>
<div class="pager"><span id="page-info" class="muted"></span><button id="newer">Newer</button><button id="older">Older</button></div>
<script src="/demo/tus.min.js"></script>
<script>
const tokenInput = document.getElementById('token')
// sessionStorage: the token survives a reload but not the tab, and no other tab reads it.
tokenInput.value = sessionStorage.getItem('tusbox-token') ?? ''
tokenInput.addEventListener('change', () => { sessionStorage.setItem('tusbox-token', tokenInput.value.trim()); listFiles() })
const authHeaders = () => (tokenInput.value.trim() ? { Authorization: 'Bearer ' + tokenInput.value.trim() } : {})

/** The server's own reason, from its JSON error body: "Files of type … are not accepted." */
function reasonOf(error) {
  const body = error.originalResponse?.getBody?.()
  try { return JSON.parse(body).error.message } catch { return error.message }
}
/** Exact below 1 KiB ("3 B"), then KiB and MiB to one decimal. */
const size = (bytes) => bytes == null ? 'unknown' : bytes < 1024 ? bytes + ' B' : bytes < 1024 * 1024 ? (bytes / 1024).toFixed(1) + ' KiB' : (bytes / 1024 / 1024).toFixed(1) + ' MiB'
const time = (iso) => new Date(iso).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' })
/** Uploads this page is sending now; any other UPLOADING file was left unfinished. */
const sending = new Set()
const PAGE_SIZE = 10
let files = [], page = 0
const text = (value) => String(value ?? '').replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c])

function startUpload(file) {
  const row = document.createElement('div')
  row.className = 'upload'
  row.innerHTML = '<div class="top"><span class="name"></span><span class="state">starting…</span><button class="toggle">Pause</button></div><progress max="100" value="0"></progress>'
  row.querySelector('.name').textContent = file.name
  row.dataset.filename = file.name
  document.getElementById('uploads').prepend(row)
  const state = row.querySelector('.state'), bar = row.querySelector('progress'), toggle = row.querySelector('.toggle')
  const upload = new tus.Upload(file, {
    endpoint: '/files',
    chunkSize: 1024 * 1024,
    retryDelays: [0, 1000, 3000, 5000],
    removeFingerprintOnSuccess: true,
    headers: authHeaders(),
    metadata: { filename: file.name, filetype: file.type },
    onUploadUrlAvailable: () => { sending.add(upload.url.split('/').pop()); listFiles() },
    onProgress: (sent, total) => { bar.value = (sent / total) * 100; state.textContent = size(sent) + ' of ' + size(total) },
    onSuccess: () => { sending.delete(upload.url.split('/').pop()); state.textContent = 'stored'; state.className = 'state done'; toggle.remove(); row.dataset.state = 'stored'; listFiles() },
    onError: (error) => { sending.delete(upload.url?.split('/').pop()); state.textContent = reasonOf(error); state.className = 'state error'; toggle.remove(); row.dataset.state = 'failed'; listFiles() },
  })
  let paused = false
  toggle.addEventListener('click', () => {
    paused = !paused
    toggle.textContent = paused ? 'Resume' : 'Pause'
    row.dataset.state = paused ? 'paused' : 'uploading'
    if (paused) { upload.abort(); state.textContent += ' (paused)' } else upload.start()
  })
  row.dataset.state = 'uploading'
  // A file uploaded before (same name, size, type) resumes from what the server already has.
  upload.findPreviousUploads().then((previous) => {
    if (previous.length > 0) upload.resumeFromPreviousUpload(previous[0])
    upload.start()
  })
}

/** Every file, newest first (the API pages oldest first), shown PAGE_SIZE at a time. */
async function listFiles() {
  const errorLine = document.getElementById('files-error')
  const all = []
  let after = null
  do {
    const response = await fetch('/api/files?limit=100' + (after ? '&after=' + after : ''), { headers: authHeaders() })
    const body = await response.json()
    if (!response.ok) { errorLine.textContent = body.error?.message ?? response.statusText; return }
    all.push(...body.files)
    after = body.nextCursor
  } while (after && all.length < 2000)
  errorLine.textContent = ''
  files = all.reverse()
  page = Math.min(page, Math.max(0, Math.ceil(files.length / PAGE_SIZE) - 1))
  showPage()
}

function statusOf(file) {
  if (file.status !== 'UPLOADING') return text(file.status)
  if (sending.has(file.id)) return 'UPLOADING'
  const expired = file.expiresAt && new Date(file.expiresAt) < new Date()
  return (expired ? 'ABANDONED' : 'UNFINISHED') + '<br><span class="muted">' + (expired
    ? 'expired ' + text(time(file.expiresAt)) + '; removed at the next purge'
    : 'no bytes since ' + text(time(file.updatedAt)) + '; resumable until ' + text(time(file.expiresAt))) + '</span>'
}

function showPage() {
  const shown = files.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE)
  document.getElementById('files').innerHTML = shown.map((file) =>
    '<tr data-id="' + text(file.id) + '" data-status="' + text(file.status) + '"><td>' + text(file.filename) + '</td><td>' + statusOf(file) +
    (file.error ? '<br><span class="error">' + text(file.error.message) + '</span>' : '') + '</td><td class="size" title="' + text(file.size) + ' bytes">' + size(file.size) +
    '</td><td class="hash">' + (file.sha256 ? '<code title="' + text(file.sha256) + '" data-sha256="' + text(file.sha256) + '">' + text(file.sha256.slice(0, 12)) + '…</code><button data-copy="' + text(file.sha256) + '">Copy</button>' : '') + '</td><td>' +
    (file.status === 'STORED' ? '<a href="/api/files/' + text(file.id) + '/content" data-download>Download</a>' : '') + '</td></tr>').join('')
  const pages = Math.max(1, Math.ceil(files.length / PAGE_SIZE))
  document.getElementById('page-info').textContent = files.length === 0 ? 'No files yet' :
    'Page ' + (page + 1) + ' of ' + pages + ' · ' + files.length + ' files'
  document.getElementById('newer').disabled = page === 0
  document.getElementById('older').disabled = page >= pages - 1
}
document.getElementById('newer').addEventListener('click', () => { page = Math.max(0, page - 1); showPage() })
document.getElementById('older').addEventListener('click', () => { page += 1; showPage() })

// With a token, a plain link cannot send it: fetch the bytes and hand them over as a blob.
document.getElementById('files').addEventListener('click', async (event) => {
  const copy = event.target.closest('button[data-copy]')
  if (copy) {
    await navigator.clipboard.writeText(copy.dataset.copy)
    copy.textContent = 'Copied'
    return
  }
  const link = event.target.closest('a[data-download]')
  if (!link || !tokenInput.value.trim()) return
  event.preventDefault()
  const response = await fetch(link.href, { headers: authHeaders() })
  const name = link.closest('tr').firstChild.textContent
  const anchor = Object.assign(document.createElement('a'), { href: URL.createObjectURL(await response.blob()), download: name })
  anchor.click()
})

const drop = document.getElementById('drop'), picker = document.getElementById('picker')
drop.addEventListener('click', () => picker.click())
drop.addEventListener('keydown', (event) => { if (event.key === 'Enter' || event.key === ' ') picker.click() })
picker.addEventListener('change', () => { for (const file of picker.files) startUpload(file); picker.value = '' })
drop.addEventListener('dragover', (event) => { event.preventDefault(); drop.classList.add('over') })
drop.addEventListener('dragleave', () => drop.classList.remove('over'))
drop.addEventListener('drop', (event) => { event.preventDefault(); drop.classList.remove('over'); for (const file of event.dataTransfer.files) startUpload(file) })
document.getElementById('refresh').addEventListener('click', listFiles)
listFiles()
</script>
</body>
</html>
`
