// The operators' day board (/operator/?tab=day&date=YYYY-MM-DD): one row per
// therapist across the business day, their availability shaded, appointments
// as blocks coloured by status with the travel buffers around them hatched,
// pending offers with their countdown, and the day's unassigned bookings in a
// tray. A block opens its details (reassign, reschedule, change place or notes,
// cancel); free time books with that therapist. The whole day is one request
// (GET /api/scheduling/day/), refetched shortly after any live event.
//
// On a phone the rows stack: each therapist becomes a card listing its blocks
// in time order, so nothing needs sideways scrolling.

import { PAGE, TZ, api, countdown, errorText, formatTime, h, openDialog, renderKeyed, statusBadge, todayKey, zonedIso } from './common.js';
import { bookDialog } from './booking.js';
import {
  assignDialog, canCancel, canReassign, canReschedule, cancelDialog, editDialog, reassignDialog, rescheduleDialog,
} from './dispatch.js';

const BUFFER_MINUTES = Number.isFinite(Number(PAGE.travel_buffer_minutes)) ? Number(PAGE.travel_buffer_minutes) : 30;
const SNAP_MINUTES = 15;
const REFETCH_AFTER_MS = 400;
// The timeline always shows at least these hours, widened to fit the day's appointments.
const DEFAULT_FROM_HOUR = 7;
const DEFAULT_TO_HOUR = 21;
const MINUTE = 60000;

const LONG_DAY = new Intl.DateTimeFormat('en-US', { timeZone: TZ, weekday: 'long', month: 'long', day: 'numeric', year: 'numeric' });
const HOUR = new Intl.DateTimeFormat('en-US', { timeZone: TZ, hour: 'numeric' });

function isDateKey(text) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text || '')) return false;
  const [y, m, d] = text.split('-').map(Number);
  const date = new Date(Date.UTC(y, m - 1, d));
  return date.getUTCFullYear() === y && date.getUTCMonth() === m - 1 && date.getUTCDate() === d;
}

function shiftDay(key, days) {
  const [y, m, d] = key.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}

function place(text) {
  return (text || '').toLowerCase().replace(/\s+/g, ' ').trim();
}

function dateFromUrl() {
  const params = new URLSearchParams(window.location.search);
  const date = params.get('date');
  return isDateKey(date) ? date : todayKey();
}

/**
 * mountDayBoard(container, {subscribe(fn), panel}): `subscribe` registers a
 * listener for live events ({id, kind, appointment}); `panel` is the tab's
 * section, whose `hidden` says whether the board is on screen.
 */
