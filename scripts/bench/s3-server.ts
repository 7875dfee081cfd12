/**
 * The S3 server of D and E, in a process of its own so that its work (fauxqs keeps every object
 * in memory) competes with neither tusbox's RSS figure nor the benchmark client's event loop.
 * Usage: node scripts/bench/s3-server.ts; prints {"url"} (the endpoint) once it listens.
 */
import { startS3TestServer } from '../../test/helpers/s3-server.ts'

const server = await startS3TestServer()
process.stdout.write(`${JSON.stringify({ url: server.endpoint })}\n`)
// The benchmark holds our stdin open: when it goes away, so do we, even if it was killed.
process.stdin.on('close', () => process.exit(0)).resume()
