import {
  createRemoteJWKSet,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
  jwtVerify,
} from 'jose'
import type { AuthConfig } from '../config.ts'
import { AppError } from '../lib/errors.ts'

/**
 * Who is asking. `owner` is the token's `sub`, stored on every upload and batch it creates;
 * null in AUTH_MODE=none, where every request may touch every upload (local use only).
 */
export interface Principal {
  readonly owner: string | null
  readonly admin: boolean
}

export type Authenticate = (authorization: string | undefined) => Promise<Principal>

const ANONYMOUS: Principal = Object.freeze({ owner: null, admin: true })

/** Only asymmetric algorithms from a JWKS, only HS256 with a shared secret: no algorithm confusion. */
const JWKS_ALGORITHMS = ['RS256', 'ES256']
const SECRET_ALGORITHMS = ['HS256']

/**
 * After fetching the key set, jose waits this long before fetching it again for an unknown key
 * id, so a flood of forged kids cannot hammer the identity provider.
 */
const JWKS_COOLDOWN_MS = 30_000

/**
 * Clocks of the identity provider and of tusbox may differ this much: `exp` and `nbf` are
 * checked with it, and an `iat` further in the future is refused (jose checks `iat` only with
 * maxTokenAge). A minute covers NTP-synchronised hosts with room to spare.
 */
export const CLOCK_TOLERANCE_SECONDS = 60

/** C0 controls and DEL: Postgres text refuses NUL, and a log line must not be forged. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/

export interface AuthenticateOptions {
  readonly jwksCooldownMs?: number
  /** The clock, in ms (tests move it). */
  readonly now?: () => number
}

export function createAuthenticate(
  config: AuthConfig,
  options: AuthenticateOptions = {},
): Authenticate {
  if (config.mode === 'none') return async () => ANONYMOUS
  const { key } = config
  const now = options.now ?? Date.now
  // createRemoteJWKSet caches the key set and refetches it (rate-limited) when a token names an
  // unknown key id, so a key rotation needs no restart.
  const verificationKey =
    key.kind === 'secret'
      ? sharedSecret(key.secret)
      : createRemoteJWKSet(new URL(key.url), {
          timeoutDuration: 5000,
          cooldownDuration: options.jwksCooldownMs ?? JWKS_COOLDOWN_MS,
        })
  const algorithms = key.kind === 'secret' ? SECRET_ALGORITHMS : JWKS_ALGORITHMS
  const verified = new VerifiedTokens()
  return async (authorization) => {
    const token = bearerToken(authorization)
    const nowMs = now()
    const known = verified.get(token, nowMs)
    if (known) return known
    const payload = await verify(token, verificationKey, {
      algorithms,
      issuer: config.issuer,
      audience: config.audience,
      // A token without exp would be valid forever (security review L3).
      requiredClaims: ['exp'],
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      currentDate: new Date(nowMs),
      ...(config.maxTokenAgeSeconds === undefined
        ? {}
        : { maxTokenAge: config.maxTokenAgeSeconds }),
    })
    const nowSeconds = Math.floor(nowMs / 1000)
    if (typeof payload.iat === 'number' && payload.iat > nowSeconds + CLOCK_TOLERANCE_SECONDS) {
      throw unauthenticated('invalid_token', 'The token was issued in the future (iat claim).')
    }
    if (
      typeof payload.sub !== 'string' ||
      payload.sub === '' ||
      CONTROL_CHARACTER.test(payload.sub)
    ) {
      throw unauthenticated(
        'invalid_token',
        'The token has no usable subject (sub claim): it must be non-empty text without control characters.',
      )
    }
    const principal = Object.freeze({
      owner: payload.sub,
      admin: hasClaim(payload, config.adminClaim),
    })
    verified.add(token, principal, acceptedUntilMs(payload, config.maxTokenAgeSeconds, nowMs))
    return principal
  }
}

/** How many verified tokens are kept, and for how long at most. */
const VERIFIED_TOKENS_KEPT = 1000
const VERIFIED_TOKEN_TTL_MS = 60_000
/** Longer tokens are verified every time: the cache holds at most about 4 MB of them. */
const MAX_KEPT_TOKEN_LENGTH = 4096

