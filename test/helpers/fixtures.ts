import { createHash, randomBytes } from 'node:crypto'
import { crc32 } from 'node:zlib'

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
const PNG_IHDR_1x1_RGBA = Buffer.from([0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0])
/** Signature, IHDR, IDAT and IEND chunks: 12 bytes of framing per chunk. */
const PNG_OVERHEAD = PNG_SIGNATURE.length + (12 + PNG_IHDR_1x1_RGBA.length) + 12 + 12

/**
 * A well-formed PNG of exactly `size` bytes whose IDAT holds random data: sniffers walk the
 * chunk list, so random bytes after the header would not pass as PNG.
 */
export function pngBytes(size: number): Buffer {
  return Buffer.concat([
    PNG_SIGNATURE,
    pngChunk('IHDR', PNG_IHDR_1x1_RGBA),
    pngChunk('IDAT', randomBytes(Math.max(0, size - PNG_OVERHEAD))),
    pngChunk('IEND', Buffer.alloc(0)),
  ])
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4)
  length.writeUInt32BE(data.length)
  const typeAndData = Buffer.concat([Buffer.from(type, 'ascii'), data])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(typeAndData))
  return Buffer.concat([length, typeAndData, crc])
}

/** A Linux executable's header followed by random bytes: application/x-elf. */
export function elfBytes(size: number): Buffer {
  const head = Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00])
  return Buffer.concat([head, randomBytes(Math.max(0, size - head.length))])
}

export function csvBytes(rows: number): Buffer {
  const lines = ['id,name,amount']
  for (let row = 1; row <= rows; row++) lines.push(`${row},item ${row},${row * 3}.50`)
  return Buffer.from(`${lines.join('\n')}\n`)
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

export const MiB = 1024 * 1024
