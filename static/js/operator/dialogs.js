// The dialogs several operator tabs open: assign (with the ranked list of
// available therapists), cancel (with a reason) and an appointment's details
// with its history.

import {
  CANCELLATION_LABELS, EVENT_LABELS, REASON_LABELS, api, errorText, formatRange, formatWhen, h, openDialog,
  reasonBadge, setBusy,
  statusBadge, timeNode, toast,
} from '../common.js';
import { fact } from '../dashboard.js';
import { receiptLine } from '../receipts.js';
import { mountOfferChain } from '../rules.js';
import { applyAndRender, store, telHref } from './shared.js';

export async function assignDialog(id) {
  const a = store.get(id);
  if (!a) return;
  const list = h('ul', { class: 'ranked', 'aria-busy': 'true' }, h('li', { class: 'loading' }, 'Finding available therapists…'));
  await openDialog({
    title: `Assign #${id}`,
    intro: `${a.client.name} · ${a.service.name} · ${formatRange(a.starts_at, a.ends_at)}. `
      + 'Only therapists who are free, qualified and available then are offered. The best match comes first: '
      + 'the fewest appointments that day, then the longest since their last one, so work is shared out evenly.',
    wide: true,
    content: (controls) => {
      api(`/api/scheduling/appointments/${id}/available_therapists/`).then((ranked) => {
        list.removeAttribute('aria-busy');
        if (!ranked.length) {
          list.replaceChildren(h('li', { class: 'empty' }, 'Nobody can take this appointment right now: no qualified '
            + 'therapist is active, available and free at that time. Ask a therapist to add availability, or cancel '
            + 'the booking.'));
          return;
        }
        list.replaceChildren(...ranked.map((t, i) => h('li', null,
          h('span', null, h('strong', null, t.name), i === 0 ? ' (best match)' : '',
            h('span', { class: 'sub muted small' },
              `${t.appointments_that_day} appointment${t.appointments_that_day === 1 ? '' : 's'} that day`,
              t.last_appointment_end ? ` · last one ends ${formatWhen(t.last_appointment_end)}` : '')),
          h('button', {
            type: 'button', class: i === 0 ? 'primary' : 'secondary',
            onclick: async (event) => {
              const button = event.currentTarget;
              setBusy(button, true);
              controls.showError(null);
              try {
                const updated = await api(`/api/scheduling/appointments/${id}/assign/`, {
                  method: 'POST', body: { therapist: t.id },
                });
                applyAndRender(updated);
                toast(`#${id} assigned to ${t.name}; waiting for an answer by ${formatWhen(updated.response_deadline)}.`);
                controls.close();
              } catch (err) {
                controls.showError(err);
                setBusy(button, false);
              }
            },
          }, `Assign to ${t.name}`))));
        list.querySelector('button').focus();
      }).catch((err) => {
        list.removeAttribute('aria-busy');
        list.replaceChildren(h('li', { class: 'error', role: 'alert' }, errorText(err)));
      });
      return list;
    },
  });
}

export async function cancelDialog(id) {
  const a = store.get(id);
  if (!a) return;
  await openDialog({
    title: `Cancel #${id}?`,
    intro: `${a.client.name} · ${a.service.name} · ${formatRange(a.starts_at, a.ends_at)}`
      + (a.therapist ? `. ${a.therapist.name} will be told.` : '.'),
    fields: [{ name: 'reason', label: 'Reason for cancelling', required: true, multiline: true, maxLength: 500 }],
    confirmLabel: 'Cancel appointment',
    confirmClass: 'danger',
    cancelLabel: 'Keep it',
    onConfirm: async ({ reason }) => {
      const updated = await api(`/api/scheduling/appointments/${id}/cancel/`, { method: 'POST', body: { reason } });
      applyAndRender(updated);
      toast(`#${id} cancelled.`);
    },
  });
}

function historyItem(e) {
  const extra = [];
  if (e.data && e.data.reason) {
    const code = e.data.reason_code ? ` (${REASON_LABELS[e.data.reason_code] || e.data.reason_code})` : '';
    extra.push(`Reason: ${e.data.reason}${code}`);
  }
  if (e.data && e.data.note) extra.push(`Note: ${e.data.note}`);
  if (e.data && e.data.response_deadline) extra.push(`Answer due ${formatWhen(e.data.response_deadline)}`);
  if (e.data && e.data.therapist_disabled) extra.push('Therapist disabled');
  return h('li', null,
    h('strong', null, EVENT_LABELS[e.kind] || e.kind),
    ' · ', timeNode(e.created_at),
    ` · ${e.actor ? `by ${e.actor}` : 'by the system'}`,
    e.from_status && e.from_status !== e.to_status
      ? h('span', { class: 'muted small' }, ` (${e.from_status.replace('_', ' ')} → ${e.to_status.replace('_', ' ')})`) : null,
    extra.length ? h('span', { class: 'sub muted small' }, extra.join(' · ')) : null);
}

export async function detailsDialog(id) {
  const body = h('div', { 'aria-busy': 'true' }, h('p', { class: 'loading' }, 'Loading…'));
  openDialog({
    title: `Appointment #${id}`,
    wide: true,
    content: body,
  });
  // Run again by rules.js on each live change of this appointment.
  const fill = (a) => {
    applyAndRender(a);
    const r = a.latest_rejection;
    body.removeAttribute('aria-busy');
    body.replaceChildren(
      h('p', null, statusBadge(a.status), ' ', h('strong', null, formatRange(a.starts_at, a.ends_at))),
      h('dl', { class: 'facts' },
        fact('Client', a.client.name, a.client.phone ? [' · ', h('a', { href: telHref(a.client.phone) }, a.client.phone)] : null),
        fact('Service', `${a.service.name} (${a.service.duration_minutes} min)`),
        fact('Therapist', a.therapist ? a.therapist.name : 'Unassigned',
          a.therapist && a.therapist.phone
            ? [' · ', h('a', { href: telHref(a.therapist.phone) }, a.therapist.phone)] : null),
        fact('Location', a.location),
        a.notes ? fact('Notes', a.notes) : null,
        a.response_deadline && a.status === 'pending' ? fact('Answer by', formatWhen(a.response_deadline)) : null,
        a.offer ? fact(`Offer ${a.offer.number}`, receiptLine(a)) : null, // sent · delivered · seen
        a.cancellation_reason ? fact('Cancelled', CANCELLATION_LABELS[a.cancellation_reason] || a.cancellation_reason,
          a.cancellation_note ? `: ${a.cancellation_note}` : '') : null,
        r ? fact('Last rejection', reasonBadge(r.reason_code), ' ', r.reason,
          r.review_decision ? ` (${r.review_decision === 'deny' ? 'denied' : 'accepted'}`
          + `${r.review_note ? `: ${r.review_note}` : ''})` : ' (waiting for review)') : null),
      h('h3', null, 'History'),
      h('ol', { class: 'history' }, a.history.map(historyItem)));
  };
  try {
    const a = await api(`/api/scheduling/appointments/${id}/`);
    fill(a);
    mountOfferChain(body, a, fill); // the offer chain, "Assign by hand", live details
  } catch (err) {
    body.removeAttribute('aria-busy');
    body.replaceChildren(h('p', { class: 'error', role: 'alert' }, errorText(err)));
  }
}
