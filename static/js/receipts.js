// Receipts of offers.
// On the therapist page: "delivered" when an offer reaches the page (a socket
// message or the catch-up feed), "seen" while its card is on screen in a visible
// tab (Page Visibility + IntersectionObserver). Each is posted once per offer; the
// server keeps the first and answers a repeat without a change.
// For the operators: the line "sent 2:02 PM · delivered 2:02 PM · seen 2:03 PM",
// or "… · not seen yet" in amber while the offer waits unseen.

import { api, dayKey, formatTime, formatWhen, h, todayKey } from './common.js';

const posted = new Set();
let onUpdate = () => {};
// One receipt at a time, in the order they happened: "delivered" is stored before
// "seen" when both come at once (an offer arriving in a tab someone is looking at).
let queue = Promise.resolve();

/** Still waiting for an answer? Past its deadline an offer gets no receipts: a
 * write on it would time it out (the sweep does that within the minute anyway). */
function open(appointment) {
  if (appointment.status !== 'pending') return false;
  if (appointment._deadlineAt) return appointment._deadlineAt > Date.now();
  return (appointment.seconds_to_deadline ?? 0) > 0;
}

function post(appointment, kind) {
  const offer = appointment && appointment.offer;
  if (!offer || !open(appointment)) return;
  if (offer.seen_at || (kind === 'delivered' && offer.delivered_at)) return;
  const key = `${appointment.id}:${offer.number}:${kind}`;
  if (posted.has(key)) return;
  posted.add(key);
  queue = queue.then(() => api(`/api/scheduling/appointments/${appointment.id}/receipt/`, {
    method: 'POST', body: { kind, offer: offer.number },
  })).then(onUpdate).catch((err) => {
    // Try again later only when the server was not reached; a refusal is final
    // (the offer is over, answered or timed out).
    if (err.code === 'network') posted.delete(key);
  });
}

/** The therapist page got this offer (socket or feed): it reached the device. */
export function delivered(appointment) {
  post(appointment, 'delivered');
}

/**
 * Posts "seen" for the offers whose card in `container` is on screen while the tab
 * is visible. `lookup(id)` gives the appointment a card shows; `update(snapshot)`
 * receives the server's answer.
 */
export function watchSeen(container, lookup, update = () => {}) {
  onUpdate = update;
  const onScreen = new Set();
  const check = () => {
    if (document.visibilityState !== 'visible') return;
    for (const card of onScreen) {
      if (card.isConnected) post(lookup(Number(card.dataset.appointmentId)), 'seen');
      else onScreen.delete(card);
    }
  };
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      // Half the card, or most of the screen when the card is taller than that.
      const shown = entry.isIntersecting && (entry.intersectionRatio >= 0.5
        || entry.intersectionRect.height >= 0.5 * (entry.rootBounds ? entry.rootBounds.height : 0));
      if (shown) onScreen.add(entry.target);
      else onScreen.delete(entry.target);
    }
    check();
  }, { threshold: [0, 0.25, 0.5, 0.75, 1] });
  const observeCards = () => container.querySelectorAll('[data-appointment-id]').forEach((card) => observer.observe(card));
  // Cards are replaced when they change: watch the new ones too.
  new MutationObserver(observeCards).observe(container, { childList: true });
  document.addEventListener('visibilitychange', check);
  observeCards();
  return { check };
}

function clock(iso) {
  return dayKey(iso) === todayKey() ? formatTime(iso) : formatWhen(iso);
}

/** The operators' line for an appointment's current offer, or null without one. */
export function receiptLine(appointment) {
  const offer = appointment.offer;
  if (!offer || !offer.sent_at) return null;
  const parts = [`sent ${clock(offer.sent_at)}`];
  if (offer.delivered_at) parts.push(`delivered ${clock(offer.delivered_at)}`);
  if (offer.seen_at) parts.push(`seen ${clock(offer.seen_at)}`);
  const unseen = !offer.seen_at && appointment.status === 'pending';
  const after = [];
  if (offer.reminded_at) after.push(`reminded by email ${clock(offer.reminded_at)}`);
  if (offer.escalated_at) after.push(`operators alerted ${clock(offer.escalated_at)}`);
  return h('p', { class: `receipts${unseen ? ' receipts-unseen' : ''}`, dataset: { receipts: offer.number } },
    parts.join(' · '),
    unseen ? [' · ', h('strong', null, 'not seen yet')] : null,
    after.length ? h('span', { class: 'sub small' }, after.join(' · ')) : null);
}
