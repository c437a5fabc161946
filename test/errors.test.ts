import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { errorDefinitions, errors, PROBLEM_TYPE_BASE } from '../src/errors.js'
import { README, renderReadme } from '../scripts/docs.js'

test('every error code has a type slug, a title, a 4xx/5xx status and a constructor of the same code', () => {
  const slugs = new Set<string>()
  for (const [code, d] of Object.entries(errorDefinitions)) {
    assert.match(code, /^SPK_ERR_[A-Z_]+$/)
    assert.match(d.type, /^[a-z]+(-[a-z]+)*$/, `${code} type`)
    assert.ok(!slugs.has(d.type), `${code}: type ${d.type} is used twice`)
    slugs.add(d.type)
    assert.ok(d.title.length > 0, `${code} title`)
    assert.ok(d.status >= 400 && d.status <= 599, `${code} status ${d.status}`)
    const e = new errors[code as keyof typeof errors]('a', 'b', 'c')
    assert.equal(e.code, code)
    assert.equal(e.statusCode, d.status)
    // A 4xx is an answer to the client, never logged with a stack: building one costs
    // about as much as the request itself. A 5xx keeps it for the log.
    assert.equal(typeof e.stack, d.status >= 500 ? 'string' : 'undefined', `${code} stack`)
  }
})

test('every error code has a row in the README error table', () => {
  const readme = readFileSync(README, 'utf8')
  for (const [code, d] of Object.entries(errorDefinitions)) {
    assert.ok(readme.includes(`| \`${code}\` | ${d.status} | \`${PROBLEM_TYPE_BASE}${d.type}\` |`), `README has no row for ${code}`)
  }
})

test('the README option and error tables, and its OpenAPI example, match the code (run `npm run docs` to update)', async () => {
  const readme = readFileSync(README, 'utf8')
  assert.equal(await renderReadme(readme), readme)
})
