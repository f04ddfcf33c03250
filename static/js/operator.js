// The operator dashboard: reviews, timeouts (with the sweep and the disabled
// therapists), all appointments (filters, booking, assigning, cancelling,
// history) and notifications, kept current by live.js.

import {
  AppointmentStore, CANCELLATION_LABELS, EVENT_LABELS, Notifications, PAGE, TZ, api, apiAll, countdown, countdownTone,
  errorText, formatRange, formatTime, formatWhen, h, inputValue, openDialog, renderKeyed, setBusy, show, statusBadge, timeNode,
  toast, zonedIso,
} from './common.js';
import { startLive } from './live.js';
import { mountOfferChain } from './rules.js'; // re-offer: the offer chain and "Assign by hand"

const $ = (id) => document.getElementById(id);
const TAB_TITLES = { reviews: 'Reviews', timeouts: 'Timeouts', all: 'All appointments', notifications: 'Notifications' };
const BUSY = new Set(['pending', 'confirmed', 'rejected', 'in_progress']);
const PAGE_SIZE = 25;

const store = new AppointmentStore();
const notifications = new Notifications($('panel-notifications'));
const state = {
  tab: TAB_TITLES[PAGE.tab] ? PAGE.tab : 'reviews',
  queuesLoaded: false,
  all: { loaded: false, loading: false, page: 1, ids: [], count: 0, hasNext: false, stale: false },
  disabled: [],
};

// --- Small builders -----------------------------------------------------------

function fact(label, ...value) {
  return [h('dt', null, label), h('dd', null, ...value)];
}

function actionButton(label, action, onclick, cls = 'secondary', srText = '') {
  return h('button', { type: 'button', class: cls, dataset: { action }, onclick },
    label, srText ? h('span', { class: 'sr-only' }, ` ${srText}`) : null);
}

function cardHead(a, headingId) {
  return h('header', { class: 'appt-head' },
    statusBadge(a.status),
    h('h3', { id: headingId }, a.client.name),
    h('span', { class: 'appt-id' }, `#${a.id}`));
}

function whenNode(a) {
  return h('p', { class: 'appt-time' }, timeNode(a.starts_at, formatRange(a.starts_at, a.ends_at)));
}

// --- Tabs ---------------------------------------------------------------------

function switchTab(tab, { push = true } = {}) {
  const next = TAB_TITLES[tab] ? tab : 'reviews';
  state.tab = next;
  document.querySelectorAll('.tabs a[data-tab]').forEach((link) => {
    if (link.dataset.tab === next) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  });
  document.querySelectorAll('[data-panel]').forEach((panel) => { panel.hidden = panel.dataset.panel !== next; });
  document.title = `${TAB_TITLES[next]} · Operator · Royal Care Scheduling`;
  if (push) history.pushState(null, '', urlFor(next));
  ensureLoaded(next);
}

function urlFor(tab) {
  const url = new URL(window.location.href);
  url.search = '';
  url.searchParams.set('tab', tab);
  if (tab === 'all') {
    for (const [key, value] of Object.entries(filterValues())) if (value) url.searchParams.set(key, value);
    if (state.all.page > 1) url.searchParams.set('page', String(state.all.page));
  }
  return url;
}

function ensureLoaded(tab) {
  if (tab === 'all' && (!state.all.loaded || state.all.stale)) loadAll();
  if (tab === 'notifications' && !notifications.loaded) {
    notifications.load().catch((err) => toast(errorText(err), { kind: 'error' }));
  }
}

document.addEventListener('click', (event) => {
  const link = event.target.closest('a[data-tab]');
  if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  switchTab(link.dataset.tab);
});

window.addEventListener('popstate', () => {
  const params = new URLSearchParams(window.location.search);
  readFilters(params);
  state.all.stale = true;
  switchTab(params.get('tab') || 'reviews', { push: false });
});

// --- Reviews and timeouts (both fed from the store) ----------------------------------

