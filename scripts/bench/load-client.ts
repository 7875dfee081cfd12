/** The benchmark's side of its client process (scripts/bench/load-process.ts). */
import { type ChildProcess, fork } from 'node:child_process'
import { once } from 'node:events'
import path from 'node:path'
import type { LoadTask } from './load.ts'

export interface LoadClient {
  readonly pid: number
  /** Runs one measurement in the client process; resolves with its values. */
  run(task: LoadTask): Promise<number[]>
  stop(): Promise<void>
}

interface Answer {
  readonly id: number
  readonly values?: number[]
  readonly error?: string
}

export async function startLoadClient(): Promise<LoadClient> {
  const child = fork(path.join(import.meta.dirname, 'load-process.ts'), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  await once(child, 'spawn')
  const pending = new Map<number, { resolve(values: number[]): void; reject(e: Error): void }>()
  let nextId = 0
  child.on('message', (answer: Answer) => {
    const waiting = pending.get(answer.id)
    pending.delete(answer.id)
    if (answer.values) waiting?.resolve(answer.values)
    else waiting?.reject(new Error(`the benchmark client failed: ${answer.error}`))
  })
  child.on('exit', (code, signal) => {
    for (const waiting of pending.values()) {
      waiting.reject(new Error(`the benchmark client exited (${code ?? signal})`))
    }
    pending.clear()
  })
  return {
    pid: child.pid as number,
    run: (task) =>
      new Promise((resolve, reject) => {
        const id = nextId++
        pending.set(id, { resolve, reject })
        child.send({ id, task })
      }),
    stop: () => stopChild(child),
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.disconnect()
  await exited
}
