/**
 * Preloaded into a bench server by `bench/profile.ts --alloc` (`node --import`): V8's
 * sampling heap profiler, driven over the IPC channel. `{ type: 'alloc-start' }` starts it,
 * counting objects that garbage collection has already freed too (what a request
 * allocates, not what it keeps); `{ type: 'alloc-stop' }` stops it and sends the profile
 * back as `{ type: 'alloc-profile', profile }`. Plain JavaScript: it loads before tsx.
 */
import { Session } from 'node:inspector'

const session = new Session()
session.connect()
const post = (method, params) => new Promise((resolve, reject) => {
  session.post(method, params, (error, result) => { if (error) reject(error); else resolve(result) })
})

process.on('message', (message) => {
  if (message?.type === 'alloc-start') {
    post('HeapProfiler.startSampling', {
      samplingInterval: Number(process.env.BENCH_ALLOC_INTERVAL ?? 64),
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true
    }).then(() => process.send({ type: 'alloc-started' }), (error) => process.send({ type: 'alloc-error', message: String(error) }))
  } else if (message?.type === 'alloc-stop') {
    post('HeapProfiler.stopSampling').then(({ profile }) => process.send({ type: 'alloc-profile', profile }), (error) => process.send({ type: 'alloc-error', message: String(error) }))
  }
})
