import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import path from 'node:path'

const BIN = path.resolve(import.meta.dirname, '../../bin/tusbox.js')

/** tusbox as ops run it: `node bin/tusbox.js <args>` in a process of its own. */
export function spawnTusbox(args: readonly string[], env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
}

/** Runs a tusbox command to its end and collects what it printed. */
export async function runTusbox(
  args: readonly string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnTusbox(args, env)
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString()
  })
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const [code] = await once(child, 'exit')
  return { code, stdout, stderr }
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
