/**
 * The static half of `npm test`: the lint, the type check and the type tests, side by side.
 * They share nothing and each is single-threaded, so on two cores this takes about two
 * thirds of running them one after the other. Each one's output is printed whole when it
 * ends, under its command; the exit code is non-zero if any of them failed.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const bin = (name) => fileURLToPath(new URL(`../node_modules/.bin/${name}`, import.meta.url))

const CHECKS = [
  ['eslint', '.'],
  ['tsc', '--noEmit', '-p', 'tsconfig.json'],
  ['tstyche', '--config', 'test/types/tstyche.json']
]

function run ([name, ...args]) {
  return new Promise((resolve) => {
    const started = Date.now()
    const child = spawn(bin(name), args, { cwd: root, env: { ...process.env, ...(process.stdout.isTTY ? { FORCE_COLOR: '1' } : { NO_COLOR: '1' }) } })
    let output = ''
    child.stdout.setEncoding('utf8').on('data', (chunk) => { output += chunk })
    child.stderr.setEncoding('utf8').on('data', (chunk) => { output += chunk })
    child.once('error', (err) => { output += `${err.message}\n`; resolve(1) })
    child.once('close', (code, signal) => {
      const seconds = ((Date.now() - started) / 1000).toFixed(1)
      const status = code === 0 ? 'passed' : `failed (${code ?? signal})`
      process.stdout.write(`== ${[name, ...args].join(' ')}: ${status} in ${seconds} s\n${output}${output === '' || output.endsWith('\n') ? '' : '\n'}`)
      resolve(code ?? 1)
    })
  })
}

const codes = await Promise.all(CHECKS.map(run))
process.exitCode = codes.some((code) => code !== 0) ? 1 : 0
