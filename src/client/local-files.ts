import type { Dirent, Stats } from 'node:fs'
import { readdir, realpath, stat } from 'node:fs/promises'
import path from 'node:path'

export interface LocalFile {
  /** Absolute path: what the resume fingerprint is made of. */
  readonly absolutePath: string
  /** As the user named it, or under the directory they named: for output. */
  readonly displayPath: string
  /** Set for files found in a directory: the path from that directory's parent, `photos/2024/a.png`. */
  readonly relativePath: string | undefined
  readonly size: number
  readonly mtimeMs: number
}

export interface CollectedFiles {
  readonly files: readonly LocalFile[]
  /** Entries inside directories that were left out, and why. */
  readonly skipped: readonly { readonly path: string; readonly reason: SkipReason }[]
}

export type SkipReason = 'hidden' | 'symlink' | 'not a regular file'

/** A path argument that cannot be uploaded: a usage error, reported before anything is sent. */
export class UnusablePathError extends Error {}

/**
 * The files to upload, in argument order, each once. A path named on the command line is
 * followed if it is a symlink (as cp and tar do with their arguments) and uploaded even if
 * hidden: naming it is asking for it. Inside directories, symlinks are not followed (a link can
 * lead out of the tree or around in a cycle), hidden entries are left out (`.git`, `.DS_Store`),
 * and so are sockets, FIFOs and devices; every one of them is listed in `skipped`.
 */
export async function collectFiles(args: readonly string[]): Promise<CollectedFiles> {
  const files: LocalFile[] = []
  const skipped: { path: string; reason: SkipReason }[] = []
  const seen = new Set<string>()

  const add = async (absolutePath: string, displayPath: string, relativePath?: string) => {
    const info = await stat(absolutePath)
    // A file named twice, or both directly and inside a named directory, is uploaded once.
    const identity = await realpath(absolutePath)
    if (seen.has(identity)) return
    seen.add(identity)
    files.push({
      absolutePath,
      displayPath,
      relativePath,
      size: info.size,
      mtimeMs: info.mtimeMs,
    })
  }

  const walk = async (directory: string, display: string, relative: string): Promise<void> => {
    const entries = await readdir(directory, { withFileTypes: true })
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    for (const entry of entries) {
      const absolute = path.join(directory, entry.name)
      const shown = path.join(display, entry.name)
      const reason = skipReason(entry)
      if (reason) skipped.push({ path: shown, reason })
      else if (entry.isDirectory()) await walk(absolute, shown, `${relative}/${entry.name}`)
      else await add(absolute, shown, `${relative}/${entry.name}`)
    }
  }

  for (const arg of args) {
    const absolute = path.resolve(arg)
    const info = await statArgument(arg)
    if (info.isDirectory()) {
      await walk(absolute, arg, path.basename(absolute))
    } else if (info.isFile()) {
      await add(absolute, arg)
    } else {
      throw new UnusablePathError(`${arg}: not a regular file or a directory.`)
    }
  }
  return { files, skipped }
}

function skipReason(entry: Dirent): SkipReason | undefined {
  if (entry.name.startsWith('.')) return 'hidden'
  if (entry.isSymbolicLink()) return 'symlink'
  if (!entry.isFile() && !entry.isDirectory()) return 'not a regular file'
  return undefined
}

async function statArgument(arg: string): Promise<Stats> {
  try {
    return await stat(arg)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new UnusablePathError(`${arg}: no such file or directory.`)
    if (code === 'EACCES') throw new UnusablePathError(`${arg}: permission denied.`)
    throw error
  }
}
