// Web Push on the therapist page. Registers the service worker (/sw.js) and hands
// it this page's CSRF token for its receipts (see sw.js); offers "Turn on
// notifications", a button and never a prompt on load, which asks the browser for
// permission and subscribes this device with the server's VAPID key; and opens the
// appointment a notification was tapped for (?appointment=N in the address, or a
// message from the worker when this page is already open).

import { PAGE, api, errorText, setBusy, show, toast } from './common.js';

const $ = (id) => document.getElementById(id);
const SUBSCRIPTIONS = '/api/notifications/push/subscriptions/';
const state = { key: null, registration: null };

/** Whether this browser shows notifications through a service worker (then the
 * "Turn on notifications" button here replaces the page's older alerts button). */
export function pushSupported() {
  return 'serviceWorker' in navigator && 'Notification' in window;
}

function keyBytes(base64url) {
  const base64 = base64url.replace(/-/g, '+').replace(/_/g, '/');
  return Uint8Array.from(atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, '=')), (c) => c.charCodeAt(0));
}

function say(text, { error = false } = {}) {
  const node = $('push-status');
  if (!node) return;
  node.textContent = text || '';
  node.classList.toggle('error', error);
  node.hidden = !text;
}

/** The worker keeps the token for its receipts; resolves once it has stored it. */
function handOverToken(registration) {
  const worker = registration.active;
  if (!worker) return Promise.resolve();
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    const timer = setTimeout(resolve, 3000);
    channel.port1.onmessage = () => { clearTimeout(timer); resolve(); };
    worker.postMessage({ type: 'csrf', token: PAGE.csrf_token || '' }, [channel.port2]);
  });
}

async function currentSubscription() {
  const manager = state.registration && state.registration.pushManager;
  return manager ? manager.getSubscription() : null;
}

async function refresh() {
  const button = $('enable-push');
  if (Notification.permission === 'denied') {
    show(button, false);
    say('Notifications are blocked for this site. Allow them in the browser’s site settings to be alerted '
      + 'with the page closed.');
    return;
  }
  const subscription = state.key ? await currentSubscription() : null;
  if (Notification.permission === 'granted' && (subscription || !state.key)) {
    show(button, false);
    say(subscription ? 'Notifications are on for this device.' : '');
    // Keeps the server's copy current, and the device bound to whoever is signed in now.
    if (subscription) api(SUBSCRIPTIONS, { method: 'POST', body: subscription.toJSON() }).catch(() => {});
    return;
  }
  show(button, true);
}

async function turnOn(event) {
  const button = event.currentTarget;
  setBusy(button, true);
  say('');
  try {
    if (await Notification.requestPermission() !== 'granted') {
      say('Notifications were not allowed, so new appointments only show while this page is open.', { error: true });
      return;
    }
    if (state.key && state.registration.pushManager) {
      const subscription = await state.registration.pushManager.subscribe({
        userVisibleOnly: true, applicationServerKey: keyBytes(state.key),
      });
      await api(SUBSCRIPTIONS, { method: 'POST', body: subscription.toJSON() });
      toast('Notifications are on: new appointments reach this device even with the page closed.');
    }
    await refresh();
  } catch (err) {
    say(`Could not turn on notifications: ${errorText(err)}`, { error: true });
  } finally {
    setBusy(button, false);
  }
}

// --- Opening the appointment a notification was tapped for ---------------------------
// The card is scrolled to and its heading focused; while it is redrawn by the live
// updates that follow (its own "seen" receipt, say), the focus follows it.

const opening = { id: null, until: 0, scrolled: false };

function focusOpened() {
  if (!opening.id || Date.now() > opening.until) return;
  const card = document.querySelector(`#main [data-appointment-id="${opening.id}"]`);
  const heading = card && card.querySelector('h3');
  if (!heading) return;
  const active = document.activeElement;
  if (opening.scrolled && active && active !== document.body && active !== heading) return; // moved on
  if (!opening.scrolled) {
    card.scrollIntoView({ block: 'center' });
    opening.scrolled = true;
  }
  heading.setAttribute('tabindex', '-1');
  if (active !== heading) heading.focus({ preventScroll: true });
}

export function openAppointment(id) {
  if (!Number(id)) return;
  Object.assign(opening, { id: Number(id), until: Date.now() + 15000, scrolled: false });
  focusOpened();
}

new MutationObserver(focusOpened).observe(document.getElementById('main'), { childList: true, subtree: true });

async function start() {
  openAppointment(new URLSearchParams(window.location.search).get('appointment'));
  if (!pushSupported()) return;
  navigator.serviceWorker.addEventListener('message', (event) => {
    if (event.data && event.data.type === 'open-appointment') openAppointment(event.data.appointment);
  });
  try {
    await navigator.serviceWorker.register('/sw.js', { scope: '/' });
    state.registration = await navigator.serviceWorker.ready;
  } catch (err) {
    say(`This browser could not set up notifications: ${errorText(err)}`, { error: true });
    return;
  }
  await handOverToken(state.registration);
  try {
    state.key = (await api('/api/notifications/push/key/')).public_key;
  } catch {
    state.key = null; // push off or unreachable: the button still turns on alerts for the open page
  }
  $('enable-push').addEventListener('click', turnOn);
  await refresh();
}

start();
