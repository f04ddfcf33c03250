// Shared helpers for the dashboards: the API client, DOM building (never from
// HTML strings), business-time-zone formatting, status badges, countdowns,
// toasts, modal dialogs, the appointment store and the notifications list.

const dataNode = document.getElementById('page-data');
export const PAGE = dataNode ? JSON.parse(dataNode.textContent) : {};
export const TZ = PAGE.time_zone || 'UTC';

// --- API -------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `The server answered ${status}.`);
    this.status = status;
    this.code = (body && body.code) || 'error';
    this.errors = (body && body.errors) || null;
  }
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : PAGE.csrf_token || '';
}

export async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-CSRFToken'] = csrfToken();
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method, headers, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, { detail: 'Cannot reach the server. Check the connection and try again.', code: 'network' });
  }
  if (response.status === 204) return null;
  let data = null;
  if ((response.headers.get('content-type') || '').includes('application/json')) {
    try { data = await response.json(); } catch { data = null; }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (error.code === 'account_disabled') accountDisabled(error);
    throw error;
  }
  return data;
}

let disabledShown = false;

/** A 403 account_disabled: the page reloads into the disabled view, which says why and since when. */
function accountDisabled(error) {
  if (disabledShown) return;
  disabledShown = true;
  toast(error.message, { kind: 'error' });
  window.location.reload();
}

/** Every page of a paginated list (bounded, to protect the page). */
export async function apiAll(path, maxPages = 20) {
  const results = [];
  let page = 1;
  let count = 0;
  for (; page <= maxPages; page += 1) {
    const sep = path.includes('?') ? '&' : '?';
    const data = await api(`${path}${sep}page=${page}`);
    results.push(...data.results);
    count = data.count;
    if (!data.next) break;
  }
  return { results, count };
}

const FIELD_LABELS = {
  starts_at: 'Start', ends_at: 'End', rejection_reason: 'Reason', review_note: 'Note', reason: 'Reason',
  client: 'Client', service: 'Service', location: 'Location', notes: 'Notes', therapist: 'Therapist',
  note: 'Note', review_decision: 'Decision', reason_code: 'Kind of reason', from: 'From', to: 'To',
};

/**
 * A sentence a person can read for any failure (API error or not). Field errors
 * are named as the form names them: `labels` ({field: label}) overrides the usual
 * names, and a message that already names its field is not prefixed again.
 */
export function errorText(err, labels = {}) {
  if (!(err instanceof ApiError)) return (err && err.message) || 'Something went wrong.';
  if (!err.errors) return err.message;
  const parts = [];
  for (const [field, messages] of Object.entries(err.errors)) {
    const text = [].concat(messages).map((m) => (typeof m === 'string' ? m : JSON.stringify(m))).join(' ');
    const label = labels[field] || FIELD_LABELS[field];
    parts.push(field === 'non_field_errors' || !label || text.startsWith(label) ? text : `${label}: ${text}`);
  }
  return parts.length ? parts.join(' ') : err.message;
}

// --- DOM -------------------------------------------------------------------

/** h('p', {class: 'x', onclick: fn}, 'text', child): text is always a text node. */
export function h(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, '');
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function show(node, visible) {
  if (node) node.hidden = !visible;
}

export function setBusy(button, busy) {
  button.disabled = busy;
  if (busy) button.setAttribute('aria-busy', 'true');
  else button.removeAttribute('aria-busy');
}

// --- Time in the business time zone -------------------------------------------
// The one date and time format of every page, toast and message: "Wed, Dec 2, 1:30 PM",
// without the date when it is today, with the year when it is not this year's. The
// server writes the same (accounts/formatting.py), so both are built from parts
// here rather than left to the browser's locale data.

const formatter = (options) => new Intl.DateTimeFormat('en-US', { timeZone: TZ, ...options });
const PARTS = formatter({
  weekday: 'short', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
  hourCycle: 'h23',
});
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function parts(date) {
  const out = {};
  for (const p of PARTS.formatToParts(date)) out[p.type] = p.value;
  return out;
}

/** YYYY-MM-DD of an instant in the business time zone. */
export function dayKey(value) {
  const p = parts(new Date(value));
  return `${p.year}-${p.month}-${p.day}`;
}

export const todayKey = () => dayKey(Date.now());