async function loadQueues() {
  try {
    const { results } = await apiAll('/api/scheduling/appointments/?status=pending,rejected&page_size=200');
    for (const a of results) store.apply(a, { fromList: true });
    state.queuesLoaded = true;
    renderQueues();
  } catch (err) {
    for (const id of ['reviews-list', 'timeouts-list']) {
      $(id).replaceChildren(h('p', { class: 'error', role: 'alert' }, `Could not load: ${errorText(err)}`));
    }
  }
}

function rejectedAt(a) {
  return Date.parse((a.latest_rejection && a.latest_rejection.created_at) || a.updated_at) || 0;
}

function renderQueues() {
  if (!state.queuesLoaded) return;
  const all = store.values();
  const reviews = all.filter((a) => a.status === 'rejected').sort((a, b) => rejectedAt(a) - rejectedAt(b));
  const waiting = all.filter((a) => a.status === 'pending' && a.therapist)
    .sort((a, b) => (a._deadlineAt || 0) - (b._deadlineAt || 0));
  const unassigned = all.filter((a) => a.status === 'pending' && !a.therapist).length;
  renderKeyed($('reviews-list'), reviews, (a) => a.id, (a) => a._version, reviewCard);
  show($('reviews-empty'), reviews.length === 0);
  renderKeyed($('timeouts-list'), waiting, (a) => a.id, (a) => a._version, timeoutCard);
  show($('timeouts-empty'), waiting.length === 0);
  setCount('reviews', reviews.length);
  setCount('timeouts', waiting.length);
  setCount('unassigned', unassigned);
}

function setCount(name, value) {
  document.querySelectorAll(`[data-count="${name}"]`).forEach((node) => {
    node.firstChild.nodeValue = String(value);
  });
}

function reviewCard(a) {
  const r = a.latest_rejection || {};
  const headingId = `review-${a.id}`;
  return h('article', { class: 'appt-card', 'aria-labelledby': headingId, dataset: { appointmentId: a.id } },
    cardHead(a, headingId),
    whenNode(a),
    h('dl', { class: 'facts' },
      fact('Therapist', a.therapist ? a.therapist.name : '—'),
      fact('Service', a.service.name),
      fact('Location', a.location),
      fact('Rejected', r.created_at ? formatWhen(r.created_at) : '—')),
    h('p', { class: 'quote' }, h('strong', null, 'Reason: '), r.reason || 'No reason recorded.'),
    h('div', { class: 'actions' },
      actionButton('Accept rejection', 'accept-rejection', () => reviewDialog(a.id, 'accept'), 'primary'),
      actionButton('Deny rejection', 'deny-rejection', () => reviewDialog(a.id, 'deny'), 'danger'),
      actionButton('Details', 'details', () => detailsDialog(a.id), 'ghost')));
}

function timeoutCard(a) {
  const headingId = `timeout-${a.id}`;
  return h('article', {
    class: `appt-card tone-${countdownTone(a._deadlineAt)}`, 'aria-labelledby': headingId, dataset: { appointmentId: a.id },
  },
    cardHead(a, headingId),
    h('p', null, countdown(a), ' ', h('span', { class: 'muted small' }, `due ${formatTime(a.response_deadline)}`)),
    whenNode(a),
    h('dl', { class: 'facts' },
      fact('Therapist', a.therapist.name),
      fact('Service', a.service.name),
      fact('Location', a.location)),
    h('div', { class: 'actions' },
      actionButton('Details', 'details', () => detailsDialog(a.id), 'ghost'),
      actionButton('Cancel appointment', 'cancel', () => cancelDialog(a.id), 'secondary')));
}

