/**
 * Renders the README's option tables and error table from the schemas and the error
 * registry, between `<!-- generated:NAME -->` markers. `npm run docs` writes them;
 * test/readme.test.ts fails when the README is out of date.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Kind, type TSchema } from '@sinclair/typebox'
import { describe } from '../src/schema.js'
import { features } from '../src/options.js'
import { ServerSchema } from '../src/config/schema.js'
import { errorDefinitions, PROBLEM_TYPE_BASE } from '../src/errors.js'
import Fastify from 'fastify'
import { stringify } from 'yaml'
import spikard from '../src/index.js'
import exampleRoutes, { options as exampleOptions } from '../examples/openapi-route.js'

export const README = join(import.meta.dirname, '..', 'README.md')

function cell (text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ')
}

function rows (schema: TSchema, prefix = ''): string[] {
  return Object.entries(schema.properties as Record<string, TSchema>).flatMap(([key, prop]) => {
    const name = prefix + key
    if (prop[Kind] === 'Object' && prop.properties !== undefined) return rows(prop, `${name}.`)
    const def = prop.default === undefined ? '' : `\`${JSON.stringify(prop.default)}\``
    return [`| \`${name}\` | ${cell(describe(prop))} | ${def} | ${cell(prop.description ?? '')} |`]
  })
}

function optionsTable (schema: TSchema, prefix: string): string {
  if (Object.keys(schema.properties as object).length === 0) return `No options: \`${prefix.slice(0, -1)}: true\` switches it on.`
  return ['| Option | Accepts | Default | Description |', '|---|---|---|---|', ...rows(schema, prefix)].join('\n')
}

/** What the shorthand line of each feature shows. */
const SHORTHAND_EXAMPLES: Record<string, string> = { shutdown: '20s', timeout: '10s', rateLimit: '100', bodyLimit: '512kb', stream: '5m', static: '[{ root: ./public }]', cors: 'https://app.example.com' }

/** The example route's source, and the path item spikard documents for it. */
async function openapiExample (): Promise<string> {
  const source = readFileSync(join(import.meta.dirname, '..', 'examples', 'openapi-route.ts'), 'utf8')
  const code = /\/\/ readme:start\n([\s\S]*?)\n\s*\/\/ readme:end/.exec(source)?.[1] ?? ''
  const app = Fastify({ logger: false })
  try {
    await app.register(spikard, { ...exampleOptions, openapi: { info: { title: 'example', version: '1.0.0' } } })
    await app.register(exampleRoutes)
    await app.ready()
    const document = app.swagger() as { paths: Record<string, unknown> }
    const indent = (text: string) => text.replace(/^ {2}/gm, '')
    return ['```ts', indent(code), '```', '', 'What `/openapi.yaml` says of it:', '', '```yaml', stringify({ '/orders': document.paths['/orders'] }).trimEnd(), '```'].join('\n')
  } finally {
    await app.close()
  }
}

export async function generatedSections (): Promise<Record<string, string>> {
  const sections: Record<string, string> = {
    'openapi-example': await openapiExample(),
    server: optionsTable(ServerSchema, 'server.'),
    errors: [
      '| Code | Status | `type` | When |',
      '|---|---|---|---|',
      ...Object.entries(errorDefinitions).map(([code, d]) => `| \`${code}\` | ${d.status} | \`${PROBLEM_TYPE_BASE}${d.type}\` | ${cell(d.when)} |`)
    ].join('\n')
  }
  for (const [name, feature] of Object.entries(features)) {
    const shorthand = 'shorthand' in feature ? `; a single value sets \`${name}.${feature.shorthand}\` (\`${name}: ${SHORTHAND_EXAMPLES[name] ?? '...'}\`)` : ''
    sections[name] = `${feature.enabledByDefault ? 'On' : 'Off'} by default${'offInProduction' in feature ? ' (off when `NODE_ENV=production` unless the key is set)' : ''}${shorthand}.\n\n${optionsTable(feature.schema, `${name}.`)}`
  }
  return sections
}

export async function renderReadme (text: string): Promise<string> {
  let out = text
  for (const [name, body] of Object.entries(await generatedSections())) {
    const pattern = new RegExp(`(<!-- generated:${name} -->\\n)[\\s\\S]*?(<!-- /generated:${name} -->)`)
    if (!pattern.test(out)) throw new Error(`README.md has no <!-- generated:${name} --> section`)
    out = out.replace(pattern, (_m, open: string, close: string) => `${open}${body}\n${close}`)
  }
  return out
}

if (process.argv[1] !== undefined && import.meta.filename === process.argv[1]) {
  writeFileSync(README, await renderReadme(readFileSync(README, 'utf8')))
  console.log('README.md tables regenerated')
}