export function mountDayBoard(container, { subscribe, panel = container }) {
  const state = {
    date: dateFromUrl(), board: null, loading: false, stale: true, request: 0, timer: null,
    ids: new Set(), dayStart: 0, from: 0, to: 0,
  };

  const title = h('h3', { class: 'db-title', id: 'db-title', 'aria-live': 'polite' }, 'Day board');
  const prev = h('button', { type: 'button', class: 'secondary small', onclick: () => go(shiftDay(state.date, -1)) }, 'Previous day');
  const today = h('button', { type: 'button', class: 'secondary small', onclick: () => go(todayKey()) }, 'Today');
  const next = h('button', { type: 'button', class: 'secondary small', onclick: () => go(shiftDay(state.date, 1)) }, 'Next day');
  const picker = h('input', { id: 'db-date', type: 'date', onchange: () => { if (isDateKey(picker.value)) go(picker.value); } });
  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  const axis = h('div', { class: 'db-axis', 'aria-hidden': 'true' });
  const rows = h('div', { class: 'db-rows', role: 'list', 'aria-labelledby': 'db-title', 'aria-busy': 'true' },
    h('p', { class: 'loading' }, 'Loading…'));
  const empty = h('p', { class: 'empty', hidden: true }, 'No therapists yet. Create therapist accounts first.');
  const tray = h('ul', { class: 'db-tray', 'aria-labelledby': 'db-tray-title' });
  const trayEmpty = h('p', { class: 'empty', hidden: true }, 'Every booking that day has a therapist.');

  container.replaceChildren(
    h('div', { class: 'db-head' },
      title,
      h('div', { class: 'db-nav' }, prev, today, next,
        h('div', { class: 'db-jump' }, h('label', { for: 'db-date' }, 'Go to date'), picker))),
    h('ul', { class: 'db-legend', 'aria-label': 'Legend' },
      ...['pending', 'confirmed', 'rejected', 'in_progress', 'completed'].map((s) => h('li', null, statusBadge(s))),
      h('li', null, h('span', { class: 'db-swatch db-swatch-avail' }), 'Available'),
      h('li', null, h('span', { class: 'db-swatch db-swatch-buffer' }), `Travel (${BUFFER_MINUTES} min)`)),
    error,
    h('section', { class: 'db-unassigned', 'aria-labelledby': 'db-tray-title' },
      h('h3', { id: 'db-tray-title' }, 'Unassigned ', h('span', { class: 'count', dataset: { dbCount: 'unassigned' } }, '0')),
      tray, trayEmpty),
    h('div', { class: 'db-grid' }, axis, rows),
    empty,
    h('p', { class: 'muted small db-hint' }, 'Click a block for its details; click free time in a row (or its Book button) '
      + 'to book with that therapist.'));

  // --- Loading --------------------------------------------------------------------

  function visible() {
    return !panel.hidden;
  }

  function go(date) {
    if (!isDateKey(date)) return;
    if (date !== state.date) {
      state.date = date;
      const url = new URL(window.location.href);
      url.searchParams.set('tab', 'day');
      url.searchParams.set('date', date);
      history.pushState(null, '', url);
    }
    load();
  }

  function syncUrl() {
    const url = new URL(window.location.href);
    if (url.searchParams.get('tab') !== 'day' || url.searchParams.get('date') === state.date) return;
    url.searchParams.set('date', state.date);
    history.replaceState(null, '', url);
  }

  async function load() {
    const request = ++state.request;
    state.loading = true;
    state.stale = false;
    rows.setAttribute('aria-busy', 'true');
    renderHead();
    try {
      const board = await api(`/api/scheduling/day/?date=${state.date}`);
      if (request !== state.request) return;
      const arrived = Date.now();
      for (const a of [...board.unassigned, ...board.therapists.flatMap((t) => t.appointments)]) {
        if (a.seconds_to_deadline !== null) a._deadlineAt = arrived + a.seconds_to_deadline * 1000;
      }
      state.board = board;
      error.hidden = true;
      render();
    } catch (err) {
      if (request !== state.request) return;
      error.textContent = `Could not load the day: ${errorText(err)}`;
      error.hidden = false;
      rows.removeAttribute('aria-busy');
    } finally {
      if (request === state.request) state.loading = false;
    }
  }

  function refetchSoon() {
    if (!visible()) {
      state.stale = true;
      return;
    }
    clearTimeout(state.timer);
    state.timer = setTimeout(load, REFETCH_AFTER_MS);
  }

  function touchesDay(a) {
    if (state.ids.has(a.id)) return true;
    if (!a.starts_at || !state.dayStart) return true; // a bare snapshot: cannot tell, so look again
    const start = Date.parse(a.starts_at);
    const end = Date.parse(a.ends_at || a.starts_at);
    return start < state.dayStart + 24 * 60 * MINUTE && end > state.dayStart;
  }

  subscribe(({ appointment }) => {
    if (!appointment || touchesDay(appointment)) refetchSoon();
  });

  // The tab shows or hides the panel: load when it comes on screen, if needed.
  new MutationObserver(() => {
    if (!visible()) return;
    // A link to ?tab=day keeps the date on the board; a URL with a date wins.
    const asked = new URLSearchParams(window.location.search).get('date');
    if (isDateKey(asked)) state.date = asked;
    syncUrl();
    if (state.stale || !state.board || state.board.date !== state.date) load();
  }).observe(panel, { attributes: true, attributeFilter: ['hidden'] });

  window.addEventListener('popstate', () => {
    const params = new URLSearchParams(window.location.search);
    if (params.get('tab') !== 'day') return;
    const date = dateFromUrl();
    if (date !== state.date) {
      state.date = date;
      load();
    }
  });

  // Keep the "now" line moving on today's board.
  setInterval(() => { if (visible() && state.board && state.date === todayKey()) placeNow(); }, MINUTE);

  // --- Rendering ------------------------------------------------------------------

  function renderHead() {
    state.dayStart = Date.parse(zonedIso(`${state.date}T00:00`));
    const isToday = state.date === todayKey();
    title.textContent = `${LONG_DAY.format(new Date(state.dayStart + 12 * 60 * MINUTE))}${isToday ? ' (today)' : ''}`;
    today.disabled = isToday;
    picker.value = state.date;
  }

  function minutesOf(iso) {
    return (Date.parse(iso) - state.dayStart) / MINUTE;
  }

  function span(startMin, endMin) {
    const from = Math.max(startMin, state.from);
    const to = Math.min(endMin, state.to);
    if (to <= from) return null;
    const total = state.to - state.from;
    return { left: ((from - state.from) / total) * 100, width: ((to - from) / total) * 100 };
  }

  function positioned(node, box) {
    node.style.setProperty('--left', `${box.left}%`);
    node.style.setProperty('--width', `${box.width}%`);
    return node;
  }

  function range(board) {
    let from = DEFAULT_FROM_HOUR * 60;
    let to = DEFAULT_TO_HOUR * 60;
    for (const a of [...board.unassigned, ...board.therapists.flatMap((t) => t.appointments)]) {
      from = Math.min(from, Math.floor(Math.max(0, minutesOf(a.starts_at)) / 60) * 60);
      to = Math.max(to, Math.ceil(Math.min(24 * 60, minutesOf(a.ends_at)) / 60) * 60);
    }
    return [from, to];
  }

  function render() {
    const board = state.board;
    renderHead();
    [state.from, state.to] = range(board);
    state.ids = new Set([...board.unassigned, ...board.therapists.flatMap((t) => t.appointments)].map((a) => a.id));
    const hours = (state.to - state.from) / 60;
    container.style.setProperty('--hours', String(hours));
    axis.replaceChildren(...Array.from({ length: hours }, (_, i) => h('span', null,
      HOUR.format(new Date(state.dayStart + (state.from + i * 60) * MINUTE)))));
    // A row's version changes with anything drawn in it, so an unchanged row keeps its node (and focus).
    const version = (t) => JSON.stringify([state.from, state.to, t.is_active, t.availability,
      t.appointments.map((a) => [a.id, a.updated_at, a.status, a.starts_at])]);
    renderKeyed(rows, board.therapists, (t) => t.id, version, therapistRow);
    empty.hidden = board.therapists.length > 0;
    renderKeyed(tray, board.unassigned, (a) => a.id, (a) => a.updated_at, trayItem);
    trayEmpty.hidden = board.unassigned.length > 0;
    container.querySelector('[data-db-count="unassigned"]').textContent = String(board.unassigned.length);
    placeNow();
  }

  function placeNow() {
    container.querySelectorAll('.db-now').forEach((node) => node.remove());
    if (state.date !== todayKey()) return;
    const box = span(minutesOf(new Date().toISOString()), minutesOf(new Date().toISOString()) + 0.01);
    if (!box) return;
    rows.querySelectorAll('.db-track').forEach((track) => track.append(
      positioned(h('span', { class: 'db-now', 'aria-hidden': 'true' }), box)));
  }

  function buffers(appointments) {
    // The travel time around each appointment where another job elsewhere cannot
    // be; none between two jobs at the same address.
    const sorted = [...appointments].filter((a) => a.status !== 'completed')
      .sort((x, y) => Date.parse(x.starts_at) - Date.parse(y.starts_at));
    const out = [];
    sorted.forEach((a, i) => {
      const before = sorted[i - 1];
      const after = sorted[i + 1];
      const start = minutesOf(a.starts_at);
      const end = minutesOf(a.ends_at);
      if (!(before && place(before.location) === place(a.location) && minutesOf(before.ends_at) >= start - BUFFER_MINUTES)) {
        out.push([start - BUFFER_MINUTES, start]);
      }
      if (!(after && place(after.location) === place(a.location) && minutesOf(after.starts_at) <= end + BUFFER_MINUTES)) {
        out.push([end, end + BUFFER_MINUTES]);
      }
    });
    return out;
  }

  function therapistRow(t) {
    const jobs = t.appointments.length;
    const slots = t.availability.map((s) => {
      const from = Math.max(minutesOf(s.starts_at), 0);
      const to = Math.min(minutesOf(s.ends_at), 24 * 60);
      return `${formatTime(new Date(state.dayStart + from * MINUTE).toISOString())}–`
        + `${to >= 24 * 60 ? 'midnight' : formatTime(new Date(state.dayStart + to * MINUTE).toISOString())}`;
    });
    const track = h('div', {
      class: 'db-track', dataset: { therapistId: t.id },
      onclick: (event) => { if (!event.target.closest('.db-block')) freeTime(event, t); },
    });
    for (const s of t.availability) {
      const box = span(minutesOf(s.starts_at), minutesOf(s.ends_at));
      if (box) track.append(positioned(h('span', { class: 'db-avail', 'aria-hidden': 'true' }), box));
    }
    if (BUFFER_MINUTES > 0) {
      for (const [from, to] of buffers(t.appointments)) {
        const box = span(from, to);
        if (box) track.append(positioned(h('span', { class: 'db-buffer', 'aria-hidden': 'true' }), box));
      }
    }
    for (const a of t.appointments) track.append(block(a));
    return h('div', { class: `db-row${t.is_active ? '' : ' is-disabled'}`, role: 'listitem', dataset: { therapistId: t.id } },
      h('div', { class: 'db-who' },
        h('strong', null, t.name),
        t.is_active ? null : h('span', { class: 'db-flag' }, 'Disabled'),
        h('span', { class: 'sub muted small' },
          `${jobs} job${jobs === 1 ? '' : 's'}`, slots.length ? ` · available ${slots.join(', ')}` : ' · not available'),
        t.is_active ? h('button', {
          type: 'button', class: 'ghost small', dataset: { action: `book-${t.id}` },
          onclick: () => book(t, defaultStart(t)),
        }, 'Book', h('span', { class: 'sr-only' }, ` with ${t.name}`)) : null),
      track);
  }

  function block(a) {
    const box = span(minutesOf(a.starts_at), minutesOf(a.ends_at)) || { left: 0, width: 0 };
    const waiting = a.status === 'pending' && a._deadlineAt;
    return positioned(h('div', { class: `db-block status-${a.status}`, dataset: { appointmentId: a.id } },
      h('button', {
        type: 'button', class: 'db-open', dataset: { action: `open-${a.id}` }, onclick: () => details(a),
      },
      h('span', { class: 'db-client' }, a.client.name),
      h('span', { class: 'db-time' }, `${formatTime(a.starts_at)}–${formatTime(a.ends_at)}`),
      h('span', { class: 'sr-only' }, `, #${a.id}, ${a.status.replace('_', ' ')}`)),
      waiting ? countdown(a) : null), box);
  }

  function trayItem(a) {
    return h('li', { class: 'db-tray-item', dataset: { appointmentId: a.id } },
      h('button', { type: 'button', class: 'db-open', dataset: { action: `open-${a.id}` }, onclick: () => details(a) },
        h('span', { class: 'db-client' }, a.client.name),
        h('span', { class: 'db-time' }, `${formatTime(a.starts_at)}–${formatTime(a.ends_at)} · ${a.service.name}`),
        h('span', { class: 'sr-only' }, `, #${a.id}, unassigned`)));
  }

  // --- Acting -----------------------------------------------------------------------

  function defaultStart(t) {
    // The first free quarter hour of their availability that day (from now on, today).
    const floor = Math.max(state.dayStart, Date.now());
    const slot = t.availability.find((s) => Date.parse(s.ends_at) > floor);
    const start = slot ? Math.max(Date.parse(slot.starts_at), floor) : Math.max(state.dayStart + 9 * 60 * MINUTE, floor);
    const step = SNAP_MINUTES * MINUTE;
    return Math.ceil(start / step) * step;
  }

  function freeTime(event, t) {
    if (!t.is_active) return;
    const rect = event.currentTarget.getBoundingClientRect();
    if (!rect.width) return;
    const minute = state.from + ((event.clientX - rect.left) / rect.width) * (state.to - state.from);
    const step = SNAP_MINUTES * MINUTE;
    const at = Math.max(Math.floor((state.dayStart + minute * MINUTE) / step) * step, Math.ceil(Date.now() / step) * step);
    book(t, at);
  }

  async function book(t, startsAt) {
    const created = await bookDialog({ therapist: t, startsAt });
    if (created) load();
  }

  function find(id) {
    if (!state.board) return null;
    return [...state.board.unassigned, ...state.board.therapists.flatMap((t) => t.appointments)]
      .find((a) => a.id === id) || null;
  }

  async function details(a) {
    a = find(a.id) || a;
    let next = null;
    const fact = (label, ...value) => [h('dt', null, label), h('dd', null, ...value)];
    const act = (label, dialog, cls = 'secondary') => h('button', {
      type: 'button', class: cls, onclick: () => { next = dialog; controlsRef.close(); },
    }, label);
    let controlsRef = null;
    await openDialog({
      title: `Appointment #${a.id}`,
      wide: true,
      content: (controls) => {
        controlsRef = controls;
        const actions = [];
        if (canReassign(a)) actions.push(act('Reassign', reassignDialog, 'primary'));
        if (a.status === 'pending' && !a.therapist) actions.push(act('Assign', assignDialog, 'primary'));
        if (canReschedule(a)) actions.push(act('Reschedule', rescheduleDialog));
        if (canCancel(a)) actions.push(act('Change place or notes', editDialog, 'ghost'), act('Cancel appointment', cancelDialog, 'danger'));
        return h('div', null,
          h('p', null, statusBadge(a.status), ' ', h('strong', null, `${formatTime(a.starts_at)}–${formatTime(a.ends_at)}`),
            a.status === 'pending' && a._deadlineAt ? [' ', countdown(a)] : null),
          h('dl', { class: 'facts' },
            fact('Client', a.client.name, a.client.phone ? [' · ', h('a', { href: `tel:${a.client.phone}` }, a.client.phone)] : null),
            fact('Service', `${a.service.name} (${a.service.duration_minutes} min)`),
            fact('Therapist', a.therapist ? a.therapist.name : 'Unassigned'),
            fact('Location', a.location),
            a.notes ? fact('Notes', a.notes) : null,
            a.latest_rejection && a.status === 'rejected' ? fact('Rejected', a.latest_rejection.reason) : null),
          actions.length ? h('div', { class: 'actions db-actions' }, actions) : null);
      },
    });
    if (next) {
      try {
        const updated = await next(a);
        if (updated) load();
      } catch (err) {
        error.textContent = errorText(err);
        error.hidden = false;
      }
    }
  }

  renderHead();
  if (visible()) {
    syncUrl();
    load();
  }
  return { load, get date() { return state.date; } };
}
