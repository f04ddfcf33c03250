// The service worker of the installable therapist app, served at /sw.js (scope /).
// It shows the Web Push message of an offer (also with the page closed), tells
// the server the offer reached this device ("delivered"), and opens the
// appointment when the notification is tapped.
//
// The receipt is an ordinary session request, so Django's CSRF check applies to
// it like to any page's POST: the session cookie goes with it (credentials
// 'same-origin'), it comes from this origin (Django checks the Origin header),
// and it carries the CSRF token in X-CSRFToken. A worker cannot read
// document.cookie, so every therapist page hands the worker its token
// (postMessage, see push.js) and the worker keeps it in Cache Storage: a worker
// is stopped and started at will and its variables do not last. The token stays
// valid as long as the CSRF cookie, which changes at sign-in, after which the
// therapist page hands over the new one. Without a valid session or token the
// receipt is refused, and the notification shows all the same.

const STORE = 'royal-care-sw';
const TOKEN_KEY = '/sw/csrf-token';
const ICON = '/static/icons/icon-192.png';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

async function saveToken(token) {
  const cache = await caches.open(STORE);
  await cache.put(TOKEN_KEY, new Response(token));
}

async function readToken() {
  const cache = await caches.open(STORE);
  const stored = await cache.match(TOKEN_KEY);
  return stored ? stored.text() : '';
}

self.addEventListener('message', (event) => {
  const data = event.data || {};
  if (data.type === 'csrf' && typeof data.token === 'string') {
    const reply = event.ports && event.ports[0];
    event.waitUntil(saveToken(data.token).then(() => reply && reply.postMessage({ ok: true })));
  }
});

async function postDelivered(message) {
  if (!message.appointment) return;
  try {
    await fetch(`/api/scheduling/appointments/${Number(message.appointment)}/receipt/`, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { Accept: 'application/json', 'Content-Type': 'application/json', 'X-CSRFToken': await readToken() },
      body: JSON.stringify({ kind: 'delivered', offer: message.offer || undefined }),
    });
  } catch {
    // Offline or refused: the notification still shows; the page reports "seen" when opened.
  }
}

self.addEventListener('push', (event) => {
  let message = {};
  try {
    message = event.data ? event.data.json() : {};
  } catch {
    message = { body: event.data ? event.data.text() : '' };
  }
  event.waitUntil(Promise.all([
    self.registration.showNotification(message.title || 'Royal Care', {
      body: message.body || '',
      tag: message.tag || 'royal-care',
      renotify: true,
      requireInteraction: true,
      icon: ICON,
      badge: ICON,
      data: { url: message.url || '/therapist/', appointment: message.appointment || null },
    }),
    postDelivered(message),
  ]));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const data = event.notification.data || {};
  const url = new URL(data.url || '/therapist/', self.location.origin);
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    const open = windows.find((client) => new URL(client.url).pathname === url.pathname);
    if (open) {
      // An open therapist page scrolls to the appointment itself (push.js).
      open.postMessage({ type: 'open-appointment', appointment: data.appointment });
      await open.focus();
      return;
    }
    await self.clients.openWindow(url.href);
  })());
});
