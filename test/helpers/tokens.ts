import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  type CryptoKey,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  SignJWT,
} from 'jose'

type Alg = 'RS256' | 'ES256'

/** A server that checks HS256 tokens signed with `secret` (the test database would allow none). */
export function jwtSettings(secret: string): Record<string, string> {
  return { AUTH_MODE: 'jwt', AUTH_JWT_SECRET: secret, AUTH_ALLOW_ANONYMOUS: 'false' }
}

/** A token as an identity provider would issue it: signed, issued now, valid for five minutes. */
export function signHs256(secret: string, claims: JWTPayload): Promise<string> {
  return sign(claims, 'HS256', new TextEncoder().encode(secret))
}

function sign(
  claims: JWTPayload,
  alg: string,
  key: CryptoKey | Uint8Array,
  kid?: string,
): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  return new SignJWT({ iat: now, exp: now + 300, ...claims })
    .setProtectedHeader(kid ? { alg, kid } : { alg })
    .sign(key)
}

interface SigningKey {
  readonly kid: string
  readonly privateKey: CryptoKey
  readonly publicKey: CryptoKey
  readonly jwk: JWK
}

/** The audience a JWKS server's tokens carry: tusbox needs one with AUTH_JWKS_URL. */
export const JWKS_AUDIENCE = 'tusbox'

/** A server that checks tokens from `jwksUrl` (RS256/ES256), as an identity provider issues them. */
export function jwksSettings(jwksUrl: string): Record<string, string> {
  return {
    AUTH_MODE: 'jwt',
    AUTH_JWKS_URL: jwksUrl,
    AUTH_AUDIENCE: JWKS_AUDIENCE,
    AUTH_ALLOW_ANONYMOUS: 'false',
  }
}

/** An identity provider's key set on 127.0.0.1, with keys it can rotate; counts its fetches. */
export class JwksServer {
  fetches = 0
  readonly #keys = new Map<Alg, SigningKey>()
  #generation = 0
  readonly #server = createServer((_request, response) => {
    this.fetches++
    const keys = [...this.#keys.values()].map((key) => key.jwk)
    response.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ keys }))
  })

  async start(): Promise<string> {
    for (const alg of ['RS256', 'ES256'] as const) await this.rotate(alg)
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve))
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/.well-known/jwks.json`
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }

  /** Replaces the key for `alg` with a new one under a new key id. */
  async rotate(alg: Alg): Promise<void> {
    const key = await newKey(alg, `${alg}-${++this.#generation}`)
    this.#keys.set(alg, key)
  }

  sign(alg: Alg, claims: JWTPayload): Promise<string> {
    const key = this.#keys.get(alg)
    if (!key) throw new Error(`no ${alg} key`)
    return sign({ aud: JWKS_AUDIENCE, ...claims }, alg, key.privateKey, key.kid)
  }

  /** Signed with a key that is not in the set, under a key id that is not either. */
  async signWithStrangerKey(claims: JWTPayload): Promise<string> {
    const stranger = await newKey('RS256', 'stranger')
    return sign({ aud: JWKS_AUDIENCE, ...claims }, 'RS256', stranger.privateKey, stranger.kid)
  }

  /** The public key as PEM text: what an algorithm-confusion attacker would use as an HMAC key. */
  publicKeyText(alg: Alg): Promise<string> {
    const key = this.#keys.get(alg)
    if (!key) throw new Error(`no ${alg} key`)
    return exportSPKI(key.publicKey)
  }
}

async function newKey(alg: Alg, kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }
  return { kid, privateKey, publicKey, jwk }
}
