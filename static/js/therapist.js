// The therapist dashboard: what waits for my answer first (whatever its date),
// then today, upcoming and history; accept / reject (with a reason, in a modal) /
// start / complete; my availability; notifications. Kept current by live.js.

import {
  AppointmentStore, CANCELLATION_LABELS, Notifications, PAGE, REASON_LABELS, api, apiAll, countdown, countdownTone, dayKey,
  errorText, formatRange, formatWhen, h, inputValue, openDialog, reasonBadge, renderKeyed, setBusy, show, statusBadge,
  timeNode, toast, todayKey, zonedIso,
} from './common.js';
import { batchedRender, fact, startDashboardLive } from './dashboard.js';
import { mountMyNumbers } from './my_numbers.js';
import { mountWeek } from './week.js'; // "My week"
import { pushSupported } from './push.js'; // Web Push and its button
import { delivered, watchSeen } from './receipts.js'; // offer receipts

const $ = (id) => document.getElementById(id);
const ME = PAGE.user.id;
const ACTIVE = 'pending,confirmed,in_progress,rejected';
const FINAL = new Set(['completed', 'cancelled']);
const HISTORY_PAGE = 20;
const HISTORY = `/api/scheduling/appointments/?status=completed,cancelled&ordering=-starts_at&page_size=${HISTORY_PAGE}`;
// Events up to this id happened before the page was rendered: no alerts for them.
const RENDERED_AFTER = Number(PAGE.last_event_id) || 0;
// A session can be started from this long before its start (START_EARLY_MINUTES).
const START_EARLY_MS = (Number(PAGE.start_early_minutes) || 0) * 60000;
const SLOT_LABELS = { starts_at: 'From', ends_at: 'Until' };

const store = new AppointmentStore();
// Each notification links to its appointment: a plain click brings its card into view.
const notifications = new Notifications($('notifications-panel'), {
  link: { href: (id) => `#appointment-${id}`, open: (id) => showAppointment(id) },
});
const week = mountWeek($('week'));
const state = {
  loaded: false, historyPage: 0, historyNext: false, slots: [], fresh: new Set(), alerted: new Set(), phases: new Map(),
};
const { schedule: scheduleRender, apply: applyAndRender } = batchedRender(store, () => render());

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
    showFromHash();
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

// What a card shows: the appointment without its offer receipts and bookkeeping,
// hashed. An offer marked delivered or seen (this page reports both) then does not
// rebuild the card under the therapist's finger: a tap on a button that is being
// replaced is lost.
function shown(a) {
  const { offer, updated_at: updatedAt, _version: v, _deadlineAt: at, seconds_to_deadline: left, ...rest } = a;
  const text = JSON.stringify(rest);
  let hash = 5381;
  for (let i = 0; i < text.length; i += 1) hash = ((hash * 33) ^ text.charCodeAt(i)) >>> 0;
  return hash.toString(36);
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
  const version = (a) => `${shown(a)}${state.fresh.has(a.id) ? 'n' : ''}${phase(a)}`;
  for (const a of all) state.phases.set(a.id, phase(a));
  for (const [name, items] of [['waiting', waiting], ['today', todays], ['upcoming', upcoming], ['history', history]]) {
    renderKeyed($(`${name}-list`), items, (a) => a.id, version, card);
    show($(`${name}-empty`), items.length === 0);
  }
  document.querySelectorAll('[data-count="waiting"]').forEach((node) => { node.textContent = String(waiting.length); });
  show($('history-more'), state.historyNext);
  week.render(all);
  document.title = waiting.length
    ? `(${waiting.length}) My appointments · Royal Care Scheduling` : 'My appointments · Royal Care Scheduling';
}

// What a card offers changes with the clock: an answer is late once its deadline
// passes, a session can be started from START_EARLY_MINUTES before its start.
function isLate(a) {
  return a.status === 'pending' && !!a._deadlineAt && a._deadlineAt <= Date.now();
}

function startOpensAt(a) {
  return Date.parse(a.starts_at) - START_EARLY_MS;
}

function phase(a) {
  if (a.status === 'pending') return isLate(a) ? 'late' : 'open';
  if (a.status === 'confirmed') return Date.now() >= startOpensAt(a) ? 'startable' : 'early';
  return '';
}

// Re-render a card the moment its phase changes (a deadline passes, a start window opens).
setInterval(() => {
  if (state.loaded && store.values().some((a) => phase(a) !== (state.phases.get(a.id) || ''))) scheduleRender();
}, 1000);

function mapHref(address) {
  return `https://www.google.com/maps/search/?api=1&query=${encodeURIComponent(address)}`;
}

function place(address) {
  return [address, ' ', h('a', {
    href: mapHref(address), target: '_blank', rel: 'noopener noreferrer', class: 'map-link',
  }, 'Open map', h('span', { class: 'sr-only' }, ` for ${address}`))];
}

