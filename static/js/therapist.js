// The therapist dashboard: what waits for my answer first (whatever its date),
// then today, upcoming and history; accept / reject (with a reason, in a modal) /
// start / complete; my availability; notifications. Kept current by live.js.

import {
  AppointmentStore, CANCELLATION_LABELS, Notifications, PAGE, api, apiAll, countdown, countdownTone, dayKey, errorText, formatRange,
  formatTime, h, inputValue, openDialog, renderKeyed, setBusy, show, statusBadge, timeNode, toast, todayKey, zonedIso,
} from './common.js';
import { startLive } from './live.js';
import { pushSupported } from './push.js'; // reach: Web Push and its button
import { delivered, watchSeen } from './receipts.js'; // reach: offer receipts

const $ = (id) => document.getElementById(id);
const ME = PAGE.user.id;
const ACTIVE = 'pending,confirmed,in_progress,rejected';
const FINAL = new Set(['completed', 'cancelled']);
const HISTORY_PAGE = 20;
const HISTORY = `/api/scheduling/appointments/?status=completed,cancelled&ordering=-starts_at&page_size=${HISTORY_PAGE}`;
// Events up to this id happened before the page was rendered: no alerts for them.
const RENDERED_AFTER = Number(PAGE.last_event_id) || 0;

const store = new AppointmentStore();
const notifications = new Notifications($('notifications-panel'));
const state = { loaded: false, historyPage: 0, historyNext: false, slots: [], fresh: new Set(), alerted: new Set() };

// --- Loading -----------------------------------------------------------------------

async function loadAppointments() {
  try {
    const [active, history] = await Promise.all([
      apiAll(`/api/scheduling/appointments/?status=${ACTIVE}&page_size=200&ordering=starts_at`),
      api(`${HISTORY}&page=1`),
    ]);
    for (const a of [...active.results, ...history.results]) store.apply(a, { fromList: true });
    state.historyPage = 1;
    state.historyNext = !!history.next;
    state.loaded = true;
    render();
  } catch (err) {
    $('waiting-list').replaceChildren(h('p', { class: 'error', role: 'alert' },
      `Could not load your appointments: ${errorText(err)}`));
  }
}

$('history-more').addEventListener('click', async (event) => {
  const button = event.currentTarget;
  setBusy(button, true);
  try {
    const page = state.historyPage + 1;
    const data = await api(`${HISTORY}&page=${page}`);
    data.results.forEach((a) => store.apply(a, { fromList: true }));
    state.historyPage = page;
    state.historyNext = !!data.next;
    render();
  } catch (err) {
    toast(`Could not load older appointments: ${errorText(err)}`, { kind: 'error' });
  } finally {
    setBusy(button, false);
  }
});

// --- Rendering ---------------------------------------------------------------------

function byStart(a, b) {
  return Date.parse(a.starts_at) - Date.parse(b.starts_at);
}

function render() {
  if (!state.loaded) return;
  const today = todayKey();
  const all = store.values();
  const waiting = all.filter((a) => a.status === 'pending').sort((a, b) => (a._deadlineAt || 0) - (b._deadlineAt || 0));
  const active = all.filter((a) => a.status !== 'pending' && !FINAL.has(a.status)).sort(byStart);
  // Earlier days' unfinished sessions stay under Today: they still need Start or Complete.
  const todays = active.filter((a) => dayKey(a.starts_at) <= today);
  const upcoming = active.filter((a) => dayKey(a.starts_at) > today);
  const history = all.filter((a) => FINAL.has(a.status)).sort((a, b) => byStart(b, a));
  const version = (a) => `${a._version}${state.fresh.has(a.id) ? 'n' : ''}`;
  for (const [name, items] of [['waiting', waiting], ['today', todays], ['upcoming', upcoming], ['history', history]]) {
    renderKeyed($(`${name}-list`), items, (a) => a.id, version, card);
    show($(`${name}-empty`), items.length === 0);
  }
  document.querySelectorAll('[data-count="waiting"]').forEach((node) => { node.textContent = String(waiting.length); });
  show($('history-more'), state.historyNext);
  document.title = waiting.length
    ? `(${waiting.length}) My appointments · Royal Care Scheduling` : 'My appointments · Royal Care Scheduling';
}

