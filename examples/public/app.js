/* global EventSource, document */
// Subscribes to the demo's event stream and lists the last ten ticks.
const list = document.getElementById('ticks')
const status = document.getElementById('status')
const events = new EventSource('/ticks')
events.onopen = () => { status.textContent = 'connected' }
events.onerror = () => { status.textContent = 'reconnecting' }
events.addEventListener('tick', (event) => {
  const { n, at } = JSON.parse(event.data)
  const item = document.createElement('li')
  item.textContent = `tick ${n} at ${at}`
  item.className = 'tick'
  list.prepend(item)
  while (list.children.length > 10) list.lastElementChild.remove()
})
