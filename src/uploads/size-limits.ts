import { AppError } from '../lib/errors.ts'

export interface SizeLimits {
  /** FILE_UPLOAD_MIN_SIZE: 1 refuses empty files; 0 accepts them (tus allows them). */
  readonly minSize: number
  /** FILE_UPLOAD_MAX_SIZE. */
  readonly maxSize: number
}

/**
 * Why a file of `size` bytes may not be stored, or undefined when it may. Every refusal names the
 * size, the limit and the setting that moves it: the person who reads it is often not the one who
 * can change it, and must be able to tell them what to change. A size `declared` before the bytes
 * (tus Upload-Length) is over the limit as `max_size_exceeded`, the size `received` (the finish)
 * as `file_too_large`: the codes clients already know.
 */
export function sizeRefusal(
  size: number,
  limits: SizeLimits,
  known: 'declared' | 'received',
): AppError | undefined {
  if (size > limits.maxSize) {
    return new AppError(
      'too_large',
      known === 'declared' ? 'max_size_exceeded' : 'file_too_large',
      `The file is ${size} bytes; the limit is ${limits.maxSize} bytes (FILE_UPLOAD_MAX_SIZE on the server).`,
    )
  }
  if (size < limits.minSize) {
    return size === 0
      ? new AppError(
          'invalid',
          'empty_file',
          'The file is empty (0 bytes); empty files are refused unless the server sets FILE_UPLOAD_MIN_SIZE=0.',
        )
      : new AppError(
          'invalid',
          'file_too_small',
          `The file is ${size} bytes; the least accepted is ${limits.minSize} bytes (FILE_UPLOAD_MIN_SIZE on the server).`,
        )
  }
  return undefined
}