async function reviewDialog(id, decision) {
  const a = store.get(id);
  if (!a) return;
  const therapist = a.therapist ? a.therapist.name : 'the therapist';
  const accept = decision === 'accept';
  await openDialog({
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
      const updated = await api(`/api/scheduling/appointments/${id}/review_rejection/`, {
        method: 'POST', body: { review_decision: decision, review_note: note },
      });
      applyAndRender(updated);
      if (updated.status === 'cancelled') toast(`#${id} was cancelled: no other therapist is available.`);
      else toast(accept ? `#${id} is back in the queue.` : `#${id} went back to ${therapist}.`);
    },
  });
}

// --- The sweep and the disabled therapists ---------------------------------------

$('run-sweep').addEventListener('click', async (event) => {
  const button = event.currentTarget;
  const result = $('sweep-result');
  setBusy(button, true);
  try {
    const counts = await api('/api/scheduling/appointments/auto_cancel_overdue/', { method: 'POST' });
    result.className = 'result';
    result.textContent = `Sweep done at ${formatTime(new Date().toISOString())}. Timed out: ${counts.timed_out} · `
      + `Therapists disabled: ${counts.therapists_disabled} · No therapist available: ${counts.no_available_therapist}`;
    if (counts.therapists_disabled) loadDisabled();
  } catch (err) {
    result.className = 'error';
    result.textContent = `The sweep failed: ${errorText(err)}`;
  } finally {
    result.hidden = false;
    setBusy(button, false);
  }
});

async function loadDisabled() {
  try {
    const { results } = await apiAll('/api/accounts/therapists/?is_active=false&page_size=200');
    state.disabled = results;
    renderDisabled();
  } catch (err) {
    $('disabled-list').replaceChildren(h('p', { class: 'error', role: 'alert' }, `Could not load: ${errorText(err)}`));
  }
}

function renderDisabled() {
  const items = [...state.disabled].sort((a, b) => Date.parse(b.disabled_at || 0) - Date.parse(a.disabled_at || 0));
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
      state.disabled = state.disabled.filter((t) => t.id !== therapist.id);
      renderDisabled();
      toast(`${therapist.name} is enabled again.`);
    },
  });
}

// --- All appointments ---------------------------------------------------------------

const filterForm = $('filters');

function filterValues() {
  return {
    q: $('f-q').value.trim(), status: $('f-status').value, therapist: $('f-therapist').value, date: $('f-date').value,
  };
}

function readFilters(params) {
  $('f-q').value = params.get('q') || '';
  $('f-status').value = params.get('status') || '';
  $('f-date').value = params.get('date') || '';
  const therapist = params.get('therapist') || '';
  const select = $('f-therapist');
  if (therapist && ![...select.options].some((o) => o.value === therapist)) {
    select.append(h('option', { value: therapist }, `Therapist #${therapist}`));
  }
  select.value = therapist;
  state.all.page = Math.max(1, Number(params.get('page')) || 1);
}

async function loadTherapists() {
  try {
    const { results } = await apiAll('/api/accounts/therapists/?page_size=200');
    const select = $('f-therapist');
    const chosen = select.value;
    select.replaceChildren(h('option', { value: '' }, 'Any therapist'),
      ...results.map((t) => h('option', { value: t.id }, t.is_active ? t.name : `${t.name} (disabled)`)));
    select.value = chosen;
  } catch (err) {
    toast(`Could not load the therapists: ${errorText(err)}`, { kind: 'error' });
  }
}

let searchTimer = null;
filterForm.addEventListener('input', (event) => {
  clearTimeout(searchTimer);
  const wait = event.target.type === 'search' ? 350 : 0;
  searchTimer = setTimeout(() => { state.all.page = 1; loadAll(); }, wait);
});
filterForm.addEventListener('submit', (event) => {
  event.preventDefault();
  state.all.page = 1;
  loadAll();
});
filterForm.addEventListener('reset', () => {
  setTimeout(() => { state.all.page = 1; loadAll(); });
});
$('page-prev').addEventListener('click', () => { state.all.page = Math.max(1, state.all.page - 1); loadAll(); });
$('page-next').addEventListener('click', () => { state.all.page += 1; loadAll(); });

let allRequest = 0;