function card(a) {
  const headingId = `appt-${a.id}`;
  const r = a.latest_rejection;
  const late = isLate(a);
  const error = h('p', { class: 'error card-error', role: 'alert', hidden: true });
  const button = (label, action, cls, onclick) => h('button', {
    type: 'button', class: cls, dataset: { action }, onclick: (event) => onclick(event.currentTarget, error),
  }, label);
  let actions = [];
  let advice = null;
  if (a.status === 'pending' && late) {
    // Too late to answer: the booking is being cancelled and the account disabled.
    advice = h('p', { class: 'late', role: 'status' }, h('strong', null, 'Answer time passed. '),
      'This booking is cancelled for no answer and your account is disabled; an operator can re-enable it.');
  } else if (a.status === 'pending') {
    actions = [
      button('Accept', 'accept', 'primary big', (b, e) => act(a.id, 'accept', b, e)),
      button('Reject', 'reject', 'danger big', () => rejectDialog(a.id)),
    ];
    advice = h('p', { class: 'warning small' }, 'If you do not answer in time, the booking is cancelled and your '
      + 'account is disabled until an operator re-enables it.');
  } else if (a.status === 'confirmed' && Date.now() >= startOpensAt(a)) {
    actions = [button('Start session', 'start', 'primary big', (b, e) => act(a.id, 'start', b, e))];
  } else if (a.status === 'confirmed') {
    advice = h('p', { class: 'muted small' },
      `You can start this session from ${formatWhen(new Date(startOpensAt(a)).toISOString())}.`);
  } else if (a.status === 'in_progress') {
    actions = [button('Complete session', 'complete', 'primary big', () => completeDialog(a.id))];
  }
  const denied = a.status === 'pending' && r && r.review_decision === 'deny' && r.therapist === ME;
  return h('article', {
    id: `appointment-${a.id}`,
    class: `appt-card${state.fresh.has(a.id) ? ' is-new' : ''}${a.status === 'pending' && a._deadlineAt
      ? ` tone-${countdownTone(a._deadlineAt)}` : ''}`,
    'aria-labelledby': headingId,
    dataset: { appointmentId: a.id },
  },
  h('header', { class: 'appt-head' },
    statusBadge(a.status), h('h3', { id: headingId }, a.client.name), h('span', { class: 'appt-id' }, `#${a.id}`)),
  a.status === 'pending' && a._deadlineAt
    ? h('p', null, countdown(a), ' ', h('span', { class: 'muted small' }, `answer by ${formatWhen(a.response_deadline)}`))
    : null,
  h('p', { class: 'appt-time' }, timeNode(a.starts_at, formatRange(a.starts_at, a.ends_at))),
  h('dl', { class: 'facts' },
    fact('Service', `${a.service.name} (${a.service.duration_minutes} min)`),
    fact('Address', place(a.location)),
    a.client.address && a.client.address !== a.location ? fact('Client’s address', place(a.client.address)) : null,
    a.client.phone ? fact('Phone', h('a', {
      href: `tel:${a.client.phone.replace(/[^0-9+]/g, '')}`, dataset: { action: 'call' },
    }, a.client.phone, h('span', { class: 'sr-only' }, ` (call ${a.client.name})`))) : null,
    a.notes ? fact('Notes', a.notes) : null),
  advice,
  denied ? h('p', { class: 'note' }, h('strong', null, 'Operator’s note: '),
    r.review_note || 'Your rejection was not accepted; please answer again.') : null,
  a.status === 'rejected' && r ? h('p', { class: 'quote' }, h('strong', null, 'You rejected this: '), r.reason, ' ',
    reasonBadge(r.reason_code),
    h('span', { class: 'sub muted small' }, 'Waiting for an operator to review it.')) : null,
  a.status === 'cancelled' ? h('p', { class: 'muted' },
    CANCELLATION_LABELS[a.cancellation_reason] || 'Cancelled', a.cancellation_note ? `: ${a.cancellation_note}` : '') : null,
  error,
  actions.length ? h('div', { class: 'actions' }, actions) : null);
}

// --- Actions -------------------------------------------------------------------------

const DONE = { accept: 'Accepted. See you there!', start: 'Session started.' };

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

async function completeDialog(id) {
  const a = store.get(id);
  if (!a) return;
  await openDialog({
    title: `Complete the session with ${a.client.name}?`,
    intro: `#${id} · ${a.service.name} · ${formatRange(a.starts_at, a.ends_at)}. Complete it once the session is `
      + 'over: it moves to your history and cannot be undone.',
    confirmLabel: 'Complete session',
    cancelLabel: 'Not yet',
    onConfirm: async () => {
      const updated = await api(`/api/scheduling/appointments/${id}/complete/`, { method: 'POST' });
      applyAndRender(updated);
      toast(`#${id}: Session completed.`);
    },
  });
}

