// What the operator page's tab modules share: the appointments the page knows
// about, the batched render every tab hooks into, the open queue that Reviews and
// Timeouts both draw from, the tab registry and the card builders.

import { AppointmentStore, apiAll, errorText, formatRange, h, statusBadge, timeNode } from '../common.js';
import { batchedRender } from '../dashboard.js';

export const $ = (id) => document.getElementById(id);
export const BUSY = new Set(['pending', 'confirmed', 'rejected', 'in_progress']);
export const store = new AppointmentStore();

// --- Rendering ------------------------------------------------------------------

const renders = [];

/** `render` runs (at most once a frame) whenever the appointments changed. */
export function onRender(render) {
  renders.push(render);
}

export const { schedule: scheduleRender, apply: applyAndRender } = batchedRender(
  store, () => renders.forEach((render) => render()));

// --- The tabs ---------------------------------------------------------------------

/** name -> tab object (see operator.js), in the order they were registered. */
export const tabs = new Map();
// The current tab, and the live connection (live.js) once it is started.
export const page = { tab: 'reviews', live: null };

/** The address of a tab, with the query parameters it keeps (filters, page). */
export function tabUrl(name) {
  const url = new URL(window.location.href);
  url.search = '';
  url.searchParams.set('tab', name);
  const tab = tabs.get(name);
  if (tab && tab.urlParams) tab.urlParams(url.searchParams);
  return url;
}

// --- The open queue: pending and rejected appointments ---------------------------

export const queue = { loaded: false, error: null };
let queueLoading = null;

/** Loads the open queue once; later changes arrive as live events. */
export function loadQueue() {
  if (!queueLoading) {
    queueLoading = (async () => {
      try {
        const { results } = await apiAll('/api/scheduling/appointments/?status=pending,rejected&page_size=200');
        for (const a of results) store.apply(a, { fromList: true });
        queue.loaded = true;
      } catch (err) {
        queue.error = err;
      }
      renders.forEach((render) => render());
    })();
  }
  return queueLoading;
}

export function queueError(container) {
  container.replaceChildren(h('p', { class: 'error', role: 'alert' }, `Could not load: ${errorText(queue.error)}`));
}

// --- Builders ---------------------------------------------------------------------

export function actionButton(label, action, onclick, cls = 'secondary', srText = '') {
  return h('button', { type: 'button', class: cls, dataset: { action }, onclick },
    label, srText ? h('span', { class: 'sr-only' }, ` ${srText}`) : null);
}

export function cardHead(a, headingId) {
  return h('header', { class: 'appt-head' },
    statusBadge(a.status),
    h('h3', { id: headingId }, a.client.name),
    h('span', { class: 'appt-id' }, `#${a.id}`));
}

export function whenNode(a) {
  return h('p', { class: 'appt-time' }, timeNode(a.starts_at, formatRange(a.starts_at, a.ends_at)));
}

/** The count in a tab's badge (`data-count="<name>"`). */
export function setCount(name, value) {
  document.querySelectorAll(`[data-count="${name}"]`).forEach((node) => {
    node.firstChild.nodeValue = String(value);
  });
}

export function telHref(phone) {
  return `tel:${phone.replace(/[^0-9+]/g, '')}`;
}

/** A tap-to-call button for a phone number. */
export function callLink(phone, name, cls = 'button secondary') {
  return h('a', { href: telHref(phone), class: cls, dataset: { action: 'call' } },
    `Call ${name}`, h('span', { class: 'sr-only' }, ` at ${phone}`));
}