function fact(label, ...value) {
  return [h('dt', null, label), h('dd', null, ...value)];
}

function card(a) {
  const headingId = `appt-${a.id}`;
  const r = a.latest_rejection;
  const error = h('p', { class: 'error card-error', role: 'alert', hidden: true });
  const button = (label, action, cls, onclick) => h('button', {
    type: 'button', class: cls, dataset: { action }, onclick: (event) => onclick(event.currentTarget, error),
  }, label);
  let actions = [];
  if (a.status === 'pending') {
    actions = [
      button('Accept', 'accept', 'primary big', (b, e) => act(a.id, 'accept', b, e)),
      button('Reject', 'reject', 'danger big', () => rejectDialog(a.id)),
    ];
  } else if (a.status === 'confirmed') {
    actions = [button('Start session', 'start', 'primary big', (b, e) => act(a.id, 'start', b, e))];
  } else if (a.status === 'in_progress') {
    actions = [button('Complete session', 'complete', 'primary big', (b, e) => act(a.id, 'complete', b, e))];
  }
  const denied = a.status === 'pending' && r && r.review_decision === 'deny' && r.therapist === ME;
  return h('article', {
    class: `appt-card${state.fresh.has(a.id) ? ' is-new' : ''}${a.status === 'pending' && a._deadlineAt
      ? ` tone-${countdownTone(a._deadlineAt)}` : ''}`,
    'aria-labelledby': headingId,
    dataset: { appointmentId: a.id },
  },
  h('header', { class: 'appt-head' },
    statusBadge(a.status), h('h3', { id: headingId }, a.client.name), h('span', { class: 'appt-id' }, `#${a.id}`)),
  a.status === 'pending' && a._deadlineAt
    ? h('p', null, countdown(a), ' ', h('span', { class: 'muted small' }, `answer by ${formatTime(a.response_deadline)}`))
    : null,
  h('p', { class: 'appt-time' }, timeNode(a.starts_at, formatRange(a.starts_at, a.ends_at))),
  h('dl', { class: 'facts' },
    fact('Service', `${a.service.name} (${a.service.duration_minutes} min)`),
    fact('Address', a.location),
    a.client.address && a.client.address !== a.location ? fact('Client’s address', a.client.address) : null,
    a.client.phone ? fact('Phone', h('a', { href: `tel:${a.client.phone}` }, a.client.phone)) : null,
    a.notes ? fact('Notes', a.notes) : null),
  denied ? h('p', { class: 'note' }, h('strong', null, 'Operator’s note: '),
    r.review_note || 'Your rejection was not accepted; please answer again.') : null,
  a.status === 'rejected' && r ? h('p', { class: 'quote' }, h('strong', null, 'You rejected this: '), r.reason,
    h('span', { class: 'sub muted small' }, 'Waiting for an operator to review it.')) : null,
  a.status === 'cancelled' ? h('p', { class: 'muted' },
    CANCELLATION_LABELS[a.cancellation_reason] || 'Cancelled', a.cancellation_note ? `: ${a.cancellation_note}` : '') : null,
  error,
  actions.length ? h('div', { class: 'actions' }, actions) : null);
}

// --- Actions -------------------------------------------------------------------------

const DONE = { accept: 'Accepted. See you there!', start: 'Session started.', complete: 'Session completed.' };

async function act(id, action, button, error) {
  setBusy(button, true);
  error.hidden = true;
  try {
    const updated = await api(`/api/scheduling/appointments/${id}/${action}/`, { method: 'POST' });
    applyAndRender(updated);
    toast(`#${id}: ${DONE[action]}`);
  } catch (err) {
    error.textContent = errorText(err);
    error.hidden = false;
    setBusy(button, false);
    toast(errorText(err), { kind: 'error' });
  }
}