/** The kind of reason as large radio buttons (arrow keys move between them), after the
 * free text; "Other" to start with. */
function reasonChoices(id) {
  const legendId = `reason-code-${id}-legend`;
  return h('fieldset', { class: 'choices', 'aria-describedby': `${legendId}-hint` },
    h('legend', { id: legendId }, 'What is it about?'),
    h('p', { class: 'hint', id: `${legendId}-hint` }, 'Pick the closest; the operators count these.'),
    Object.entries(REASON_LABELS).map(([code, label]) => h('label', { class: 'choice' },
      h('input', { type: 'radio', name: `reason-code-${id}`, value: code, checked: code === 'other' }),
      h('span', null, label))));
}

async function rejectDialog(id) {
  const a = store.get(id);
  if (!a) return;
  const choices = reasonChoices(id);
  await openDialog({
    title: `Reject #${id}?`,
    intro: `${a.client.name} · ${a.service.name} · ${formatRange(a.starts_at, a.ends_at)}. `
      + 'An operator reviews your reason and either reassigns the appointment or sends it back to you.',
    fields: [{
      name: 'reason', label: 'Reason for rejecting', required: true, multiline: true, maxLength: 500,
      hint: 'Required. The operator sees it.',
    }],
    after: choices,
    confirmLabel: 'Reject appointment',
    confirmClass: 'danger',
    onConfirm: async ({ reason }) => {
      const code = choices.querySelector('input[type="radio"]:checked');
      const updated = await api(`/api/scheduling/appointments/${id}/reject/`, {
        method: 'POST', body: { rejection_reason: reason, reason_code: code ? code.value : 'other' },
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
    slotError(`Could not remove ${formatRange(slot.starts_at, slot.ends_at)}: ${errorText(err, SLOT_LABELS)}`);
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
    slotError(`Could not add the slot: ${errorText(err, SLOT_LABELS)}`);
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
      body: `${a.client.name} · ${formatRange(a.starts_at, a.ends_at)} · answer by ${formatWhen(a.response_deadline)}`,
      tag: `appointment-${a.id}`,
    });
    alert.onclick = () => { window.focus(); alert.close(); };
  } catch {
    // Some mobile browsers only allow notifications from a service worker.
  }
}

const alertsButton = $('enable-alerts');
function updateAlertsButton() {
  // Where Web Push works, push.js's "Turn on notifications" replaces this button.
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

// --- Following a link to an appointment (a notification, #appointment-<id>) -------------

function cardOf(id) {
  return document.querySelector(`article[data-appointment-id="${id}"]`);
}

async function showAppointment(id) {
  if (!cardOf(id)) {
    try {
      // Older than the history shown so far, say: fetch it (404 when it is no longer mine).
      applyAndRender(await api(`/api/scheduling/appointments/${id}/`), { fromList: true });
      render();
    } catch (err) {
      toast(err.status === 404 ? `Appointment #${id} is no longer on your list.` : errorText(err), { kind: 'error' });
      return;
    }
  }
  const node = cardOf(id);
  if (!node) return;
  node.setAttribute('tabindex', '-1');
  node.scrollIntoView({ block: 'center', behavior: 'smooth' });
  node.focus({ preventScroll: true });
  node.classList.add('highlight');
  setTimeout(() => node.classList.remove('highlight'), 4000);
}

function showFromHash() {
  const match = /^#appointment-(\d+)$/.exec(window.location.hash);
  if (match) showAppointment(Number(match[1]));
}

window.addEventListener('hashchange', showFromHash);

// --- Live updates ---------------------------------------------------------------------

const liveListeners = new Set(); // the therapist's own numbers follow the live events

function onEvent({ id, kind, appointment }) {
  liveListeners.forEach((listener) => listener({ id, kind, appointment }));
  const assignedToMe = id > RENDERED_AFTER
    && ['assigned', 'rejection_denied', 'reassigned', 'rescheduled'].includes(kind)
    && appointment.status === 'pending' && appointment.client && appointment.therapist
    && appointment.therapist.id === ME;
  if (assignedToMe) {
    state.fresh.add(appointment.id);
    alertNew(appointment);
    delivered(appointment); // the offer reached this page
  }
  applyAndRender(appointment, { eventId: id });
  if (assignedToMe) scheduleRender();
}

$('h-availability').setAttribute('tabindex', '-1');
$('slot-start').min = inputValue(Date.now());
$('slot-end').min = inputValue(Date.now());
loadAppointments();
loadSlots();
watchSeen($('waiting-list'), (id) => store.get(id), (snapshot) => applyAndRender(snapshot)); // "seen" receipts
mountMyNumbers($('my-numbers'), { subscribe: (listener) => liveListeners.add(listener) });
setInterval(scheduleRender, 60000);
startDashboardLive({ onEvent, notifications });
