// All appointments: filters (kept in the address), pagination, booking a new
// appointment (then assigning it), assign / cancel / details on each row.

import {
  PAGE, TZ, api, apiAll, errorText, formatRange, h, inputValue, openDialog, renderKeyed, show, statusBadge, timeNode,
  toast, zonedIso,
} from '../common.js';
import { wireClientSearch } from '../booking.js';
import { assignDialog, cancelDialog, detailsDialog } from './dialogs.js';
import {
  $, BUSY, actionButton, applyAndRender, page, queue, setCount, store, tabUrl,
} from './shared.js';

const PAGE_SIZE = 25;
const list = { loaded: false, loading: false, page: 1, ids: [], count: 0, hasNext: false, stale: false };
const filterForm = $('filters');

// --- Filters and the address ------------------------------------------------------

function filterValues() {
  return {
    q: $('f-q').value.trim(), status: $('f-status').value, therapist: $('f-therapist').value, date: $('f-date').value,
  };
}

function urlParams(params) {
  for (const [key, value] of Object.entries(filterValues())) if (value) params.set(key, value);
  if (list.page > 1) params.set('page', String(list.page));
}

/** At start-up and on back/forward: the filters and page from the address. */
function restore(params) {
  $('f-q').value = params.get('q') || '';
  $('f-status').value = params.get('status') || '';
  $('f-date').value = params.get('date') || '';
  const therapist = params.get('therapist') || '';
  const select = $('f-therapist');
  if (therapist && ![...select.options].some((o) => o.value === therapist)) {
    select.append(h('option', { value: therapist }, `Therapist #${therapist}`));
  }
  select.value = therapist;
  list.page = Math.max(1, Number(params.get('page')) || 1);
  list.stale = true;
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

function listenToFilters() {
  let searchTimer = null;
  filterForm.addEventListener('input', (event) => {
    clearTimeout(searchTimer);
    const wait = event.target.type === 'search' ? 350 : 0;
    searchTimer = setTimeout(() => { list.page = 1; loadList(); }, wait);
  });
  filterForm.addEventListener('submit', (event) => {
    event.preventDefault();
    list.page = 1;
    loadList();
  });
  filterForm.addEventListener('reset', () => {
    setTimeout(() => { list.page = 1; loadList(); });
  });
  $('page-prev').addEventListener('click', () => { list.page = Math.max(1, list.page - 1); loadList(); });
  $('page-next').addEventListener('click', () => { list.page += 1; loadList(); });
}

// --- The list ------------------------------------------------------------------------

let listRequest = 0;

async function loadList() {
  const f = filterValues();
  // By start time: one day's in order, otherwise the latest start (the furthest ahead) first.
  const params = new URLSearchParams({ page: list.page, page_size: PAGE_SIZE, ordering: f.date ? 'starts_at' : '-starts_at' });
  for (const [key, value] of Object.entries(f)) if (value) params.set(key, value);
  const request = ++listRequest;
  list.loading = true;
  $('all-list').setAttribute('aria-busy', 'true');
  if (page.tab === 'all') history.replaceState(null, '', tabUrl('all'));
  try {
    const data = await api(`/api/scheduling/appointments/?${params}`);
    if (request !== listRequest) return;
    for (const a of data.results) store.apply(a, { fromList: true });
    Object.assign(list, {
      ids: data.results.map((a) => a.id), count: data.count, hasNext: !!data.next, loaded: true, stale: false,
    });
    $('all-error').hidden = true;
    render();
  } catch (err) {
    if (request !== listRequest) return;
    if (err.status === 404 && list.page > 1) {
      // The page emptied under us (filters changed, rows moved): go back to the first.
      list.page = 1;
      loadList();
      return;
    }
    $('all-error').textContent = `Could not load the appointments: ${errorText(err)}`;
    $('all-error').hidden = false;
  } finally {
    if (request === listRequest) list.loading = false;
  }
}

function render() {
  if (queue.loaded) {
    setCount('unassigned', store.values().filter((a) => a.status === 'pending' && !a.therapist).length);
  }
  if (!list.loaded) return;
  const container = $('all-list');
  container.setAttribute('role', 'list');
  const items = list.ids.map((id) => store.get(id)).filter(Boolean);
  renderKeyed(container, items, (a) => a.id, (a) => a._version, appointmentRow);
  show($('all-empty'), items.length === 0);
  const pages = Math.max(1, Math.ceil(list.count / PAGE_SIZE));
  const total = `${list.count} appointment${list.count === 1 ? '' : 's'}`;
  $('page-info').textContent = `Page ${list.page} of ${pages} · ${total}`;
  $('page-prev').disabled = list.page <= 1;
  $('page-next').disabled = !list.hasNext;
  show($('pager'), list.count > 0);
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

// --- Booking ------------------------------------------------------------------------------

function selectField(id, labelText, select, hint) {
  select.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, labelText), select,
    hint ? h('p', { class: 'hint' }, hint) : null);
}

async function newAppointment() {
  let created = null;
  const search = h('input', { id: 'new-client-q', type: 'search', autocomplete: 'off', placeholder: 'Type a name or phone' });
  const client = h('select', { name: 'client', required: true }, h('option', { value: '' }, 'Loading clients…'));
  const service = h('select', { name: 'service', required: true }, h('option', { value: '' }, 'Loading services…'));
  const start = h('input', { id: 'new-start', type: 'datetime-local', required: true, min: inputValue(Date.now()) });
  const location = h('input', { id: 'new-location', type: 'text', required: true, maxlength: 500, autocomplete: 'off' });
  const notes = h('textarea', { id: 'new-notes', maxlength: 2000 });
  wireClientSearch(search, client, location);
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
      list.page = 1;
      loadList();
    },
  });
  if (confirmed && created) assignDialog(created.id);
}

// --- Live ------------------------------------------------------------------------------------

let reloadTimer = null;

function onEvent({ appointment }) {
  if (list.loaded && !list.ids.includes(appointment.id)) {
    // Something this page of the list does not show yet (a new booking, say).
    if (page.tab === 'all') {
      clearTimeout(reloadTimer);
      reloadTimer = setTimeout(() => { if (!list.loading) loadList(); }, 800);
    } else {
      list.stale = true;
    }
  }
}

export default {
  name: 'all',
  title: 'All appointments',
  init() {
    listenToFilters();
    $('new-appointment').addEventListener('click', newAppointment);
    loadTherapists();
  },
  show() {
    if (!list.loaded || list.stale) loadList();
  },
  render,
  onEvent,
  urlParams,
  restore,
};