async function rejectDialog(id) {
  const a = store.get(id);
  if (!a) return;
  await openDialog({
    title: `Reject #${id}?`,
    intro: `${a.client.name} · ${a.service.name} · ${formatRange(a.starts_at, a.ends_at)}. `
      + 'An operator reviews your reason and either reassigns the appointment or sends it back to you.',
    fields: [{
      name: 'reason', label: 'Reason for rejecting', required: true, multiline: true, maxLength: 500,
      hint: 'Required. The operator sees it.',
    }],
    confirmLabel: 'Reject appointment',
    confirmClass: 'danger',
    onConfirm: async ({ reason }) => {
      const updated = await api(`/api/scheduling/appointments/${id}/reject/`, {
        method: 'POST', body: { rejection_reason: reason },
      });
      applyAndRender(updated);
      toast(`#${id} rejected. An operator will review it.`);
    },
  });
}

// --- Availability ------------------------------------------------------------------------

async function loadSlots() {
  try {
    const { results } = await apiAll('/api/scheduling/availability/?page_size=200');
    state.slots = results;
    renderSlots();
  } catch (err) {
    slotError(`Could not load your availability: ${errorText(err)}`);
  }
}

function slotError(message) {
  $('availability-error').textContent = message || '';
  $('availability-error').hidden = !message;
}

function renderSlots() {
  const slots = [...state.slots].sort(byStart);
  renderKeyed($('availability-list'), slots, (s) => s.id, () => '1', (s) => {
    const text = formatRange(s.starts_at, s.ends_at);
    return h('li', { class: 'slot' },
      timeNode(s.starts_at, text),
      h('button', {
        type: 'button', class: 'secondary small', dataset: { action: 'remove' },
        onclick: (e) => removeSlot(s, e.currentTarget),
      },
        'Remove', h('span', { class: 'sr-only' }, ` slot ${text}`)));
  });
  show($('availability-empty'), slots.length === 0);
}

async function removeSlot(slot, button) {
  setBusy(button, true);
  slotError(null);
  try {
    await api(`/api/scheduling/availability/${slot.id}/`, { method: 'DELETE' });
    state.slots = state.slots.filter((s) => s.id !== slot.id);
    renderSlots();
    $('h-availability').focus();
    toast('Availability removed.');
  } catch (err) {
    slotError(`Could not remove ${formatRange(slot.starts_at, slot.ends_at)}: ${errorText(err)}`);
    setBusy(button, false);
  }
}

$('availability-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const submit = form.querySelector('button[type="submit"]');
  const start = zonedIso($('slot-start').value);
  const end = zonedIso($('slot-end').value);
  if (!start || !end) {
    slotError('Choose when the slot starts and ends.');
    (start ? $('slot-end') : $('slot-start')).focus();
    return;
  }
  setBusy(submit, true);
  slotError(null);
  try {
    const slot = await api('/api/scheduling/availability/', { method: 'POST', body: { starts_at: start, ends_at: end } });
    state.slots.push(slot);
    renderSlots();
    form.reset();
    toast(`Availability added: ${formatRange(slot.starts_at, slot.ends_at)}.`);
  } catch (err) {
    slotError(`Could not add the slot: ${errorText(err)}`);
  } finally {
    setBusy(submit, false);
  }
});

// --- Alerts for new assignments: a short beep (once a tap or key press has
// unlocked audio; browsers block it before that) and a desktop notification
// when permission was granted. -------------------------------------------------------

let audio = null;

function unlockAudio() {
  try {
    if (!audio) {
      const Context = window.AudioContext || window.webkitAudioContext;
      if (!Context) return;
      audio = new Context();
    }
    if (audio.state === 'suspended') audio.resume().catch(() => {});
  } catch {
    audio = null;
  }
}

