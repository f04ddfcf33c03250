// Reviews: rejections waiting for an operator, accept (back to the queue) or
// deny (back to the same therapist with a fresh deadline and a note).

import { api, formatWhen, h, openDialog, reasonBadge, renderKeyed, show, startsInNode, toast } from '../common.js';
import { fact } from '../dashboard.js';
import { assignDialog, detailsDialog } from './dialogs.js';
import {
  $, actionButton, applyAndRender, cardHead, loadQueue, queue, queueError, setCount, store, whenNode,
} from './shared.js';

// The soonest start first: that is the one to settle before the therapist sets off.
function byStart(a, b) {
  return Date.parse(a.starts_at) - Date.parse(b.starts_at) || a.id - b.id;
}

function render() {
  if (queue.error) {
    queueError($('reviews-list'));
    return;
  }
  if (!queue.loaded) return;
  const reviews = store.values().filter((a) => a.status === 'rejected').sort(byStart);
  renderKeyed($('reviews-list'), reviews, (a) => a.id, (a) => a._version, reviewCard);
  show($('reviews-empty'), reviews.length === 0);
  setCount('reviews', reviews.length);
}

function reviewCard(a) {
  const r = a.latest_rejection || {};
  const headingId = `review-${a.id}`;
  return h('article', { class: 'appt-card', 'aria-labelledby': headingId, dataset: { appointmentId: a.id } },
    cardHead(a, headingId),
    whenNode(a),
    h('p', null, startsInNode(a.starts_at)),
    h('dl', { class: 'facts' },
      fact('Therapist', a.therapist ? a.therapist.name : '—'),
      fact('Service', a.service.name),
      fact('Location', a.location),
      fact('Rejected', r.created_at ? formatWhen(r.created_at) : '—')),
    h('p', { class: 'quote' }, h('strong', null, 'Reason: '), reasonBadge(r.reason_code), ' ',
      r.reason || 'No reason recorded.'),
    h('div', { class: 'actions' },
      actionButton('Accept rejection', 'accept-rejection', () => reviewDialog(a.id, 'accept'), 'primary'),
      actionButton('Deny rejection', 'deny-rejection', () => reviewDialog(a.id, 'deny'), 'danger'),
      actionButton('Details', 'details', () => detailsDialog(a.id), 'ghost')));
}

async function reviewDialog(id, decision) {
  const a = store.get(id);
  if (!a) return;
  const therapist = a.therapist ? a.therapist.name : 'the therapist';
  const accept = decision === 'accept';
  let updated = null;
  const confirmed = await openDialog({
    title: accept ? `Accept the rejection of #${id}?` : `Deny the rejection of #${id}?`,
    intro: accept
      ? `The appointment goes back to the queue without a therapist. ${therapist} will not be offered it again. `
        + 'If nobody else can take it, it is cancelled at once.'
      : `${therapist} gets the appointment back with a fresh deadline and your note.`,
    fields: [{
      name: 'note', label: accept ? 'Note (optional)' : `Note to ${therapist}`, multiline: true, maxLength: 500,
      hint: accept ? 'Kept with the review.' : 'Shown to the therapist with the appointment.',
    }],
    confirmLabel: accept ? 'Accept rejection' : 'Deny rejection',
    confirmClass: accept ? 'primary' : 'danger',
    onConfirm: async ({ note }) => {
      updated = await api(`/api/scheduling/appointments/${id}/review_rejection/`, {
        method: 'POST', body: { review_decision: decision, review_note: note },
      });
      applyAndRender(updated);
      if (updated.status === 'cancelled') toast(`#${id} was cancelled: no other therapist is available.`);
      else toast(accept ? `#${id} is back in the queue.` : `#${id} went back to ${therapist}.`);
    },
  });
  // Back in the queue: the next step is finding someone else, so offer it at once.
  if (confirmed && updated && updated.status === 'pending' && !updated.therapist) assignDialog(id);
}

export default {
  name: 'reviews',
  title: 'Reviews',
  init: loadQueue,
  render,
};
