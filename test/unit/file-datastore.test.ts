import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Upload } from '@tus/utils'
import { v7 as uuidv7 } from 'uuid'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDatastore, type Datastore } from '../../src/tus/datastore/index.ts'
import { storageKeyFor } from '../../src/uploads/storage-key.ts'

describe('file datastore creations', () => {
  let directory: string
  let datastore: Datastore

  beforeAll(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'tusbox-file-datastore-'))
    datastore = await createDatastore({ backend: 'file', directory })
  })

  afterAll(async () => {
    await rm(directory, { recursive: true, force: true })
  })

  const create = (size: number | undefined) =>
    datastore.tusStore.create(
      new Upload({ id: storageKeyFor(uuidv7()), size, offset: 0, metadata: { filename: 'a.txt' } }),
    )

  it('creates uploads whose month directory is missing, then beside each other in it', async () => {
    const first = await create(10)
    const second = await create(undefined)

    const monthDirectory = path.dirname(path.join(directory, first.id))
    expect((await readdir(monthDirectory)).sort()).toEqual(
      [first.id, `${first.id}.json`, second.id, `${second.id}.json`]
        .map((id) => path.basename(id))
        .sort(),
    )
    expect(first.storage).toEqual({ type: 'file', path: path.join(directory, first.id) })
    expect(await datastore.storage.progress(first.id)).toEqual({ offset: 0, size: 10 })
    expect(await datastore.storage.progress(second.id)).toEqual({ offset: 0, size: undefined })
    const info = await datastore.tusStore.getUpload(first.id)
    expect(info.metadata).toEqual({ filename: 'a.txt' })
  })

  it('creates an upload again after its month directory was removed', async () => {
    const first = await create(10)
    await rm(path.dirname(path.join(directory, first.id)), { recursive: true })

    const again = await create(5)

    expect(await datastore.storage.progress(again.id)).toEqual({ offset: 0, size: 5 })
  })
})
