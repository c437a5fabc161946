import type { Model } from './model.js'
export function clientFile (model: Model): string { return String(model.title) }
