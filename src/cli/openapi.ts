/**
 * `spikard openapi`: the OpenAPI document the server serves at /openapi.json (or
 * /openapi.yaml), printed as ./document.ts prints every document.
 */
import type {} from '@fastify/swagger'
import { printDocument, type DocumentArgs } from './document.js'

export async function openapi (args: DocumentArgs): Promise<number> {
  return await printDocument(args, {
    feature: 'openapi',
    title: 'OpenAPI',
    // app.swagger() returns what the onReady hook serialized for /openapi.json and /openapi.yaml.
    render: (app, format) => format === 'json' ? `${JSON.stringify(app.swagger(), null, 2)}\n` : app.swagger({ yaml: true })
  })
}
