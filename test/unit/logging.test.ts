import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../../src/config.ts'
import { requestIdOf } from '../../src/http/request-context.ts'
import {
  addLogContext,
  createLogger,
  defaultLogFormat,
  type LogFormat,
  type LogLevel,
  withLogContext,
  withoutLogContext,
} from '../../src/lib/logger.ts'
import { prettyLine } from '../../src/lib/pretty-log.ts'

function capture(level: LogLevel = 'debug', format: LogFormat = 'json') {
  const lines: string[] = []
  const logger = createLogger(level, { format, write: (line) => lines.push(line) })
  const entries = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>)
  return { logger, lines, entries }
}

describe('the logger', () => {
  it('writes one JSON object per line with level, ISO time, fields and message', () => {
    const { logger, lines, entries } = capture()

    logger.info('upload stored', { uploadId: 'u1', size: 2_000 })

    expect(lines).toHaveLength(1)
    expect(lines[0]).not.toContain('\n')
    expect(lines[0]).toContain('"message":"upload stored"')
    const [entry] = entries()
    expect(entry).toEqual({
      level: 'info',
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      uploadId: 'u1',
      size: 2_000,
      message: 'upload stored',
    })
  })

  it('writes errors under any key with their name, message and stack', () => {
    const { logger, entries } = capture()

    logger.error('job failed', { error: new TypeError('boom') })

    expect(entries()[0]?.error).toEqual({
      name: 'TypeError',
      message: 'boom',
      stack: expect.stringContaining('TypeError: boom'),
    })
  })

  it('drops lines below its level, and every line when silent', () => {
    const info = capture('info')
    info.logger.debug('hidden')
    info.logger.warn('shown')
    const silent = capture('silent')
    silent.logger.error('hidden too')

    expect(info.entries().map((entry) => entry.message)).toEqual(['shown'])
    expect(silent.lines).toEqual([])
  })

  it('adds the bindings of a child logger to every line it writes', () => {
    const { logger, entries } = capture()

    const child = logger.child({ component: 'locker' })
    child.info('one')
    child.warn('two', { extra: true })
    logger.info('parent')

    expect(entries()).toMatchObject([
      { component: 'locker', message: 'one' },
      { component: 'locker', extra: true, message: 'two' },
      { message: 'parent' },
    ])
    expect(entries()[2]).not.toHaveProperty('component')
  })

  it('puts the context fields on every line logged inside it, however deep and however late', async () => {
    const { logger, entries } = capture()
    const deep = async () => {
      await new Promise((resolve) => setImmediate(resolve))
      logger.info('deep down')
    }

    await withLogContext({ requestId: 'r-1' }, async () => {
      logger.info('first')
      addLogContext({ uploadId: 'u-1' })
      await deep()
    })
    logger.info('outside')

    expect(entries()).toMatchObject([
      { requestId: 'r-1', message: 'first' },
      { requestId: 'r-1', uploadId: 'u-1', message: 'deep down' },
      { message: 'outside' },
    ])
    expect(entries()[0]).not.toHaveProperty('uploadId')
    expect(entries()[2]).not.toHaveProperty('requestId')
  })

  it('keeps the contexts of concurrent work apart', async () => {
    const { logger, entries } = capture()
    const work = (requestId: string, uploadId: string) =>
      withLogContext({ requestId }, async () => {
        await new Promise((resolve) => setImmediate(resolve))
        addLogContext({ uploadId })
        await new Promise((resolve) => setImmediate(resolve))
        logger.info('step', { of: requestId })
      })

    await Promise.all([work('a', 'upload-a'), work('b', 'upload-b')])

    for (const entry of entries()) {
      expect(entry.requestId).toBe(entry.of)
      expect(entry.uploadId).toBe(`upload-${String(entry.of)}`)
    }
    expect(entries()).toHaveLength(2)
  })

  it('logs without the context inside withoutLogContext', () => {
    const { logger, entries } = capture()

    withLogContext({ requestId: 'r-2' }, () => withoutLogContext(() => logger.warn('detached')))

    expect(entries()[0]).not.toHaveProperty('requestId')
  })

  it('writes readable lines in the pretty format', () => {
    const { logger, lines } = capture('info', 'pretty')

    withLogContext({ requestId: 'r-3' }, () =>
      logger.warn('upload rejected', { code: 'unsupported_file_type', note: 'two words' }),
    )

    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(
      /^\d\d:\d\d:\d\d\.\d{3} WARN {2}upload rejected requestId=r-3 code=unsupported_file_type note="two words"$/,
    )
  })
})

