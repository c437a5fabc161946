// The one function spikard uses from on-exit-leak-free (the package ships no types).
declare module 'on-exit-leak-free' {
  /** Calls `fn(obj)` when the process exits, unless `obj` was garbage-collected first (it is held weakly). */
  export function register<T extends object> (obj: T, fn: (obj: T, event: 'exit') => void): void
}
