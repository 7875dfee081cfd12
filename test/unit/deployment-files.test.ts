import { readFile } from 'node:fs/promises'
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
  env_file?: unknown
  environment?: Record<string, string>
}

describe('.env.example, README and docker-compose.yml', () => {
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

  it('the README configuration table lists every setting', async () => {
    const readme = await read('README.md')
    const missing = SETTING_NAMES.filter((name) => !readme.includes(`| \`${name}\``))
    expect(missing).toEqual([])
  })

  it('the server and the worker get .env (optional) and every setting with a default', async () => {
    const compose = parse(await read('docker-compose.yml'), { merge: true }) as {
      services: Record<string, ComposeService>
    }
    // The compose stack always runs its own PostgreSQL service, never the embedded one.
    const expected = SETTING_NAMES.filter((name) => !name.startsWith('EMBEDDED_POSTGRES_')).sort()
    for (const name of ['server', 'worker']) {
      const service = compose.services[name] as ComposeService
      expect(service.env_file).toEqual([{ path: '.env', required: false }])
      const environment = service.environment ?? {}
      expect(Object.keys(environment).sort()).toEqual(expected)
      for (const [variable, value] of Object.entries(environment)) {
        expect(value).toMatch(new RegExp(`^\\$\\{${variable}:-.*\\}$`))
      }
    }
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
