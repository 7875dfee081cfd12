import { type ChildProcess, spawn } from 'node:child_process'
import path from 'node:path'
import { runCommand } from './run-command.ts'

const ROOT = path.resolve(import.meta.dirname, '../..')
const BIN = path.join(ROOT, 'bin/tusbox.js')

/** Test processes use a DATABASE_URL and no tokens, which must be allowed explicitly. */
function testEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return { ...process.env, LOG_LEVEL: 'info', AUTH_ALLOW_ANONYMOUS: 'true', ...env }
}

/** tusbox as ops run it: `node bin/tusbox.js <args>` in a process of its own. */
export function spawnTusbox(args: readonly string[], env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], {
    env: testEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
}

/**
 * `npm start` as a terminal runs it: the leader of a process group of its own (npm, then tusbox),
 * so `process.kill(-child.pid, signal)` reaches the whole group as a terminal's Ctrl-C does.
 */
export function spawnNpmStart(_args: readonly string[], env: Record<string, string>): ChildProcess {
  return spawn('npm', ['start'], {
    cwd: ROOT,
    env: testEnv(env),
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
}

/** Runs a tusbox command to its end and collects what it printed. */
export function runTusbox(
  args: readonly string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCommand(process.execPath, [BIN, ...args], { env: testEnv(env) })
}

/** Resolves with the first JSON log line whose message is `message`. */
export function logLine(child: ChildProcess, message: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let buffer = ''
    child.stderr?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      for (const line of buffer.split('\n')) {
        if (line.includes(`"message":"${message}"`)) resolve(JSON.parse(line))
      }
    })
    child.once('exit', (code) =>
      reject(new Error(`tusbox exited (${code}) before logging "${message}":\n${buffer}`)),
    )
  })
}

/**
 * A long-running tusbox process (serve, start, worker) whose log is kept from its first line,
 * so a test can wait for a line it may have missed, and whose exit can be awaited at any time.
 */
export class TusboxProcess {
  readonly child: ChildProcess
  /** The exit code, or the signal that ended it. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  #log = ''
  #stdout = ''
  readonly #waiters = new Set<() => void>()

  constructor(args: readonly string[], env: Record<string, string>, spawnChild = spawnTusbox) {
    this.child = spawnChild(args, env)
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => resolve({ code, signal })),
    )
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.#log += chunk.toString()
      for (const waiter of [...this.#waiters]) waiter()
    })
    this.child.stdout?.on('data', (chunk: Buffer) => {
      this.#stdout += chunk.toString()
    })
    this.child.once('exit', () => {
      for (const waiter of [...this.#waiters]) waiter()
    })
  }

  /** Everything it wrote on stderr so far: its JSON log lines. */
  get log(): string {
    return this.#log
  }

  /** What it printed on stdout: nothing, for a server (its log goes to stderr). */
  get stdout(): string {
    return this.#stdout
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  /** The JSON log lines with this message so far. */
  logged(message: string): Record<string, unknown>[] {
    return this.#log
      .split('\n')
      .filter((line) => line.includes(`"message":"${message}"`))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
  }

  /** Resolves with the first line with this message, logged before or after the call. */
  waitForLog(message: string): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const [line] = this.logged(message)
        if (line) {
          this.#waiters.delete(check)
          resolve(line)
        } else if (!this.running) {
          this.#waiters.delete(check)
          reject(new Error(`tusbox exited before logging "${message}":\n${this.#log}`))
        }
      }
      this.#waiters.add(check)
      check()
    })
  }

  /** SIGKILL unless it already exited; resolves once it is gone. */
  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL')
    await this.exited
  }
}

export interface TusboxServer {
  readonly process: TusboxProcess
  readonly port: number
  readonly url: string
  readonly tusEndpoint: string
}

/** `tusbox serve` on a free port of 127.0.0.1, once it says it is listening. */
export async function startTusboxServer(
  env: Record<string, string>,
  command: 'serve' | 'start' = 'serve',
  spawnChild = spawnTusbox,
): Promise<TusboxServer> {
  const process = new TusboxProcess([command], { PORT: '0', ...env }, spawnChild)
  try {
    const listening = await process.waitForLog('tusbox is listening')
    const url = new URL(String(listening.url)).origin
    return { process, port: Number(new URL(url).port), url, tusEndpoint: `${url}/files` }
  } catch (error) {
    await process.kill()
    throw error
  }
}
