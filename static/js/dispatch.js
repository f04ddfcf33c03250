// Moving work instead of cancelling clients: the dialogs (and one-click forms)
// for reassign, reschedule, edit, assign and cancel, shared by the day board and
// the disabled therapists' jobs. Each resolves with the updated appointment, or
// null when the operator backed out; the server's refusal stays in the dialog.

import { api, errorText, formatRange, formatTime, formatWhen, h, inputValue, openDialog, setBusy, toast, zonedIso } from './common.js';

const APPTS = '/api/scheduling/appointments/';

export function summary(a) {
  return `${a.client.name} · ${a.service.name} · ${formatRange(a.starts_at, a.ends_at)}`;
}

export function canReassign(a) {
  return !!a.therapist && (a.status === 'pending' || a.status === 'confirmed') && Date.parse(a.starts_at) > Date.now();
}

export function canReschedule(a) {
  return a.status === 'pending' || a.status === 'confirmed';
}

export function canCancel(a) {
  return ['pending', 'confirmed', 'rejected', 'in_progress'].includes(a.status);
}

function post(id, action, body) {
  return api(`${APPTS}${id}/${action}/`, { method: 'POST', body });
}

function offered(a, updated) {
  return updated.therapist
    ? `#${a.id} offered to ${updated.therapist.name}; answer due by ${formatTime(updated.response_deadline)}.`
    : `#${a.id} is back in the queue.`;
}

function rankedList(a, { label, onPick, extra }) {
  const list = h('ul', { class: 'ranked', 'aria-busy': 'true' }, h('li', { class: 'loading' }, 'Finding available therapists…'));
  api(`${APPTS}${a.id}/available_therapists/`).then((ranked) => {
    list.removeAttribute('aria-busy');
    const items = ranked.map((t, i) => h('li', null,
      h('span', null, h('strong', null, t.name), i === 0 ? ' (best match)' : '',
        h('span', { class: 'sub muted small' },
          `${t.appointments_that_day} appointment${t.appointments_that_day === 1 ? '' : 's'} that day`,
          t.last_appointment_end ? ` · last one ends ${formatWhen(t.last_appointment_end)}` : '')),
      h('button', { type: 'button', class: i === 0 ? 'primary' : 'secondary', onclick: (e) => onPick(t, e.currentTarget) },
        `${label} ${t.name}`)));
    if (!items.length) {
      items.push(h('li', { class: 'empty' }, 'Nobody else can take it right now: no other qualified therapist is '
        + 'active, available and free then.'));
    }
    list.replaceChildren(...items, ...(extra ? [extra] : []));
  }).catch((err) => {
    list.removeAttribute('aria-busy');
    list.replaceChildren(h('li', { class: 'error', role: 'alert' }, errorText(err)));
  });
  return list;
}

/** Reassign: a required reason, then a therapist from the ranked list or the queue. */
export async function reassignDialog(a) {
  let updated = null;
  const reasonId = `reassign-reason-${a.id}`;
  const reason = h('textarea', { id: reasonId, maxlength: 500, required: true });
  await openDialog({
    title: `Reassign #${a.id}`,
    intro: `${summary(a)}. Now with ${a.therapist.name} (${a.status}); they will be told. The new therapist gets a `
      + 'fresh offer to accept.',
    wide: true,
    content: (controls) => {
      async function go(therapistId, button) {
        if (!reason.value.trim()) {
          controls.showError(new Error('Give a reason: the therapist who loses the job is told.'));
          reason.focus();
          return;
        }
        setBusy(button, true);
        controls.showError(null);
        try {
          updated = await post(a.id, 'reassign', { therapist: therapistId, reason: reason.value.trim() });
          toast(offered(a, updated));
          controls.close();
        } catch (err) {
          controls.showError(err);
          setBusy(button, false);
        }
      }
      const queue = h('li', null, h('span', null, h('strong', null, 'Nobody yet'),
        h('span', { class: 'sub muted small' }, 'Back to the operators’ queue, unassigned.')),
      h('button', { type: 'button', class: 'secondary', onclick: (e) => go(null, e.currentTarget) }, 'To the queue'));
      return h('div', { class: 'stack' },
        h('div', { class: 'field' }, h('label', { for: reasonId }, 'Reason for reassigning'), reason,
          h('p', { class: 'hint' }, 'Required. The therapist who loses the job sees it.')),
        h('h3', null, 'Offer it to'),
        rankedList(a, { label: 'Reassign to', onPick: (t, button) => go(t.id, button), extra: queue }));
    },
  });
  return updated;
}