/** The value a datetime-local input shows for an instant, in the business zone. */
export function inputValue(value) {
  const p = parts(new Date(value));
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}`;
}

/** "1:30 PM" */
export function formatTime(iso) {
  const p = parts(new Date(iso));
  const hour = Number(p.hour) % 24;
  return `${hour % 12 || 12}:${p.minute} ${hour < 12 ? 'AM' : 'PM'}`;
}

/** "Wed, Dec 2" (with the year when it is not this year's) */
export function formatDay(iso) {
  const p = parts(new Date(iso));
  const text = `${p.weekday}, ${MONTHS[Number(p.month) - 1]} ${Number(p.day)}`;
  return p.year === todayKey().slice(0, 4) ? text : `${text}, ${p.year}`;
}

/** "Wed, Dec 2, 1:30 PM", or "1:30 PM" when it is today (unless `alwaysDate`). */
export function formatWhen(iso, { alwaysDate = false } = {}) {
  if (!iso) return '';
  if (!alwaysDate && dayKey(iso) === todayKey()) return formatTime(iso);
  return `${formatDay(iso)}, ${formatTime(iso)}`;
}

/** "Wed, Dec 2, 1:30 PM – 2:30 PM"; both dates when it crosses midnight. */
export function formatRange(startIso, endIso) {
  if (!startIso) return '';
  if (!endIso) return formatWhen(startIso);
  if (dayKey(startIso) === dayKey(endIso)) return `${formatWhen(startIso)} – ${formatTime(endIso)}`;
  return `${formatWhen(startIso, { alwaysDate: true })} – ${formatWhen(endIso, { alwaysDate: true })}`;
}

/** "in 45 min", "in 3 h 10 min", "in 2 days", "started 5 min ago" */
export function startsIn(iso) {
  const minutes = Math.round((Date.parse(iso) - Date.now()) / 60000);
  const span = (m) => {
    if (m < 60) return `${m} min`;
    if (m < 24 * 60) return `${Math.floor(m / 60)} h${m % 60 ? ` ${m % 60} min` : ''}`;
    const days = Math.round(m / (24 * 60));
    return `${days} day${days === 1 ? '' : 's'}`;
  };
  if (minutes <= 0) return minutes === 0 ? 'starting now' : `started ${span(-minutes)} ago`;
  return `in ${span(minutes)}`;
}

/** How soon an appointment starts, kept current: "Starts in 45 min". */
export function startsInNode(iso) {
  const node = h('span', { class: 'starts-in', dataset: { startsAt: iso } });
  tickStartsIn(node);
  return node;
}

function tickStartsIn(node) {
  const at = Date.parse(node.dataset.startsAt);
  const left = (at - Date.now()) / 60000;
  const text = startsIn(node.dataset.startsAt);
  const label = text.startsWith('started') || text === 'starting now' ? text[0].toUpperCase() + text.slice(1)
    : `Starts ${text}`;
  if (node.textContent !== label) node.textContent = label;
  node.className = `starts-in${left < 60 ? ' soon' : left < 180 ? ' today' : ''}`;
}

export function timeNode(iso, text) {
  return h('time', { datetime: iso }, text || formatWhen(iso));
}

function parseOffset(text) {
  const m = /^([+-])(\d{2}):?(\d{2})$/.exec(text || '');
  return m ? (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) : 0;
}

function formatOffset(minutes) {
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.abs(minutes);
  return `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

const SERVER_OFFSET = parseOffset(PAGE.utc_offset);

/** The zone's offset at an instant; the server's current one when Intl cannot say. */
function offsetAt(ms) {
  try {
    const name = new Intl.DateTimeFormat('en-US', { timeZone: TZ, timeZoneName: 'longOffset' })
      .formatToParts(new Date(ms)).find((p) => p.type === 'timeZoneName').value;
    if (name === 'GMT') return 0;
    const m = /^GMT([+-]\d{2}:\d{2})$/.exec(name);
    return m ? parseOffset(m[1]) : SERVER_OFFSET;
  } catch {
    return SERVER_OFFSET;
  }
}

