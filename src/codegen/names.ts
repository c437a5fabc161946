/** Names in the generated TypeScript: identifiers from ids the document allows (`/ticker/{symbol}`, `order.created`). */

const RESERVED = new Set(['break', 'case', 'catch', 'class', 'const', 'continue', 'debugger', 'default', 'delete', 'do', 'else', 'enum', 'export', 'extends', 'false', 'finally', 'for', 'function', 'if', 'import', 'in', 'instanceof', 'new', 'null', 'return', 'super', 'switch', 'this', 'throw', 'true', 'try', 'typeof', 'var', 'void', 'while', 'with', 'yield', 'let', 'static', 'implements', 'interface', 'package', 'private', 'protected', 'public', 'await', 'arguments', 'eval'])

function words (id: string): string[] {
  return id.split(/[^A-Za-z0-9]+/).filter((w) => w !== '')
}

/** `send-message` is `sendMessage`, `/ticker/{symbol}` `tickerSymbol`; `_` + it when it would start with a digit or is reserved. */
export function identifier (id: string): string {
  const parts = words(id)
  const name = parts.map((w, i) => i === 0 ? w[0].toLowerCase() + w.slice(1) : w[0].toUpperCase() + w.slice(1)).join('') || 'unnamed'
  return /^[0-9]/.test(name) || RESERVED.has(name) ? `_${name}` : name
}

/** `chat.say` is `ChatSay`. */
export function typeName (id: string): string {
  const name = words(id).map((w) => w[0].toUpperCase() + w.slice(1)).join('') || 'Unnamed'
  return /^[0-9]/.test(name) ? `T${name}` : name
}

/** A doc comment in generated code (the end-of-comment sequence escaped, on one line), or nothing for an empty text. */
export function comment (text: string | undefined, indent = ''): string {
  return text === undefined || text.trim() === '' ? '' : `${indent}/** ${text.trim().replace(/\*\//g, '*\\/').replace(/\s*\n\s*/g, ' ')} */\n`
}

/** A property key in generated code: as it is when it is an identifier, quoted otherwise. */
export function key (name: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? name : JSON.stringify(name)
}