describe('log lines on stderr, written in batches', () => {
  const loggerModule = fileURLToPath(new URL('../../src/lib/logger.ts', import.meta.url))
  /** Runs `body` in a node process with `logger` (JSON to stderr) and `flushLogs` in scope. */
  const stderrOf = async (body: string) => {
    const script = `import { createLogger, flushLogs } from ${JSON.stringify(loggerModule)}
      const logger = createLogger('info', { format: 'json' })
      ${body}`
    const child = promisify(execFile)(process.execPath, ['--input-type=module', '-e', script])
    const { stderr } = await child.catch((failed: { stderr: string; code: number }) => {
      // 7: the scripts' own exit code; 1: an uncaught error.
      if (failed.code !== 7 && failed.code !== 1) throw failed
      return failed
    })
    return stderr
      .split('\n')
      .map((line) => (line.startsWith('{') ? JSON.parse(line).message : line))
  }

  it('writes every line, in order, when the process exits in the turn that logged them', async () => {
    expect(await stderrOf(`logger.info('one'); logger.info('two'); process.exit(7)`)).toEqual([
      'one',
      'two',
      '',
    ])
  })

  it('writes the pending lines before the error that crashes the process', async () => {
    const lines = await stderrOf(`logger.info('before the crash'); throw new Error('boom')`)
    expect(lines[0]).toBe('before the crash')
    expect(lines.join('\n')).toContain('Error: boom')
  })

  it('writes the pending lines first when flushed before another write to stderr', async () => {
    const body = `logger.info('logged'); flushLogs(); process.stderr.write('direct\\n')
      logger.info('after')`
    expect(await stderrOf(body)).toEqual(['logged', 'direct', 'after', ''])
  })

  it('writes lines in the order they were logged, across turns of the event loop', async () => {
    const body = `logger.info('first'); setTimeout(() => logger.info('later'), 50)
      setImmediate(() => logger.info('next turn'))`
    expect(await stderrOf(body)).toEqual(['first', 'next turn', 'later', ''])
  })
})

describe('pretty log lines', () => {
  const line = (entry: Record<string, unknown>, colour = false) =>
    prettyLine(JSON.stringify({ level: 'error', time: '2026-11-28T10:00:00.000Z', ...entry }), {
      colour,
    })

  it('shows an error by name and message, then its stack frames indented', () => {
    // As the JSON logger writes an Error.
    const { name, message, stack } = new Error('connection refused')

    const shown = line({ message: 'job failed', error: { name, message, stack } })

    const [first, ...frames] = shown.split('\n')
    expect(first).toMatch(/ERROR job failed error="Error: connection refused"$/)
    expect(frames.length).toBeGreaterThan(0)
    expect(frames.every((frame) => frame.startsWith('    at '))).toBe(true)
  })

  it('shows objects inline and colours only when asked to', () => {
    expect(line({ message: 'm', checks: [{ name: 'database' }] })).toContain(
      "checks=[ { name: 'database' } ]",
    )
    expect(line({ message: 'm' })).not.toContain('\x1b[')
    expect(line({ message: 'm' }, true)).toContain('\x1b[31mERROR')
  })
})

describe('choosing the log format', () => {
  it('is pretty on a terminal and JSON anywhere else (pipes, files, containers)', () => {
    expect(defaultLogFormat({ isTTY: true })).toBe('pretty')
    expect(defaultLogFormat({ isTTY: false })).toBe('json')
    expect(defaultLogFormat({})).toBe('json')
  })

  it('takes LOG_FORMAT=json or pretty, and reports any other value', () => {
    expect(loadConfig({ LOG_FORMAT: 'json' }).logFormat).toBe('json')
    expect(loadConfig({ LOG_FORMAT: 'pretty' }).logFormat).toBe('pretty')
    expect(loadConfig({}).logFormat).toBeUndefined()
    expect(() => loadConfig({ LOG_FORMAT: 'text' })).toThrow(ConfigError)
    expect(() => loadConfig({ LOG_FORMAT: 'text' })).toThrow(
      /LOG_FORMAT="text": must be "json" or "pretty"/,
    )
  })
})

describe('request ids', () => {
  it('keeps a sane X-Request-Id as it is, up to 128 characters', () => {
    for (const id of ['abc', 'lb-7f3a.01_X', 'a'.repeat(128)]) expect(requestIdOf(id)).toBe(id)
  })

  it('replaces a missing, empty, too long or unsafe one with a new UUID', () => {
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
    for (const given of [undefined, '', 'a'.repeat(129), 'has space', 'quote"s', 'new\nline']) {
      expect(requestIdOf(given)).toMatch(uuid)
    }
    expect(requestIdOf(undefined)).not.toBe(requestIdOf(undefined))
  })
})
