/**
 * The benchmark's client, in a process of its own (forked by scripts/bench/load-client.ts): on
 * two cores, a client that shares its event loop and heap with the benchmark's bookkeeping (and
 * with a 512 MiB buffer for tus-js-client) spends more CPU per byte, and a server that needs more
 * than one core (bare @tus/server does) then measures slower than it is. Here the lean client
 * runs alone; each message is a task, answered with its values or its error.
 */
import { closeClient } from './client.ts'
import { type LoadTask, runTask } from './load.ts'

interface Request {
  readonly id: number
  readonly task: LoadTask
}

process.on('message', (message: Request) => {
  runTask(message.task).then(
    (values) => process.send?.({ id: message.id, values }),
    (error: unknown) =>
      process.send?.({
        id: message.id,
        error: error instanceof Error ? (error.stack ?? error.message) : String(error),
      }),
  )
})
// The benchmark closes the channel to stop us, and so does its death.
process.on('disconnect', () => {
  closeClient()
  process.exit(0)
})
