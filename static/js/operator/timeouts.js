// Timeouts: assignments waiting for a therapist's answer, with live countdowns;
// "Run sweep now"; the disabled therapists, with Enable.

import {
  api, apiAll, countdown, countdownTone, errorText, formatTime, formatWhen, h, openDialog, renderKeyed, setBusy, show,
  timeNode, toast,
} from '../common.js';
import { fact } from '../dashboard.js';
import { receiptLine } from '../receipts.js';
import { cancelDialog, detailsDialog } from './dialogs.js';
import {
  $, actionButton, callLink, cardHead, loadQueue, page, queue, queueError, setCount, store, whenNode,
} from './shared.js';

const disabled = { therapists: [] };

function render() {
  if (queue.error) {
    queueError($('timeouts-list'));
    return;
  }
  if (!queue.loaded) return;
  const waiting = store.values().filter((a) => a.status === 'pending' && a.therapist)
    .sort((a, b) => (a._deadlineAt || 0) - (b._deadlineAt || 0));
  renderKeyed($('timeouts-list'), waiting, (a) => a.id, (a) => a._version, timeoutCard);
  show($('timeouts-empty'), waiting.length === 0);
  setCount('timeouts', waiting.length);
}

function timeoutCard(a) {
  const headingId = `timeout-${a.id}`;
  return h('article', {
    class: `appt-card tone-${countdownTone(a._deadlineAt)}`, 'aria-labelledby': headingId, dataset: { appointmentId: a.id },
  },
    cardHead(a, headingId),
    h('p', null, countdown(a), ' ', h('span', { class: 'muted small' }, `due ${formatWhen(a.response_deadline)}`)),
    receiptLine(a), // sent · delivered · seen
    whenNode(a),
    h('dl', { class: 'facts' },
      fact('Therapist', a.therapist.name, a.therapist.phone ? [' · ', a.therapist.phone] : null),
      fact('Service', a.service.name),
      fact('Location', a.location)),
    h('div', { class: 'actions' },
      a.therapist.phone ? callLink(a.therapist.phone, a.therapist.name, 'button primary') : null,
      actionButton('Details', 'details', () => detailsDialog(a.id), 'ghost'),
      actionButton('Cancel appointment', 'cancel', () => cancelDialog(a.id), 'secondary')));
}

// --- The sweep ----------------------------------------------------------------------

async function runSweep(event) {
  const button = event.currentTarget;
  const result = $('sweep-result');
  setBusy(button, true);
  try {
    const counts = await api('/api/scheduling/appointments/auto_cancel_overdue/', { method: 'POST' });
    result.className = 'result';
    result.textContent = sweepSummary(counts);
    // What this sweep did arrives as live events; what a sweep elsewhere did (the
    // periodic one) is in the events feed: fetch it now, so no card stays stale.
    if (page.live) page.live.catchUp();
    loadDisabled();
  } catch (err) {
    result.className = 'error';
    result.textContent = `The sweep failed: ${errorText(err)}`;
  } finally {
    result.hidden = false;
    setBusy(button, false);
  }
}

function sweepSummary(counts) {
  const at = `Sweep done at ${formatTime(new Date().toISOString())}`;
  const done = counts.timed_out + counts.no_available_therapist;
  if (!done) {
    return `${at}: nothing was due. No assignment is past its deadline and no unassigned booking must be `
      + 'cancelled (an earlier sweep may already have done it).';
  }
  const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
  return `${at}: cancelled ${plural(done, 'appointment')}. Timed out: ${counts.timed_out} · `
    + `Therapists disabled: ${counts.therapists_disabled} · No therapist available: ${counts.no_available_therapist}`;
}

// --- Disabled therapists ----------------------------------------------------------------

async function loadDisabled() {
  try {
    const { results } = await apiAll('/api/accounts/therapists/?is_active=false&page_size=200');
    disabled.therapists = results;
    renderDisabled();
  } catch (err) {
    $('disabled-list').replaceChildren(h('p', { class: 'error', role: 'alert' }, `Could not load: ${errorText(err)}`));
  }
}

function renderDisabled() {
  const items = [...disabled.therapists]
    .sort((a, b) => Date.parse(b.disabled_at || 0) - Date.parse(a.disabled_at || 0));
  renderKeyed($('disabled-list'), items, (t) => t.id, (t) => t.disabled_at || '', (t) => {
    const headingId = `disabled-${t.id}`;
    return h('article', { class: 'appt-card', 'aria-labelledby': headingId, dataset: { therapistId: t.id } },
      h('header', { class: 'appt-head' }, h('h3', { id: headingId }, t.name), h('span', { class: 'appt-id' }, t.username)),
      h('dl', { class: 'facts' },
        fact('Disabled', t.disabled_at ? timeNode(t.disabled_at) : '—'),
        fact('Why', t.disabled_reason || 'No reason recorded'),
        t.phone ? fact('Phone', h('a', { href: `tel:${t.phone}` }, t.phone)) : null),
      h('div', { class: 'actions' },
        actionButton('Enable', 'enable', () => enableDialog(t), 'primary', t.name)));
  });
  show($('disabled-empty'), items.length === 0);
}

async function enableDialog(therapist) {
  await openDialog({
    title: `Enable ${therapist.name}?`,
    intro: `${therapist.name} can be assigned again and answer appointments. Disabled because: `
      + `${therapist.disabled_reason || 'no reason recorded'}.`,
    fields: [{ name: 'note', label: 'Note (optional)', multiline: true, hint: 'Kept in the account history.' }],
    confirmLabel: 'Enable therapist',
    onConfirm: async ({ note }) => {
      await api(`/api/accounts/therapists/${therapist.id}/enable/`, { method: 'POST', body: { note } });
      disabled.therapists = disabled.therapists.filter((t) => t.id !== therapist.id);
      renderDisabled();
      toast(`${therapist.name} is enabled again.`);
    },
  });
}

let disabledTimer = null;

function onEvent({ kind }) {
  if (kind === 'timed_out') {
    clearTimeout(disabledTimer);
    disabledTimer = setTimeout(loadDisabled, 500);
  }
}

export default {
  name: 'timeouts',
  title: 'Timeouts',
  init() {
    $('run-sweep').addEventListener('click', runSweep);
    loadQueue();
    loadDisabled();
  },
  render,
  onEvent,
};
