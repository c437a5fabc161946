/**
 * The project's fixtures, testing_data/**\/*.json, each one test, run through the test
 * client's fixture runner (spikard/testing's loadFixtures and runFixture): validated against
 * its schema, each fixture with the app its options and routes describe.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fixtureSchema, loadFixtures, runFixture } from '../src/testing/index.js'

const root = join(import.meta.dirname, '..', 'testing_data')

test('testing_data/fixture.schema.json is the schema the runner ships (src/testing/fixture-schema.ts)', () => {
  assert.deepEqual(JSON.parse(readFileSync(join(root, 'fixture.schema.json'), 'utf8')), fixtureSchema)
})

for (const fixture of await loadFixtures(root)) {
  test(`${fixture.name}: ${fixture.description}`, async () => {
    await runFixture(undefined, fixture)
  })
}
