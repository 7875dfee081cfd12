/** Problem types the draft registers (draft-ietf-httpbis-resumable-upload, "Problem Types"). */
const PROBLEM_TYPE_BASE = 'https://iana.org/assignments/http-problem-types'
export const MISMATCHING_OFFSET = `${PROBLEM_TYPE_BASE}#mismatching-upload-offset`
export const INCONSISTENT_LENGTH = `${PROBLEM_TYPE_BASE}#inconsistent-upload-length`

/**
 * An RFC 9457 problem. `code` is tusbox's own error code, the one its JSON errors carry, so a
 * client handles both kinds of answer by the same codes.
 */
export interface Problem {
  readonly status: number
  readonly type?: string
  readonly title: string
  readonly code: string
  readonly detail: string
  readonly [extension: string]: unknown
}

export function problemResponse(problem: Problem, headers: Record<string, string>): Response {
  const body = JSON.stringify({ type: 'about:blank', ...problem })
  return new Response(body, {
    status: problem.status,
    headers: { ...headers, 'Content-Type': 'application/problem+json' },
  })
}

export function mismatchingOffset(expected: number, provided: number): Problem {
  return {
    status: 409,
    type: MISMATCHING_OFFSET,
    title: 'Upload-Offset does not match the offset of the upload',
    code: 'offset_mismatch',
    detail: `The upload has ${expected} bytes; the request appends at ${provided}.`,
    'expected-offset': expected,
    'provided-offset': provided,
  }
}

export function inconsistentLength(detail: string): Problem {
  return {
    status: 400,
    type: INCONSISTENT_LENGTH,
    title: 'The upload length indicators disagree',
    code: 'inconsistent_length',
    detail,
  }
}
