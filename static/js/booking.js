// Booking a client with a chosen therapist at a chosen time (the day board's
// "click free time"). Create and assign happen in one request, so a therapist
// who cannot take it leaves nothing behind: the refusal is shown in the dialog.

import { PAGE, TZ, api, errorText, h, inputValue, openDialog, zonedIso } from './common.js';

function field(id, label, control, hint) {
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), control,
    hint ? h('p', { class: 'hint' }, hint) : null);
}

/**
 * The client picker of a booking dialog: typing in `search` looks clients up (by
 * name or phone), `client` lists them, and choosing one fills `location` with
 * their address unless someone typed another place.
 */
export function wireClientSearch(search, client, location) {
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

  let wait = null;
  search.addEventListener('input', () => { clearTimeout(wait); wait = setTimeout(findClients, 300); });
  client.addEventListener('change', () => {
    const c = clients.get(client.value);
    if (c && c.address && (!location.value || location.value === autoLocation)) {
      location.value = c.address;
      autoLocation = c.address;
    }
  });
  findClients();
}

/**
 * bookDialog({therapist: {id, name}, startsAt: ms}) -> the created appointment, or null.
 */
export async function bookDialog({ therapist, startsAt }) {
  let created = null;
  const search = h('input', { type: 'search', autocomplete: 'off', placeholder: 'Type a name or phone' });
  const client = h('select', { name: 'client', required: true }, h('option', { value: '' }, 'Loading clients…'));
  const service = h('select', { name: 'service', required: true }, h('option', { value: '' }, 'Loading services…'));
  const start = h('input', { type: 'datetime-local', required: true, min: inputValue(Date.now()), step: 300 });
  start.value = inputValue(startsAt);
  const location = h('input', { type: 'text', required: true, maxlength: 500, autocomplete: 'off' });
  const notes = h('textarea', { maxlength: 2000 });
  wireClientSearch(search, client, location);
  api('/api/scheduling/services/?page_size=200').then((data) => {
    // Only what this therapist is qualified to give.
    const offered = data.results.filter((s) => s.is_active && (s.therapists || []).includes(therapist.id));
    service.replaceChildren(
      h('option', { value: '' }, offered.length ? 'Choose a service' : `${therapist.name} is not qualified for any service`),
      ...offered.map((s) => h('option', { value: s.id }, `${s.name} (${s.duration_minutes} min)`)));
    if (offered.length === 1) service.value = String(offered[0].id);
    service.dispatchEvent(new Event('change', { bubbles: true }));
  }).catch((err) => service.replaceChildren(h('option', { value: '' }, `Could not load services: ${errorText(err)}`)));

  await openDialog({
    title: `Book with ${therapist.name}`,
    intro: `${therapist.name} gets the offer at once and must accept it within the response window.`,
    wide: true,
    content: h('div', { class: 'stack' },
      field('book-client-q', 'Find client', search),
      field('book-client', 'Client', client),
      field('book-service', 'Service', service),
      field('book-start', 'Start', start, `Time in ${TZ.replace('_', ' ')} (UTC${PAGE.utc_offset}).`),
      field('book-location', 'Location', location),
      field('book-notes', 'Notes (optional)', notes)),
    confirmLabel: `Book with ${therapist.name}`,
    isValid: () => !!(client.value && service.value && start.value && location.value.trim()),
    onConfirm: async () => {
      created = await api('/api/scheduling/appointments/', {
        method: 'POST',
        body: {
          client: Number(client.value), service: Number(service.value), starts_at: zonedIso(start.value),
          location: location.value.trim(), notes: notes.value.trim(), therapist: therapist.id,
        },
      });
    },
  });
  return created;
}
