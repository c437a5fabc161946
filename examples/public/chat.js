/* global WebSocket, document, location */
// The demo chat's page: joins a room of /chat/<room> under a name, sends what is typed and
// lists what the room says. No library, and nothing inline (a strict Content-Security-Policy
// can allow 'self' only). Text goes into the page as text, never as HTML.
const $ = (id) => document.getElementById(id)
const status = $('status')
const joinForm = $('join')
const sayForm = $('say')
const list = $('messages')
let socket

// ?room=<name> picks the room; the default is the lobby.
const wanted = new URLSearchParams(location.search).get('room')
if (wanted) $('room').value = wanted

function show (text, className) {
  const item = document.createElement('li')
  item.textContent = text
  item.className = className
  list.append(item)
  while (list.children.length > 100) list.firstElementChild.remove()
}

function joined (yes) {
  joinForm.hidden = yes
  sayForm.hidden = !yes
  if (yes) $('text').focus()
}

joinForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const room = $('room').value
  const name = $('name').value
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ type: 'join', name }))
    return
  }
  status.textContent = 'connecting'
  socket = new WebSocket(`${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/chat/${encodeURIComponent(room)}`)
  socket.addEventListener('open', () => {
    status.textContent = `connected to ${room}`
    socket.send(JSON.stringify({ type: 'join', name }))
  })
  socket.addEventListener('close', (event) => {
    status.textContent = `disconnected (${event.code}${event.reason ? ` ${event.reason}` : ''})`
    joined(false)
    socket = undefined
  })
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(event.data)
    switch (message.type) {
      case 'welcome':
        joined(true)
        show(`You joined ${message.room} as ${message.name}. Here: ${message.members.join(', ')}`, 'notice')
        break
      case 'joined':
        show(`${message.name} joined`, 'notice')
        break
      case 'said':
        show(`${message.name}: ${message.text}`, 'said')
        break
      case 'left':
        show(`${message.name} left`, 'notice')
        if (message.name === name) joined(false)
        break
      case 'refused':
        show(message.detail, 'problem')
        break
      default:
        // An error frame: a problem object (type, title, status, detail) for an invalid message.
        show(`${message.title}: ${message.detail}`, 'problem')
    }
  })
})

sayForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const text = $('text').value
  if (!socket || text.trim() === '') return
  socket.send(JSON.stringify({ type: 'say', text }))
  $('text').value = ''
})

$('leave').addEventListener('click', () => {
  if (socket) socket.send(JSON.stringify({ type: 'leave' }))
})