async function loadAll() {
  const f = filterValues();
  const params = new URLSearchParams({ page: state.all.page, page_size: PAGE_SIZE, ordering: f.date ? 'starts_at' : '-updated_at' });
  for (const [key, value] of Object.entries(f)) if (value) params.set(key, value);
  const request = ++allRequest;
  state.all.loading = true;
  $('all-list').setAttribute('aria-busy', 'true');
  if (state.tab === 'all') history.replaceState(null, '', urlFor('all'));
  try {
    const data = await api(`/api/scheduling/appointments/?${params}`);
    if (request !== allRequest) return;
    for (const a of data.results) store.apply(a, { fromList: true });
    Object.assign(state.all, {
      ids: data.results.map((a) => a.id), count: data.count, hasNext: !!data.next, loaded: true, stale: false,
    });
    $('all-error').hidden = true;
    renderAll();
  } catch (err) {
    if (request !== allRequest) return;
    if (err.status === 404 && state.all.page > 1) {
      // The page emptied under us (filters changed, rows moved): go back to the first.
      state.all.page = 1;
      loadAll();
      return;
    }
    $('all-error').textContent = `Could not load the appointments: ${errorText(err)}`;
    $('all-error').hidden = false;
  } finally {
    if (request === allRequest) state.all.loading = false;
  }
}

function renderAll() {
  if (!state.all.loaded) return;
  const list = $('all-list');
  list.setAttribute('role', 'list');
  const items = state.all.ids.map((id) => store.get(id)).filter(Boolean);
  renderKeyed(list, items, (a) => a.id, (a) => a._version, appointmentRow);
  show($('all-empty'), items.length === 0);
  const pages = Math.max(1, Math.ceil(state.all.count / PAGE_SIZE));
  const total = `${state.all.count} appointment${state.all.count === 1 ? '' : 's'}`;
  $('page-info').textContent = `Page ${state.all.page} of ${pages} · ${total}`;
  $('page-prev').disabled = state.all.page <= 1;
  $('page-next').disabled = !state.all.hasNext;
  show($('pager'), state.all.count > 0);
}

function appointmentRow(a) {
  const label = (text) => h('span', { class: 'label' }, text);
  const canAssign = a.status === 'pending' && !a.therapist;
  return h('div', {
    class: 'row', role: 'listitem', 'aria-label': `Appointment #${a.id}, ${a.client.name}`,
    dataset: { appointmentId: a.id },
  },
    h('div', null, label('When'), timeNode(a.starts_at, formatRange(a.starts_at, a.ends_at))),
    h('div', null, label('Client'), h('strong', null, a.client.name), ' ', h('span', { class: 'appt-id' }, `#${a.id}`)),
    h('div', null, label('Service'), a.service.name),
    h('div', null, label('Therapist'), a.therapist ? a.therapist.name : h('em', null, 'Unassigned')),
    h('div', null, label('Status'), statusBadge(a.status)),
    h('div', { class: 'row-actions' },
      canAssign ? actionButton('Assign', 'assign', () => assignDialog(a.id), 'primary small', `#${a.id}`) : null,
      BUSY.has(a.status) ? actionButton('Cancel', 'cancel', () => cancelDialog(a.id), 'secondary small', `#${a.id}`) : null,
      actionButton('Details', 'details', () => detailsDialog(a.id), 'ghost small', `of #${a.id}`)));
}

// --- Booking, assigning, cancelling, history ------------------------------------------

function selectField(id, labelText, select, hint) {
  select.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, labelText), select,
    hint ? h('p', { class: 'hint' }, hint) : null);
}

