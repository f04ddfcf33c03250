// "My week" on the therapist's page: their next 7 days (today included) as an
// agenda grouped by day, with the gap between consecutive jobs and, where the
// address changes, the time there is to travel (flagged when it is under the
// travel buffer). Read-only; it draws from the page's own store of appointments,
// so it costs no request and is as live as the rest of the page. Its items are
// marked data-week-appointment (not data-appointment-id, which names the cards).

import { PAGE, dayKey, formatDay, formatTime, h, statusBadge, todayKey } from './common.js';

const DAYS = 7;
const SHOWN = new Set(['pending', 'confirmed', 'in_progress']);
const BUFFER_MINUTES = Number.isFinite(Number(PAGE.travel_buffer_minutes)) ? Number(PAGE.travel_buffer_minutes) : 30;
const LABEL = { pending: 'Waiting for your answer' };

function shiftDay(key, days) {
  const [y, m, d] = key.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}

function place(text) {
  return (text || '').toLowerCase().replace(/\s+/g, ' ').trim();
}

function duration(minutes) {
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  if (!hours) return `${rest} min`;
  return rest ? `${hours} h ${rest} min` : `${hours} h`;
}

function gapItem(prev, next) {
  const minutes = Math.round((Date.parse(next.starts_at) - Date.parse(prev.ends_at)) / 60000);
  if (place(prev.location) === place(next.location)) {
    return minutes > 0 ? h('li', { class: 'wk-gap' }, `${duration(minutes)} free · same address`) : null;
  }
  const short = minutes < BUFFER_MINUTES;
  return h('li', { class: `wk-gap wk-travel${short ? ' is-short' : ''}` },
    minutes <= 0 ? `No time to travel to ${next.location}` : `${duration(minutes)} to travel to ${next.location}`,
    short ? h('span', { class: 'sub small' }, `Less than the ${BUFFER_MINUTES} minutes a move between addresses needs: `
      + 'tell an operator if you cannot make it.') : null);
}

function entry(a) {
  return h('li', { class: 'wk-item', dataset: { weekAppointment: a.id, status: a.status } },
    h('span', { class: 'wk-time' }, `${formatTime(a.starts_at)} – ${formatTime(a.ends_at)}`),
    h('span', { class: 'wk-what' },
      statusBadge(a.status), ' ', h('strong', null, a.client.name), ` · ${a.service.name}`,
      LABEL[a.status] ? h('span', { class: 'sub small muted' }, LABEL[a.status]) : null,
      h('span', { class: 'sub small' }, a.location)));
}

/** mountWeek(section) -> {render(appointments)}; `section` holds [data-week-list] and [data-week-empty]. */
export function mountWeek(section) {
  const list = section.querySelector('[data-week-list]');
  const empty = section.querySelector('[data-week-empty]');

  function render(appointments) {
    const first = todayKey();
    const last = shiftDay(first, DAYS - 1);
    const days = new Map();
    appointments
      .filter((a) => SHOWN.has(a.status) && dayKey(a.starts_at) >= first && dayKey(a.starts_at) <= last)
      .sort((a, b) => Date.parse(a.starts_at) - Date.parse(b.starts_at))
      .forEach((a) => {
        const key = dayKey(a.starts_at);
        if (!days.has(key)) days.set(key, []);
        days.get(key).push(a);
      });
    const tomorrow = shiftDay(first, 1);
    list.replaceChildren(...[...days.entries()].map(([key, items]) => {
      const label = key === first ? `Today, ${formatDay(items[0].starts_at)}`
        : key === tomorrow ? `Tomorrow, ${formatDay(items[0].starts_at)}` : formatDay(items[0].starts_at);
      const headingId = `wk-${key}`;
      const rows = [];
      items.forEach((a, i) => {
        if (i > 0) rows.push(gapItem(items[i - 1], a));
        rows.push(entry(a));
      });
      return h('section', { class: 'wk-day', 'aria-labelledby': headingId, dataset: { day: key } },
        h('h3', { id: headingId }, label,
          h('span', { class: 'muted small' }, ` · ${items.length} appointment${items.length === 1 ? '' : 's'}`)),
        h('ol', { class: 'wk-list' }, rows));
    }));
    list.removeAttribute('aria-busy');
    empty.hidden = days.size > 0;
  }

  return { render };
}
