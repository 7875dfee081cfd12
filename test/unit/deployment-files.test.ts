import { readdir, readFile } from 'node:fs/promises'
import { Ajv } from 'ajv'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { loadConfig, SETTING_NAMES } from '../../src/config.ts'

const read = (file: string) => readFile(new URL(`../../${file}`, import.meta.url), 'utf8')

/** `NAME=value` and `# NAME=value` lines: documented settings, set or shown commented out. */
function documentedSettings(envExample: string): Map<string, string> {
  const settings = new Map<string, string>()
  for (const match of envExample.matchAll(/^#? ?([A-Z][A-Z0-9_]+)=(.*)$/gm)) {
    settings.set(match[1] as string, match[2] as string)
  }
  return settings
}

interface ComposeService {
  image?: string
  command?: string[]
  restart?: string
  env_file?: unknown
  environment?: Record<string, string>
  depends_on?: Record<string, { condition: string }>
}

async function composeServices(): Promise<Record<string, ComposeService>> {
  const compose = parse(await read('docker-compose.yml'), { merge: true }) as {
    services: Record<string, ComposeService>
  }
  return compose.services
}

/** Settings without which the stack must not start: Compose itself stops and names them. */
const REQUIRED_IN_COMPOSE = new Set(['AUTH_MODE'])

describe('.env.example, the configuration table and docker-compose.yml', () => {
  it('.env.example documents every setting tusbox reads, and no other', async () => {
    const documented = documentedSettings(await read('.env.example'))
    expect([...documented.keys()].sort()).toEqual([...SETTING_NAMES].sort())
  })

  it('.env.example shows the real defaults (bar the two lines that show an example)', async () => {
    const documented = documentedSettings(await read('.env.example'))
    documented.delete('DATABASE_URL')
    documented.delete('AWS_STORAGE_BUCKET_NAME')
    expect(loadConfig(Object.fromEntries(documented))).toEqual(loadConfig({}))
  })

  it('the configuration table lists every setting, in whichever document holds it', async () => {
    const documents = await Promise.all(
      ['README.md', ...(await readdir(new URL('../../docs/', import.meta.url)))]
        .filter((name) => name.endsWith('.md'))
        .map((name) => read(name === 'README.md' ? name : `docs/${name}`)),
    )
    const table = documents.find((text) => text.includes(`| \`${SETTING_NAMES[0]}\``)) ?? ''
    const missing = SETTING_NAMES.filter((name) => !table.includes(`| \`${name}\``))
    expect(missing).toEqual([])
  })

  it('check-config, the server and the worker get .env (optional) and every setting, with a default or required', async () => {
    const services = await composeServices()
    // The compose stack always runs its own PostgreSQL service, never the embedded one.
    const expected = SETTING_NAMES.filter((name) => !name.startsWith('EMBEDDED_POSTGRES_')).sort()
    for (const name of ['check-config', 'server', 'worker']) {
      const service = services[name] as ComposeService
      expect(service.env_file).toEqual([{ path: '.env', required: false }])
      const environment = service.environment ?? {}
      expect(Object.keys(environment).sort()).toEqual(expected)
      for (const [variable, value] of Object.entries(environment)) {
        const form = REQUIRED_IN_COMPOSE.has(variable) ? `:\\?set ${variable} in \\.env` : ':-'
        expect(value).toMatch(new RegExp(`^\\$\\{${variable}${form}.*\\}$`))
      }
    }
  })

  it('is valid under the Compose Specification (Compose 2.24+), not docker-compose 1.29', async () => {
    // The schema docker compose itself validates against (compose-spec/compose-spec,
    // schema/compose-spec.json), as the dclint 3.1.0 package ships it: no network in tests. Its
    // $schema names draft-07 without the "#" that Ajv knows it by; the schema itself is draft-07.
    const schema = JSON.parse(await read('test/fixtures/compose-spec.schema.json'))
    // Compose interpolates before it validates: ${VAR:-default} gives its default, ${VAR:?…} the
    // value a .env must set (a number where a port is expected would pass too).
    const interpolated = (await read('docker-compose.yml')).replace(
      /\$\{([A-Z0-9_]+)(?::-([^}]*)|:\?[^}]*)\}/g,
      (_match, _name: string, fallback: string | undefined) => fallback ?? 'set-in-dotenv',
    )
    const compose = parse(interpolated, { merge: true })
    const validate = new Ajv({ strict: false, allErrors: true, validateSchema: false }).compile(
      schema,
    )
    expect(validate(compose) ? [] : validate.errors).toEqual([])
  })

  it('checks the configuration once before the server and the worker, which start only when it passed', async () => {
    const services = await composeServices()
    expect(services['check-config']).toMatchObject({ command: ['check-config'], restart: 'no' })
    for (const name of ['server', 'worker']) {
      expect(services[name]?.depends_on?.['check-config']).toEqual({
        condition: 'service_completed_successfully',
      })
    }
  })

  it('pins every image it pulls to a release, and says which Compose it needs', async () => {
    const services = await composeServices()
    for (const service of Object.values(services)) {
      if (service.image === 'tusbox:local') continue
      expect(service.image).toMatch(/^[a-z0-9/._-]+:[A-Za-z0-9._-]+$/)
      expect(service.image).not.toMatch(/:latest$/)
    }
    expect(services.minio?.image).toMatch(/^minio\/minio:RELEASE\.\d{4}-/)
    expect(services['create-bucket']?.image).toMatch(/^minio\/mc:RELEASE\.\d{4}-/)
    expect(await read('docker-compose.yml')).toMatch(/^# Needs Docker Compose 2\.24 or newer/m)
  })

  it('the Dockerfile runs the Node version the project needs, as a non-root user', async () => {
    const dockerfile = await read('Dockerfile')
    const { engines } = JSON.parse(await read('package.json')) as { engines: { node: string } }
    expect(engines.node).toBe('>=22.12')
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:24-/m)
    expect(dockerfile).toMatch(/^USER node$/m)
    expect(dockerfile).toMatch(/npm ci --omit=dev/)
  })
})
