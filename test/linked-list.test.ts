/** The intrusive list behind the timeout's deadlines and the open streams. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { LinkedList, type ListNode } from '../src/linked-list.js'

interface Node extends ListNode<Node> { id: number }
const node = (id: number): Node => ({ id, prev: undefined, next: undefined, linked: false })

test('push keeps the order; remove unlinks from the head, the middle and the tail, once', () => {
  const list = new LinkedList<Node>()
  const [a, b, c, d] = [1, 2, 3, 4].map(node)
  for (const n of [a, b, c, d]) list.push(n)
  assert.deepEqual(list.toArray().map((n) => n.id), [1, 2, 3, 4])
  assert.equal(list.remove(b), true)
  assert.equal(list.remove(b), false)
  assert.equal(list.remove(a), true)
  assert.equal(list.remove(d), true)
  assert.deepEqual([list.size, list.head?.id, list.tail?.id], [1, 3, 3])
  assert.deepEqual([b.prev, b.next, b.linked], [undefined, undefined, false])
  assert.equal(list.remove(c), true)
  assert.deepEqual([list.size, list.head, list.tail], [0, undefined, undefined])
  // A removed node can be added again.
  list.push(b)
  assert.deepEqual(list.toArray().map((n) => n.id), [2])
})

test('toArray is a copy: removing each node while going through it reaches them all', () => {
  const list = new LinkedList<Node>()
  for (const n of [1, 2, 3].map(node)) list.push(n)
  const seen: number[] = []
  for (const n of list.toArray()) { seen.push(n.id); list.remove(n) }
  assert.deepEqual([seen, list.size], [[1, 2, 3], 0])
})