/** A datetime-local value (a wall time in the business zone) as ISO 8601 with its offset. */
export function zonedIso(localValue) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?/.exec(localValue || '');
  if (!m) return null;
  const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
  // The offset depends on the instant, which depends on the offset: two rounds settle it.
  let offset = offsetAt(wall - SERVER_OFFSET * 60000);
  offset = offsetAt(wall - offset * 60000);
  return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6] || '00'}${formatOffset(offset)}`;
}

// --- Status badges -----------------------------------------------------------------

export const STATUS_LABELS = {
  pending: 'Pending', confirmed: 'Confirmed', rejected: 'Rejected',
  in_progress: 'In progress', completed: 'Completed', cancelled: 'Cancelled',
};

export const CANCELLATION_LABELS = {
  operator: 'Cancelled by an operator',
  response_timeout: 'No response before the deadline',
  no_available_therapist: 'No therapist available',
};

export const EVENT_LABELS = {
  created: 'Booked', assigned: 'Assigned', accepted: 'Accepted', rejected: 'Rejected',
  rejection_accepted: 'Rejection accepted', rejection_denied: 'Rejection denied', started: 'Started',
  completed: 'Completed', cancelled: 'Cancelled', timed_out: 'Timed out',
  no_available_therapist: 'Cancelled: no therapist available',
  reassigned: 'Reassigned', rescheduled: 'Rescheduled', edited: 'Place or notes changed',
  delivered: 'Offer delivered to the therapist', seen: 'Offer seen by the therapist',
  held: 'Assign by hand',
};

// A rejection's reason code, as the reject dialog offers it and the Reviews tab shows it.
export const REASON_LABELS = {
  schedule_conflict: 'Schedule conflict', too_far: 'Too far', client_concern: 'Client concern', health: 'Health',
  other: 'Other',
};

export function reasonBadge(code) {
  return code ? h('span', { class: `reason-badge reason-${code}` }, REASON_LABELS[code] || code) : null;
}

export function statusBadge(status) {
  return h('span', { class: `status status-${status}` }, STATUS_LABELS[status] || status);
}

// --- Countdowns --------------------------------------------------------------------

function clock(totalSeconds) {
  const s = Math.max(0, Math.floor(totalSeconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const seconds = String(s % 60).padStart(2, '0');
  return hours ? `${hours}:${String(minutes).padStart(2, '0')}:${seconds}` : `${minutes}:${seconds}`;
}

export function countdownTone(deadlineAt) {
  const left = (deadlineAt - Date.now()) / 1000;
  if (left <= 0) return 'overdue';
  if (left < 300) return 'danger';
  if (left < 600) return 'warn';
  return 'ok';
}

function tick(node) {
  const deadlineAt = Number(node.dataset.deadlineAt);
  const left = (deadlineAt - Date.now()) / 1000;
  const tone = countdownTone(deadlineAt);
  const text = left <= 0 ? `Overdue by ${clock(-left)}` : `${clock(left)} left to answer`;
  if (node.textContent !== text) node.textContent = text;
  node.className = `countdown cd-${tone}`;
  const card = node.closest('.appt-card');
  if (card) {
    card.classList.remove('tone-ok', 'tone-warn', 'tone-danger', 'tone-overdue');
    card.classList.add(`tone-${tone}`);
  }
}

/** A live countdown to the deadline (computed on arrival from seconds_to_deadline,
 * so a wrong clock on this device does not matter). */
export function countdown(appointment) {
  const node = h('span', { class: 'countdown', dataset: { deadlineAt: String(appointment._deadlineAt) } });
  tick(node);
  return node;
}

setInterval(() => {
  document.querySelectorAll('.countdown[data-deadline-at]').forEach(tick);
  document.querySelectorAll('.starts-in[data-starts-at]').forEach(tickStartsIn);
}, 1000);

// --- Toasts ----------------------------------------------------------------------------
// At most two at a time (the oldest goes), clear of the buttons: at the top of a
// phone's screen, where no card's actions sit under a thumb. A tap anywhere on one
// or a sideways swipe dismisses it.

const MAX_TOASTS = 2;
const SWIPE_PX = 60;

/** `message` is text or nodes (a link to an appointment, say). */
export function toast(message, { kind = 'info', timeout = 7000 } = {}) {
  const box = document.getElementById('toasts');
  if (!box) return;
  const dismiss = () => item.remove();
  const item = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : null },
    h('p', null, message),
    h('button', { type: 'button', class: 'ghost', onclick: dismiss }, 'Dismiss'));
  // A tap anywhere dismisses it (a link in it is followed too).
  item.addEventListener('click', dismiss);
  let startX = null;
  item.addEventListener('pointerdown', (event) => { startX = event.clientX; });
  item.addEventListener('pointermove', (event) => {
    if (startX !== null) item.style.transform = `translateX(${event.clientX - startX}px)`;
  });
  const release = (event) => {
    if (startX === null) return;
    const moved = event.clientX - startX;
    startX = null;
    if (Math.abs(moved) >= SWIPE_PX) dismiss();
    else item.style.transform = '';
  };
  item.addEventListener('pointerup', release);
  item.addEventListener('pointercancel', () => { startX = null; item.style.transform = ''; });
  box.append(item);
  while (box.children.length > MAX_TOASTS) box.firstElementChild.remove();
  if (timeout) setTimeout(dismiss, timeout);
}

// --- Modal dialogs -------------------------------------------------------------------------

let dialogCount = 0;

/**
 * A modal <dialog>: focus moves into it, Escape closes it, focus returns to the
 * opener. `fields` are text inputs ({name, label, required, multiline, maxLength,
 * hint}); the confirm button stays disabled while a required field is blank.
 * `onConfirm(values)` may throw: its error is shown inside the dialog, which
 * stays open. `content` is a node, or a function given {close, showError} that
 * returns one (for dialogs whose own buttons act); `after` is a node placed after
 * the fields (more choices that the text comes before). Resolves true once
 * confirmed, false when dismissed.
 */
export function openDialog({
  title, intro, content, fields = [], confirmLabel, confirmClass = 'primary', cancelLabel = 'Back',
  onConfirm, isValid = () => true, wide = false, after = null,
}) {
  dialogCount += 1;
  const id = `dlg-${dialogCount}`;
  const opener = document.activeElement;
  const dialog = h('dialog', { class: `modal${wide ? ' wide' : ''}`, 'aria-labelledby': `${id}-title` });
  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  const inputs = fields.map((field, i) => {
    const inputId = `${id}-f${i}`;
    const attrs = {
      id: inputId, name: field.name, maxlength: field.maxLength || 500,
      required: !!field.required, 'aria-describedby': field.hint ? `${inputId}-hint` : null,
    };
    const input = field.multiline ? h('textarea', attrs) : h('input', { ...attrs, type: 'text' });
    if (field.value) input.value = field.value;
    return { field, input, wrap: h('div', { class: 'field' },
      h('label', { for: inputId }, field.label),
      input,
      field.hint ? h('p', { class: 'hint', id: `${inputId}-hint` }, field.hint) : null) };
  });
  const valid = () => isValid() && inputs.every(({ field, input }) => !field.required || input.value.trim() !== '');
  let confirmed = false;
  const controls = {
    close: () => { confirmed = true; dialog.close(); },
    showError: (err) => {
      error.textContent = err ? errorText(err) : '';
      error.hidden = !err;
    },
  };
  const confirm = confirmLabel ? h('button', { type: 'submit', class: confirmClass }, confirmLabel) : null;
  const dismiss = h('button', { type: 'button', class: 'secondary', onclick: () => dialog.close() },
    confirmLabel ? cancelLabel : 'Close');
  const form = h('form', { novalidate: true },
    h('h2', { id: `${id}-title` }, title),
    intro ? h('p', null, intro) : null,
    typeof content === 'function' ? content(controls) : content || null,
    inputs.map((i) => i.wrap),
    after,
    error,
    h('div', { class: 'dialog-actions' }, dismiss, confirm));
  dialog.append(form);

  const refresh = () => { if (confirm) confirm.disabled = !valid(); };
  form.addEventListener('input', refresh);
  form.addEventListener('change', refresh);
  refresh();

  return new Promise((resolve) => {
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (!confirm || !valid() || confirm.disabled) return;
      const values = Object.fromEntries(inputs.map(({ field, input }) => [field.name, input.value.trim()]));
      setBusy(confirm, true);
      controls.showError(null);
      try {
        await onConfirm(values);
        controls.close();
      } catch (err) {
        controls.showError(err);
        setBusy(confirm, false);
        refresh();
      }
    });
    dialog.addEventListener('close', () => {
      dialog.remove();
      const target = opener && opener.isConnected ? opener : document.getElementById('main');
      if (target && target.focus) target.focus();
      resolve(confirmed);
    });
    document.body.append(dialog);
    dialog.showModal();
    const first = dialog.querySelector('[autofocus], input, select, textarea') || dismiss;
    first.focus();
  });
}

// --- The appointments a page knows about ------------------------------------------------------

/**
 * Applies snapshots from the API, the socket and the catch-up feed in any order
 * without going back in time: a snapshot older (updated_at) than the one held is
 * ignored. A bare {id, status, therapist: null, is_mine: false} means the
 * appointment is no longer this viewer's: it is dropped.
 */
export class AppointmentStore {
  constructor() {
    this.items = new Map();
    this.removedAt = new Map();
  }

  get(id) { return this.items.get(id); }

  values() { return [...this.items.values()]; }

  /** Returns true when what the page shows changed. */
  apply(snapshot, { eventId = 0, fromList = false } = {}) {
    if (!snapshot || !snapshot.id) return false;
    if (snapshot.is_mine === false || !snapshot.client) {
      this.removedAt.set(snapshot.id, Math.max(eventId, this.removedAt.get(snapshot.id) || 0));
      return this.items.delete(snapshot.id);
    }
    if (!fromList && eventId && eventId <= (this.removedAt.get(snapshot.id) || -1)) return false;
    const version = Date.parse(snapshot.updated_at) || 0;
    const held = this.items.get(snapshot.id);
    if (held && held._version > version) return false;
    if (held && held._version === version && held.status === snapshot.status && !fromList) return false;
    const item = { ...snapshot, _version: version };
    if (snapshot.seconds_to_deadline !== null && snapshot.seconds_to_deadline !== undefined) {
      const fresh = Date.now() + snapshot.seconds_to_deadline * 1000;
      // Keep the earlier estimate for the same deadline, so the countdown never jumps back.
      item._deadlineAt = held && held.response_deadline === snapshot.response_deadline && held._deadlineAt
        ? Math.min(held._deadlineAt, fresh) : fresh;
    }
    this.items.set(snapshot.id, item);
    this.removedAt.delete(snapshot.id);
    return true;
  }

  delete(id) { return this.items.delete(id); }
}

/** Renders `items` into `container`, reusing each item's node while its version is unchanged,
 * so a live update does not steal focus from the card someone is using. */
export function renderKeyed(container, items, key, version, build) {
  const old = new Map();
  for (const child of [...container.children]) {
    if (child.dataset.key) old.set(child.dataset.key, child);
    else child.remove();
  }
  let previous = null;
  for (const item of items) {
    const k = String(key(item));
    const v = String(version(item));
    let node = old.get(k);
    old.delete(k);
    if (!node || node.dataset.version !== v) {
      const fresh = build(item);
      fresh.dataset.key = k;
      fresh.dataset.version = v;
      if (node) {
        const focused = node.contains(document.activeElement) ? document.activeElement : null;
        node.replaceWith(fresh);
        if (focused && focused.dataset.action) {
          const again = fresh.querySelector(`[data-action="${focused.dataset.action}"]`);
          if (again) again.focus();
        }
      }
      node = fresh;
    }
    const expectedPosition = previous ? previous.nextElementSibling : container.firstElementChild;
    if (node !== expectedPosition) {
      if (previous) previous.after(node);
      else container.prepend(node);
    }
    previous = node;
  }
  for (const node of old.values()) node.remove();
  container.removeAttribute('aria-busy');
}

// --- Notifications (the bell, the list, toasts) ---------------------------------------------------

/**
 * A notification's words, linked to what they are about: the whole message to its
 * appointment, or, for a digest (appointment null), each "#id" it names.
 * `link` is {href(id), open(id)}: a plain click opens the appointment on this page.
 */
export function notificationText(n, link) {
  if (!link) return [n.message];
  const anchor = (id, text) => h('a', {
    href: link.href(id),
    class: 'appt-link',
    dataset: { appointmentLink: id },
    onclick: (event) => {
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      link.open(id);
    },
  }, text);
  if (n.appointment) return [anchor(n.appointment, n.message)];
  const nodes = [];
  let last = 0;
  for (const match of n.message.matchAll(/#(\d+)/g)) {
    nodes.push(n.message.slice(last, match.index), anchor(Number(match[1]), match[0]));
    last = match.index + match[0].length;
  }
  nodes.push(n.message.slice(last));
  return nodes;
}

export class Notifications {
  /** `link`: how this page opens an appointment ({href(id), open(id)}), see notificationText. */
  constructor(root, { link = null } = {}) {
    this.root = root;
    this.link = link;
    this.list = root.querySelector('[data-notification-list]');
    this.empty = root.querySelector('[data-notification-empty]');
    this.more = root.querySelector('[data-notification-more]');
    this.readAll = root.querySelector('[data-read-all]');
    this.items = new Map();
    this.loaded = false;
    this.nextPage = null;
    this.maxId = 0;
    this.setUnread(PAGE.unread || 0);
    this.readAll.addEventListener('click', () => this.markAllRead());
    this.more.addEventListener('click', () => this.load(this.nextPage));
  }

  setUnread(count) {
    this.unread = count;
    // The server counts up to its cap; from there on the bell says "99+".
    const cap = PAGE.unread_cap || Infinity;
    const shown = count >= cap ? `${cap - 1}+` : String(count);
    document.querySelectorAll('[data-unread]').forEach((node) => {
      node.textContent = shown;
      if (node.closest('.bell')) node.hidden = count === 0;
    });
    document.querySelectorAll('.bell').forEach((bell) => {
      bell.setAttribute('title', count ? `${shown} unread notification${count === 1 ? '' : 's'}` : 'Notifications');
    });
  }

  async load(page = 1) {
    const data = await api(`/api/notifications/?page_size=50&page=${page}`);
    // What the socket brought while this page was on its way is newer than the
    // page, and so is the unread count that came with it: both are kept.
    let arrived = [];
    if (page === 1) {
      const newest = data.results.reduce((max, n) => Math.max(max, n.id), 0);
      arrived = [...this.items.values()].filter((n) => n.id > newest);
      this.items.clear();
      for (const n of arrived) this.items.set(n.id, n);
    }
    for (const n of data.results) this.items.set(n.id, n);
    this.nextPage = data.next ? page + 1 : null;
    this.loaded = true;
    if (!arrived.length) this.setUnread(data.unread);
    this.render();
  }

  /** After a catch-up found events the socket missed: toast what is new since the last look. */
  async refresh() {
    const before = this.maxId;
    const data = await api('/api/notifications/?page_size=50');
    for (const n of data.results) {
      if (before && n.id > before && !n.is_read && !this.items.has(n.id)) toast(notificationText(n, this.link));
      this.items.set(n.id, n);
    }
    this.setUnread(data.unread);
    this.render();
  }

  /** A {"type": "notification"} message from the socket. */
  receive(message) {
    const n = message.notification;
    const isNew = !this.items.has(n.id);
    this.items.set(n.id, n);
    this.setUnread(message.unread);
    // An item someone else dealt with comes back read: it updates in place, no toast.
    if (isNew && !n.is_read) toast(notificationText(n, this.link));
    this.render();
  }

  async markRead(id, button) {
    setBusy(button, true);
    try {
      const data = await api(`/api/notifications/${id}/read/`, { method: 'POST' });
      this.items.set(id, data.notification);
      this.setUnread(data.unread);
      this.render();
      // The button is gone: keep the keyboard in the list, on the next unread item.
      const next = this.list.querySelector('button[data-action="read"]');
      const heading = this.root.querySelector('h2');
      if (next) next.focus();
      else if (heading) {
        heading.setAttribute('tabindex', '-1');
        heading.focus();
      }
    } catch (err) {
      setBusy(button, false);
      toast(errorText(err), { kind: 'error' });
    }
  }

  async markAllRead() {
    setBusy(this.readAll, true);
    try {
      const data = await api('/api/notifications/read_all/', { method: 'POST' });
      const now = new Date().toISOString();
      for (const n of this.items.values()) if (!n.is_read) { n.is_read = true; n.read_at = now; }
      this.setUnread(data.unread);
      this.render();
    } catch (err) {
      toast(errorText(err), { kind: 'error' });
    } finally {
      setBusy(this.readAll, false);
    }
  }

  render() {
    for (const id of this.items.keys()) this.maxId = Math.max(this.maxId, id);
    if (!this.loaded) return;
    // Newest first; unread ones stand out by colour, weight and a word.
    const items = [...this.items.values()].sort((a, b) => b.id - a.id);
    renderKeyed(this.list, items, (n) => n.id, (n) => (n.is_read ? 'r' : 'u'), (n) => h('li',
      { class: `item${n.is_read ? '' : ' unread'}` },
      h('p', { class: 'msg' },
        n.is_read ? null : h('span', { class: 'tag-unread' }, 'Unread '),
        notificationText(n, this.link),
        h('span', { class: 'meta' }, timeNode(n.created_at))),
      n.is_read ? null : h('button', {
        type: 'button', class: 'secondary small', dataset: { action: 'read' },
        onclick: (event) => this.markRead(n.id, event.currentTarget),
      }, 'Mark read', h('span', { class: 'sr-only' }, `: ${n.message.slice(0, 60)}`))));
    show(this.empty, items.length === 0);
    show(this.more, !!this.nextPage);
    this.readAll.disabled = this.unread === 0;
  }
}
