/**
 * The machine a run measured, and how busy the rest of it was meanwhile: on a shared machine a
 * load average says little (the benchmark itself keeps both cores busy), so the run accounts for
 * the CPU time spent outside its own process tree.
 */
import { readdirSync, readFileSync } from 'node:fs'
import os from 'node:os'

/** /proc/stat and /proc/<pid>/stat count in USER_HZ, which Linux fixes at 100 for user space. */
const TICKS_PER_SECOND = 100

export interface Machine {
  readonly cpus: number
  readonly cpuModel: string
  readonly memoryGiB: number
  readonly node: string
  readonly kernel: string
  readonly filesystem: string
}

export function describeMachine(workdir: string): Machine {
  return {
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    filesystem: filesystemOf(workdir),
  }
}

/** The file system holding `directory`: the longest mount point in /proc/mounts above it. */
function filesystemOf(directory: string): string {
  const [device, mount, type] = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' '))
    .filter(
      ([, point]) => point === '/' || directory === point || directory.startsWith(`${point}/`),
    )
    .sort((a, b) => (b[1]?.length ?? 0) - (a[1]?.length ?? 0))[0] ?? ['?', '?', '?']
  return `${type} on ${device} (mounted at ${mount})`
}

export interface CpuSnapshot {
  readonly at: number
  /** CPU seconds the whole machine has been busy (user, nice, system, irq, softirq). */
  readonly machineBusy: number
  /** CPU seconds of this process and its descendants, those already reaped included. */
  readonly ours: number
}

export function cpuSnapshot(): CpuSnapshot {
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0] = (
    readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? ''
  )
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number)
  return {
    at: performance.now(),
    machineBusy: (user + nice + system + irq + softirq) / TICKS_PER_SECOND,
    ours: treeCpuSeconds(process.pid),
  }
}

/** The fields of a /proc/.../stat file after the command name (in parentheses, may hold spaces). */
function statFields(statPath: string): string[] {
  const text = readFileSync(statPath, 'utf8')
  return text.slice(text.lastIndexOf(')') + 2).split(' ')
}

function userAndSystemSeconds(statPath: string): number {
  const fields = statFields(statPath)
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND
}

/** CPU seconds a process has used so far, all its threads together. */
export function processCpuSeconds(pid: number): number {
  return userAndSystemSeconds(`/proc/${pid}/stat`)
}

/**
 * CPU seconds of a process's main thread (its thread id is its pid): the thread that runs the
 * event loop and every request, so work moved to a worker thread leaves this figure.
 */
export function mainThreadCpuSeconds(pid: number): number {
  return userAndSystemSeconds(`/proc/${pid}/task/${pid}/stat`)
}

interface ProcStat {
  readonly parent: number
  readonly seconds: number
}

/** utime + stime + cutime + cstime of every live process in the tree rooted at `root`. */
function treeCpuSeconds(root: number): number {
  const stats = new Map<number, ProcStat>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const fields = statFields(`/proc/${entry}/stat`)
      const [utime, stime, cutime, cstime] = fields.slice(11, 15).map(Number)
      stats.set(Number(entry), {
        parent: Number(fields[1]),
        seconds: ((utime ?? 0) + (stime ?? 0) + (cutime ?? 0) + (cstime ?? 0)) / TICKS_PER_SECOND,
      })
    } catch {
      // The process ended while the list was read.
    }
  }
  const children = new Map<number, number[]>()
  for (const [pid, { parent }] of stats)
    children.set(parent, [...(children.get(parent) ?? []), pid])
  let total = 0
  const pending = [root]
  for (let pid = pending.pop(); pid !== undefined; pid = pending.pop()) {
    total += stats.get(pid)?.seconds ?? 0
    pending.push(...(children.get(pid) ?? []))
  }
  return total
}

/**
 * The share of the machine's CPU capacity used outside the benchmark's process tree between two
 * snapshots, in percent: other users' work, and kernel threads (disk writeback among them).
 */
export function othersCpuPercent(start: CpuSnapshot, end: CpuSnapshot): number {
  const capacity = ((end.at - start.at) / 1000) * os.availableParallelism()
  const others = end.machineBusy - start.machineBusy - (end.ours - start.ours)
  return Math.max(0, (others / capacity) * 100)
}
