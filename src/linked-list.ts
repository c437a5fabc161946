/**
 * A doubly linked list of nodes that carry their own links: adding and removing are O(1)
 * and allocate nothing. Used for what is in flight per request (the timeout's deadlines,
 * the open streams) instead of a Set: with the open streams in a Set, an entry added and
 * deleted per request, serving a small static file spent four to six times as long in
 * garbage collection (bench/RESULTS.md, eleventh session).
 */
export interface ListNode<T> {
  prev: T | undefined
  next: T | undefined
  /** In a list now. */
  linked: boolean
}

export class LinkedList<T extends ListNode<T>> {
  head: T | undefined
  tail: T | undefined
  size = 0

  /** Adds `node` at the end. */
  push (node: T): void {
    node.prev = this.tail
    node.next = undefined
    node.linked = true
    if (this.tail === undefined) this.head = node
    else this.tail.next = node
    this.tail = node
    this.size++
  }

  /** Unlinks `node`; false when it was not in the list. */
  remove (node: T): boolean {
    if (!node.linked) return false
    node.linked = false
    if (node.prev === undefined) this.head = node.next
    else node.prev.next = node.next
    if (node.next === undefined) this.tail = node.prev
    else node.next.prev = node.prev
    node.prev = node.next = undefined
    this.size--
    return true
  }

  /** The nodes, oldest first, copied: removing while going through them is safe. */
  toArray (): T[] {
    const nodes: T[] = []
    for (let node = this.head; node !== undefined; node = node.next) nodes.push(node)
    return nodes
  }
}
