import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http'
import type { SendInterim } from '../rufh/rufh-handler.ts'

// Node names the status line of a 1xx from this table and writes `unknown` for a code it lacks;
// clients ignore the reason phrase (RFC 9112 §4), but people reading `curl -v` do not.
STATUS_CODES[104] ??= 'Upload Resumption Supported'

/**
 * A sender of 1xx answers on Node's response, for the RUFH edge's 104s.
 * `ServerResponse.writeInformation` (Node's docs: added in 26.2; present in the 24.21 tusbox is
 * tested on, absent from Node 20; before it Node could send only 100, 102 and 103) writes them in
 * order on the same connection, and refuses once the final head is out.
 * Undefined where none may be sent: RFC 9110 §15.2 forbids 1xx to HTTP/1.0 clients, and an
 * older Node has no such API (the draft makes the 104s optional).
 */
export function interimSender(
  incoming: IncomingMessage | undefined,
  outgoing: ServerResponse | undefined,
): SendInterim | undefined {
  if (!incoming || !outgoing || typeof outgoing.writeInformation !== 'function') return undefined
  if (incoming.httpVersionMajor !== 1 || incoming.httpVersionMinor < 1) return undefined
  return (status, headers) => {
    if (outgoing.headersSent || outgoing.writableEnded || outgoing.destroyed) return
    outgoing.writeInformation(status, headers)
  }
}