/**
 * Tokens accepted lately, with their principal: a client sends the same token with every
 * request, and verifying its signature again (WebCrypto) was a tenth of the CPU an authenticated
 * creation costs (issue 15). Only accepted tokens are kept, each until the first moment
 * verification could answer otherwise (exp, AUTH_MAX_TOKEN_AGE), and never longer than a minute:
 * a key withdrawn from a JWKS stops working as soon as jose's own key-set cache lets go of it.
 */
class VerifiedTokens {
  readonly #entries = new Map<string, { principal: Principal; untilMs: number }>()

  get(token: string, nowMs: number): Principal | undefined {
    const entry = this.#entries.get(token)
    if (!entry) return undefined
    if (nowMs < entry.untilMs) return entry.principal
    this.#entries.delete(token)
    return undefined
  }

  add(token: string, principal: Principal, untilMs: number): void {
    if (token.length > MAX_KEPT_TOKEN_LENGTH) return
    if (this.#entries.size >= VERIFIED_TOKENS_KEPT) {
      // Maps iterate in insertion order: the oldest entry goes.
      const oldest = this.#entries.keys().next()
      if (!oldest.done) this.#entries.delete(oldest.value)
    }
    this.#entries.set(token, { principal, untilMs })
  }
}

/**
 * Until when jose would still accept this token, as far as time goes: it refuses it once
 * `exp <= now - tolerance`, and once `now - iat - tolerance > maxTokenAge` (seconds).
 */
function acceptedUntilMs(
  payload: JWTPayload,
  maxTokenAgeSeconds: number | undefined,
  nowMs: number,
): number {
  const limits = [nowMs + VERIFIED_TOKEN_TTL_MS]
  if (typeof payload.exp === 'number') {
    limits.push((payload.exp + CLOCK_TOLERANCE_SECONDS) * 1000)
  }
  if (maxTokenAgeSeconds !== undefined && typeof payload.iat === 'number') {
    limits.push((payload.iat + maxTokenAgeSeconds + CLOCK_TOLERANCE_SECONDS) * 1000)
  }
  return Math.min(...limits)
}

/**
 * Imported once: given the secret's bytes, jose imports them as a WebCrypto key on every
 * verification, which was a tenth of the CPU an authenticated creation costs (issue 15).
 */
function sharedSecret(secret: string): JWTVerifyGetKey {
  const key = crypto.subtle.importKey(
    'raw',
    new TextEncoder().encode(secret),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['verify'],
  )
  return () => key
}

function bearerToken(authorization: string | undefined): string {
  if (!authorization) {
    throw unauthenticated('missing_token', 'Send Authorization: Bearer <token>.')
  }
  const match = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i.exec(authorization)
  if (!match?.[1]) {
    throw unauthenticated('invalid_token', 'The Authorization header must be Bearer <token>.')
  }
  return match[1]
}

async function verify(
  token: string,
  key: JWTVerifyGetKey,
  options: JWTVerifyOptions,
): Promise<JWTPayload> {
  try {
    return (await jwtVerify(token, key, options)).payload
  } catch (error) {
    throw rejection(error)
  }
}

/** jose's error codes, turned into what a client can act on; the key set being down is ours. */
function rejection(error: unknown): AppError {
  const code = (error as { code?: unknown }).code
  if (code === 'ERR_JWT_EXPIRED') return unauthenticated('token_expired', 'The token has expired.')
  if (code === 'ERR_JWKS_TIMEOUT' || code === 'ERR_JOSE_GENERIC' || error instanceof TypeError) {
    return new AppError(
      'unavailable',
      'auth_keys_unavailable',
      'The keys to verify tokens could not be fetched; try again.',
      { cause: error },
    )
  }
  if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') {
    const claim = (error as { claim?: unknown }).claim
    return unauthenticated('invalid_token', `The token's ${String(claim)} claim is not accepted.`)
  }
  return unauthenticated('invalid_token', 'The token is not valid.')
}

function hasClaim(
  payload: JWTPayload,
  claim: { readonly name: string; readonly value: string | undefined },
): boolean {
  const found = payload[claim.name]
  if (claim.value === undefined) return found === true
  if (Array.isArray(found)) return found.includes(claim.value)
  if (typeof found === 'string') return found.split(' ').includes(claim.value)
  return false
}

function unauthenticated(code: string, message: string): AppError {
  return new AppError('unauthenticated', code, message)
}