['pointerdown', 'keydown'].forEach((type) => window.addEventListener(type, unlockAudio, { passive: true }));

function beep() {
  if (!audio || audio.state !== 'running') return;
  try {
    const t = audio.currentTime;
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = 'sine';
    osc.frequency.setValueAtTime(880, t);
    osc.frequency.setValueAtTime(1175, t + 0.15);
    gain.gain.setValueAtTime(0.0001, t);
    gain.gain.exponentialRampToValueAtTime(0.25, t + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.35);
    osc.connect(gain).connect(audio.destination);
    osc.start(t);
    osc.stop(t + 0.4);
  } catch {
    // No sound is better than a broken page.
  }
}

function desktopAlert(a) {
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  try {
    const alert = new Notification('New appointment to answer', {
      body: `${a.client.name} · ${formatRange(a.starts_at, a.ends_at)} · answer by ${formatTime(a.response_deadline)}`,
      tag: `appointment-${a.id}`,
    });
    alert.onclick = () => { window.focus(); alert.close(); };
  } catch {
    // Some mobile browsers only allow notifications from a service worker.
  }
}

const alertsButton = $('enable-alerts');
function updateAlertsButton() {
  // reach: where Web Push works, push.js's "Turn on notifications" replaces this button.
  show(alertsButton, !pushSupported() && 'Notification' in window && Notification.permission === 'default');
}
alertsButton.addEventListener('click', async () => {
  unlockAudio();
  try {
    await Notification.requestPermission();
  } finally {
    updateAlertsButton();
  }
});
updateAlertsButton();

function alertNew(a) {
  const key = `${a.id}:${a.response_deadline}`;
  if (state.alerted.has(key)) return;
  state.alerted.add(key);
  state.fresh.add(a.id);
  setTimeout(() => { state.fresh.delete(a.id); scheduleRender(); }, 6000);
  beep();
  desktopAlert(a);
}

// --- Notifications panel ----------------------------------------------------------------

$('bell').addEventListener('click', (event) => {
  const bell = event.currentTarget;
  const panel = $('notifications-panel');
  const open = panel.hidden;
  panel.hidden = !open;
  bell.setAttribute('aria-expanded', String(open));
  if (open) {
    $('h-notifications').setAttribute('tabindex', '-1');
    $('h-notifications').focus();
    if (!notifications.loaded) notifications.load().catch((err) => toast(errorText(err), { kind: 'error' }));
  }
});

// --- Live updates ---------------------------------------------------------------------

let renderQueued = false;

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

function applyAndRender(snapshot, options) {
  if (store.apply(snapshot, options)) scheduleRender();
}

let notificationsTimer = null;

function onEvent({ id, kind, appointment }) {
  const assignedToMe = id > RENDERED_AFTER && (kind === 'assigned' || kind === 'rejection_denied')
    && appointment.status === 'pending' && appointment.client && appointment.therapist
    && appointment.therapist.id === ME;
  if (assignedToMe) {
    state.fresh.add(appointment.id);
    alertNew(appointment);
    delivered(appointment); // reach: the offer reached this page
  }
  applyAndRender(appointment, { eventId: id });
  if (assignedToMe) scheduleRender();
}

$('h-availability').setAttribute('tabindex', '-1');
$('slot-start').min = inputValue(Date.now());
$('slot-end').min = inputValue(Date.now());
loadAppointments();
loadSlots();
watchSeen($('waiting-list'), (id) => store.get(id), (snapshot) => applyAndRender(snapshot)); // reach: "seen" receipts
setInterval(scheduleRender, 60000);
startLive({
  onEvent,
  onNotification: (message) => notifications.receive(message),
  onCaughtUp: () => {
    clearTimeout(notificationsTimer);
    notificationsTimer = setTimeout(() => notifications.refresh()
      .catch((err) => toast(`Could not update the notifications: ${errorText(err)}`, { kind: 'error' })), 300);
  },
});