$('new-appointment').addEventListener('click', async () => {
  let created = null;
  const search = h('input', { id: 'new-client-q', type: 'search', autocomplete: 'off', placeholder: 'Type a name or phone' });
  const client = h('select', { name: 'client', required: true }, h('option', { value: '' }, 'Loading clients…'));
  const service = h('select', { name: 'service', required: true }, h('option', { value: '' }, 'Loading services…'));
  const start = h('input', { id: 'new-start', type: 'datetime-local', required: true, min: inputValue(Date.now()) });
  const location = h('input', { id: 'new-location', type: 'text', required: true, maxlength: 500, autocomplete: 'off' });
  const notes = h('textarea', { id: 'new-notes', maxlength: 2000 });
  const clients = new Map();
  let autoLocation = '';

  async function findClients() {
    try {
      const data = await api(`/api/scheduling/clients/?page_size=50&q=${encodeURIComponent(search.value.trim())}`);
      const chosen = client.value;
      data.results.forEach((c) => clients.set(String(c.id), c));
      client.replaceChildren(h('option', { value: '' }, data.results.length ? 'Choose a client' : 'No client matches'),
        ...data.results.map((c) => h('option', { value: c.id }, `${c.name} · ${c.phone}`)));
      if ([...client.options].some((o) => o.value === chosen)) client.value = chosen;
      client.dispatchEvent(new Event('change', { bubbles: true }));
    } catch (err) {
      client.replaceChildren(h('option', { value: '' }, `Could not load clients: ${errorText(err)}`));
    }
  }

  let searchWait = null;
  search.addEventListener('input', () => { clearTimeout(searchWait); searchWait = setTimeout(findClients, 300); });
  client.addEventListener('change', () => {
    const c = clients.get(client.value);
    if (c && c.address && (!location.value || location.value === autoLocation)) {
      location.value = c.address;
      autoLocation = c.address;
    }
  });
  findClients();
  api('/api/scheduling/services/?page_size=200').then((data) => {
    const active = data.results.filter((s) => s.is_active);
    service.replaceChildren(h('option', { value: '' }, active.length ? 'Choose a service' : 'No active service'),
      ...active.map((s) => h('option', { value: s.id }, `${s.name} (${s.duration_minutes} min)`)));
  }).catch((err) => service.replaceChildren(h('option', { value: '' }, `Could not load services: ${errorText(err)}`)));

  const content = h('div', { class: 'stack' },
    h('div', { class: 'field' }, h('label', { for: 'new-client-q' }, 'Find client'), search),
    selectField('new-client', 'Client', client),
    selectField('new-service', 'Service', service),
    h('div', { class: 'field' }, h('label', { for: 'new-start' }, 'Start'), start,
      h('p', { class: 'hint' }, `Time in ${TZ.replace('_', ' ')} (UTC${PAGE.utc_offset}).`)),
    h('div', { class: 'field' }, h('label', { for: 'new-location' }, 'Location'), location),
    h('div', { class: 'field' }, h('label', { for: 'new-notes' }, 'Notes (optional)'), notes));

  const confirmed = await openDialog({
    title: 'New appointment',
    content,
    wide: true,
    confirmLabel: 'Create appointment',
    isValid: () => !!(client.value && service.value && start.value && location.value.trim()),
    onConfirm: async () => {
      created = await api('/api/scheduling/appointments/', {
        method: 'POST',
        body: {
          client: Number(client.value), service: Number(service.value), starts_at: zonedIso(start.value),
          location: location.value.trim(), notes: notes.value.trim(),
        },
      });
      applyAndRender(created);
      state.all.page = 1;
      loadAll();
    },
  });
  if (confirmed && created) assignDialog(created.id);
});

