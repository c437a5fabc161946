import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { LOG_BUFFER_MAX_DELAY_MS, LOG_EXIT_STALL_MS, logDestination } from '../src/log-destination.js'
import { tempDir } from './helpers.js'

const TSX = import.meta.resolve('tsx')
const INDEX = new URL('../src/index.ts', import.meta.url).href

const tempFile = (t: { after: (fn: () => void) => void }): string => join(tempDir(t), 'app.log')

/** Runs `script` (an ES module) in a child process under tsx; rejects on a non-zero exit or after 30 s. */
const runChild = async (script: string): Promise<{ stdout: string, stderr: string }> =>
  await promisify(execFile)(process.execPath, ['--import', TSX, '--input-type=module', '-e', script], { timeout: 30_000 })

const read = (file: string): string[] => readFileSync(file, 'utf8').split('\n').filter((l) => l !== '')

for (const buffer of [0, 1000]) {
  test(`server.logger.buffer ${buffer}: every line is written, in order, whole`, async (t) => {
    const file = tempFile(t)
    const dest = logDestination({ level: 'info', pretty: false, file, buffer }, '/')
    // Multi-byte characters (more bytes than UTF-16 units): the buffer counts bytes, and
    // the one line longer than the whole buffer (n 50) goes on its own, in its place.
    const line = (i: number): string => `{"n":${i},"s":"é€😀${'x'.repeat(i === 50 ? 3000 : 80)}"}\n`
    for (let i = 0; i < 9; i++) dest.write(line(i))
    if (buffer > 0) assert.deepEqual(read(file), [], 'under 1000 bytes: nothing written yet')
    for (let i = 9; i < 100; i++) {
      dest.write(line(i))
      // Some lines arrive while a write is under way.
      if (i % 10 === 0) await sleep(1)
    }
    await new Promise<void>((resolve) => { dest.flush(() => { resolve() }) })
    assert.deepEqual(read(file), Array.from({ length: 100 }, (_, i) => line(i).trimEnd()))
  })
}

test(`server.logger.buffer: a line waits at most ${LOG_BUFFER_MAX_DELAY_MS} ms for the buffer to fill`, async (t) => {
  const file = tempFile(t)
  const dest = logDestination({ level: 'info', pretty: false, file, buffer: 64 * 1024 }, '/')
  dest.write('{"msg":"alone"}\n')
  await sleep(50)
  assert.deepEqual(read(file), [], 'held in the buffer at first')
  let lines: string[] = []
  for (let waited = 0; waited < 10 * LOG_BUFFER_MAX_DELAY_MS && lines.length === 0; waited += 50) {
    await sleep(50)
    lines = read(file)
  }
  assert.deepEqual(lines, ['{"msg":"alone"}'])
})

test('server.logger.buffer: what is still buffered is written when the process exits without closing the server', async (t) => {
  const file = tempFile(t)
  // The child serves three requests and exits at once: no app.close(), so only the exit hook can write the lines.
  const script = `
    const { createServer } = await import(${JSON.stringify(INDEX)})
    const app = await createServer({
      server: { logger: { file: ${JSON.stringify(file)}, buffer: '64kb' } },
      logging: true,
      app: async (a) => { a.get('/ok', async () => ({ ok: true })) }
    })
    for (let i = 0; i < 3; i++) await app.inject('/ok')
    process.exit(0)
  `
  await runChild(script)
  const lines = read(file).map((l) => JSON.parse(l) as { msg: string, path?: string })
  assert.equal(lines.filter((l) => l.msg === 'request completed' && l.path === '/ok').length, 3)
})

for (const buffer of [0, 1024]) {
  test(`server.logger.buffer ${buffer}: a log file that cannot be written (a full disk) does not take the server down`, { skip: !existsSync('/dev/full') && 'no /dev/full here' }, async () => {
    // /dev/full answers every write with ENOSPC. The child serves real requests, closes and
    // exits by itself: a crash, a hang at exit (the last flush) or a 5xx fails the test.
    const script = `
      const { createServer } = await import(${JSON.stringify(INDEX)})
      const app = await createServer({
        server: { logger: { file: '/dev/full', buffer: ${buffer} } },
        logging: true,
        app: async (a) => { a.get('/ok', async () => ({ ok: true })) }
      })
      await app.listen({ host: '127.0.0.1', port: 0 })
      const statuses = []
      for (let i = 0; i < 20; i++) {
        const response = await fetch('http://127.0.0.1:' + app.server.address().port + '/ok')
        await response.text()
        statuses.push(response.status)
      }
      await app.close()
      console.log(statuses.join(','))
    `
    const { stdout, stderr } = await runChild(script)
    assert.equal(stdout.trim(), Array(20).fill(200).join(','))
    assert.deepEqual(stderr.trim().split('\n'), ['spikard: log lines cannot be written to /dev/full (ENOSPC); the server goes on, ' +
      'and the lines are tried again with the next ones (at most 16 MiB are kept)'])
  })
}