/** One click from the disabled therapists' list: the best candidate, or the queue. */
export async function reassignToBest(a, reason) {
  const ranked = await api(`${APPTS}${a.id}/available_therapists/`);
  if (!ranked.length) {
    throw new Error(`Nobody else can take #${a.id} right now; put it back in the queue or cancel it.`);
  }
  const updated = await post(a.id, 'reassign', { therapist: ranked[0].id, reason });
  toast(offered(a, updated));
  return updated;
}

export async function toQueue(a, reason) {
  const updated = await post(a.id, 'reassign', { therapist: null, reason });
  toast(offered(a, updated));
  return updated;
}

export async function rescheduleDialog(a) {
  let updated = null;
  const id = `reschedule-start-${a.id}`;
  const start = h('input', { id, type: 'datetime-local', required: true, min: inputValue(Date.now()), step: 300 });
  start.value = inputValue(a.starts_at);
  await openDialog({
    title: `Reschedule #${a.id}`,
    intro: `${summary(a)}.` + (a.therapist ? ` If ${a.therapist.name} can take the new time they get it back to `
      + 'accept again; if not, it goes back to the queue and they are told.' : ''),
    content: h('div', { class: 'field' }, h('label', { for: id }, 'New start'), start,
      h('p', { class: 'hint' }, 'The end follows from the service’s length.')),
    fields: [{ name: 'reason', label: 'Reason (optional)', multiline: true, maxLength: 500 }],
    confirmLabel: 'Reschedule',
    isValid: () => !!start.value && zonedIso(start.value) !== null,
    onConfirm: async ({ reason }) => {
      updated = await post(a.id, 'reschedule', { starts_at: zonedIso(start.value), reason });
      const kept = updated.therapist ? ` ${updated.therapist.name} must accept the new time.`
        : (a.therapist ? ` ${a.therapist.name} cannot take it then: it is back in the queue.` : '');
      toast(`#${a.id} moved to ${formatWhen(updated.starts_at)}.${kept}`);
    },
  });
  return updated;
}

export async function editDialog(a) {
  let updated = null;
  await openDialog({
    title: `Change place or notes of #${a.id}`,
    intro: summary(a) + (a.therapist ? `. ${a.therapist.name} is told.` : '.'),
    fields: [
      { name: 'location', label: 'Location', required: true, maxLength: 500, value: a.location },
      { name: 'notes', label: 'Notes', multiline: true, maxLength: 2000, value: a.notes },
    ],
    confirmLabel: 'Save changes',
    onConfirm: async ({ location, notes }) => {
      updated = await api(`${APPTS}${a.id}/`, { method: 'PATCH', body: { location, notes } });
      toast(`#${a.id} updated.`);
    },
  });
  return updated;
}

export async function assignDialog(a) {
  let updated = null;
  await openDialog({
    title: `Assign #${a.id}`,
    intro: `${summary(a)}. Only therapists who are free, qualified and available then are offered, best first.`,
    wide: true,
    content: (controls) => rankedList(a, {
      label: 'Assign to',
      onPick: async (t, button) => {
        setBusy(button, true);
        controls.showError(null);
        try {
          updated = await post(a.id, 'assign', { therapist: t.id });
          toast(offered(a, updated));
          controls.close();
        } catch (err) {
          controls.showError(err);
          setBusy(button, false);
        }
      },
    }),
  });
  return updated;
}

export async function cancelDialog(a) {
  let updated = null;
  await openDialog({
    title: `Cancel #${a.id}?`,
    intro: summary(a) + (a.therapist ? `. ${a.therapist.name} will be told.` : '.'),
    fields: [{ name: 'reason', label: 'Reason for cancelling', required: true, multiline: true, maxLength: 500 }],
    confirmLabel: 'Cancel appointment',
    confirmClass: 'danger',
    cancelLabel: 'Keep it',
    onConfirm: async ({ reason }) => {
      updated = await post(a.id, 'cancel', { reason });
      toast(`#${a.id} cancelled.`);
    },
  });
  return updated;
}
