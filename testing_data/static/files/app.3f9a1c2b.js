// Loaded by index.html from the same mount (a content-hashed name: served immutable when
// the mount sets immutable, and from its .br/.gz sibling when the browser accepts one).
document.getElementById('status').textContent = 'script ran from the mount'
