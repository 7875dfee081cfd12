import { describe, expect, it } from 'vitest'
import { databaseUnavailable } from '../../src/db/errors.ts'

function withCode(message: string, code: string): Error {
  return Object.assign(new Error(message), { code })
}

describe('databaseUnavailable', () => {
  it.each([
    ['a refused connection', withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED')],
    ['an administrator shutdown (57P01)', withCode('terminating connection', '57P01')],
    ['a server starting up or shutting down (57P03)', withCode('shutting down', '57P03')],
    ['a connection exception (class 08)', withCode('connection failure', '08006')],
    ['too many connections (53300)', withCode('too many clients', '53300')],
    [
      'a connection lost under a query',
      new Error(
        'select * from "upload_files" where "id" = $1 - Connection terminated unexpectedly',
      ),
    ],
    [
      'a query on a client ended after its connection failed',
      new Error('Client was closed and is not queryable'),
    ],
    [
      'a knex pool timeout',
      Object.assign(new Error('Knex: Timeout acquiring a connection.'), {
        name: 'KnexTimeoutError',
      }),
    ],
    [
      'a cause that is one of these',
      new Error('finish failed', { cause: withCode('refused', 'ECONNREFUSED') }),
    ],
  ])('turns %s into a 503 database_unavailable', (_, error) => {
    expect(databaseUnavailable(error)).toMatchObject({
      kind: 'unavailable',
      code: 'database_unavailable',
      cause: error,
    })
  })

  it.each([
    ['a syntax error (42601)', withCode('syntax error', '42601')],
    ['a unique violation (23505)', withCode('duplicate key', '23505')],
    ['a missing file', withCode('no such file', 'ENOENT')],
    [
      'the S3 client failing to connect',
      Object.assign(withCode('connect ECONNREFUSED', 'ECONNREFUSED'), { $metadata: {} }),
    ],
    ['something that is not an error', 'ECONNREFUSED'],
  ])('leaves %s alone', (_, error) => {
    expect(databaseUnavailable(error)).toBeUndefined()
  })
})