async function assignDialog(id) {
  const a = store.get(id);
  if (!a) return;
  const list = h('ul', { class: 'ranked', 'aria-busy': 'true' }, h('li', { class: 'loading' }, 'Finding available therapists…'));
  await openDialog({
    title: `Assign #${id}`,
    intro: `${a.client.name} · ${a.service.name} · ${formatRange(a.starts_at, a.ends_at)}. `
      + 'Only therapists who are free, qualified and available then are offered, best first.',
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
                toast(`#${id} assigned to ${t.name}; waiting for an answer by ${formatTime(updated.response_deadline)}.`);
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

async function cancelDialog(id) {
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
  if (e.data && e.data.reason) extra.push(`Reason: ${e.data.reason}`);
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

async function detailsDialog(id) {
  const body = h('div', { 'aria-busy': 'true' }, h('p', { class: 'loading' }, 'Loading…'));
  openDialog({
    title: `Appointment #${id}`,
    wide: true,
    content: body,
  });
  const fill = (a) => { // re-offer: run again by rules.js on each live change of this appointment
    applyAndRender(a);
    const r = a.latest_rejection;
    body.removeAttribute('aria-busy');
    body.replaceChildren(
      h('p', null, statusBadge(a.status), ' ', h('strong', null, formatRange(a.starts_at, a.ends_at))),
      h('dl', { class: 'facts' },
        fact('Client', a.client.name, a.client.phone ? [' · ', h('a', { href: `tel:${a.client.phone}` }, a.client.phone)] : null),
        fact('Service', `${a.service.name} (${a.service.duration_minutes} min)`),
        fact('Therapist', a.therapist ? a.therapist.name : 'Unassigned'),
        fact('Location', a.location),
        a.notes ? fact('Notes', a.notes) : null,
        a.response_deadline && a.status === 'pending' ? fact('Answer by', formatWhen(a.response_deadline)) : null,
        a.cancellation_reason ? fact('Cancelled', CANCELLATION_LABELS[a.cancellation_reason] || a.cancellation_reason,
          a.cancellation_note ? `: ${a.cancellation_note}` : '') : null,
        r ? fact('Last rejection', r.reason, r.review_decision ? ` (${r.review_decision === 'deny' ? 'denied' : 'accepted'}`
          + `${r.review_note ? `: ${r.review_note}` : ''})` : ' (waiting for review)') : null),
      h('h3', null, 'History'),
      h('ol', { class: 'history' }, a.history.map(historyItem)));
  };
  try {
    const a = await api(`/api/scheduling/appointments/${id}/`);
    fill(a);
    mountOfferChain(body, a, fill); // re-offer: the offer chain, "Assign by hand", live details
  } catch (err) {
    body.removeAttribute('aria-busy');
    body.replaceChildren(h('p', { class: 'error', role: 'alert' }, errorText(err)));
  }
}

// --- Live updates -----------------------------------------------------------------------

let renderQueued = false;

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderQueues();
    renderAll();
  });
}

function applyAndRender(snapshot, options) {
  if (store.apply(snapshot, options)) scheduleRender();
}

let allReloadTimer = null;
let disabledTimer = null;
let notificationsTimer = null;

function onEvent({ id, kind, appointment }) {
  document.dispatchEvent(new CustomEvent('appointment-event', { detail: { id, kind, appointment } })); // re-offer
  const changed = store.apply(appointment, { eventId: id });
  if (changed) scheduleRender();
  if (kind === 'timed_out') {
    clearTimeout(disabledTimer);
    disabledTimer = setTimeout(loadDisabled, 500);
  }
  if (state.all.loaded && !state.all.ids.includes(appointment.id)) {
    // Something this page of the list does not show yet (a new booking, say).
    if (state.tab === 'all') {
      clearTimeout(allReloadTimer);
      allReloadTimer = setTimeout(() => { if (!state.all.loading) loadAll(); }, 800);
    } else {
      state.all.stale = true;
    }
  }
}

function init() {
  readFilters(new URLSearchParams(window.location.search));
  loadQueues();
  loadDisabled();
  loadTherapists();
  ensureLoaded(state.tab);
  startLive({
    onEvent,
    onNotification: (message) => notifications.receive(message),
    onCaughtUp: () => {
      clearTimeout(notificationsTimer);
      notificationsTimer = setTimeout(() => notifications.refresh()
        .catch((err) => toast(`Could not update the notifications: ${errorText(err)}`, { kind: 'error' })), 300);
    },
  });
}

init();