test('lines dropped while the reader lags: stderr says so once when it starts and once when it ends, with the count', async () => {
  // The child writes 1 KiB lines to stdout far faster than this process reads them (a few
  // KiB at a time, every 20 ms, until the child says it is done writing): its 16 MiB of
  // pending lines fill, and lines are dropped while some writes still go through. Then this
  // process reads at full speed, and the trouble is over once the child's pending lines are
  // written. (Slow for a fixed 2.5 s from the spawn, a child slow to start under load wrote
  // against a reader at full speed, and nothing was dropped.)
  const DEST = new URL('../src/log-destination.ts', import.meta.url).href
  const script = `
    const { logDestination } = await import(${JSON.stringify(DEST)})
    const dest = logDestination({ level: 'info', pretty: false, buffer: 0 }, '/')
    const line = JSON.stringify({ msg: 'x'.repeat(1000) }) + '\\n'
    let written = 0
    const end = Date.now() + 1500
    while (Date.now() < end) {
      for (let i = 0; i < 200; i++) { dest.write(line); written++ }
      await new Promise((resolve) => setTimeout(resolve, 1))
    }
    process.stderr.write('wrote ' + written + '\\n')
    // Everything kept is written once this process reads at full speed; the message follows a second later.
    await new Promise((resolve) => dest.flush(resolve))
    await new Promise((resolve) => setTimeout(resolve, 1500))
  `
  const child = spawn(process.execPath, ['--import', TSX, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  let lines = 0
  const count = (chunk: Buffer): void => { for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++ }
  const slowUntil = Date.now() + 60_000
  while (!stderr.includes('wrote ') && Date.now() < slowUntil && child.exitCode === null) {
    await sleep(20)
    for (let n = 0; n < 2; n++) {
      const chunk = child.stdout.read(4096) as Buffer | null
      if (chunk === null) break
      count(chunk)
    }
  }
  child.stdout.on('data', count)
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
  assert.equal(code, 0, stderr)
  const messages = stderr.trim().split('\n')
  const wrote = Number(messages.find((m) => m.startsWith('wrote '))?.slice(6))
  const said = messages.filter((m) => m.startsWith('spikard: '))
  assert.ok(lines < wrote, `some lines were dropped (${lines} of ${wrote} read)`)
  assert.equal(said.length, 2, said.slice(0, 6).join('\n'))
  assert.equal(said[0], 'spikard: log lines for stdout are being dropped: 16 MiB are waiting to be written')
  assert.equal(said[1], `spikard: log lines are written to stdout again; ${wrote - lines} were dropped`)
})

test(`a process exiting while nothing reads its stdout gives its last lines up after ${LOG_EXIT_STALL_MS} ms instead of waiting forever`, async () => {
  const DEST = new URL('../src/log-destination.ts', import.meta.url).href
  const script = `
    const { logDestination } = await import(${JSON.stringify(DEST)})
    const dest = logDestination({ level: 'info', pretty: false, buffer: 0 }, '/')
    const line = JSON.stringify({ msg: 'x'.repeat(1000) }) + '\\n'
    for (let i = 0; i < 2000; i++) dest.write(line)
    await new Promise((resolve) => setTimeout(resolve, 100))
    process.exit(0)
  `
  // stdout is a pipe this process never reads.
  const child = spawn(process.execPath, ['--import', TSX, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout.pause()
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const start = Date.now()
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  clearTimeout(timer)
  child.stdout.destroy()
  assert.equal(code, 0, stderr)
  assert.ok(Date.now() - start < 20_000, `exited after ${Date.now() - start} ms`)
  assert.match(stderr, new RegExp(`spikard: log lines for stdout were left unwritten at exit: nothing was read for ${LOG_EXIT_STALL_MS / 1000} s\\n`))
})
