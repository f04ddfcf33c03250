// "My month so far" on the therapist page: the therapist's own offers,
// acceptance and median response time this month (GET /api/scheduling/insights/mine/,
// which only ever answers the caller's own figures). Reloaded, debounced, after
// the therapist's own offers and answers arrive live.
//
//   mountMyNumbers(container, { subscribe })

import { api, errorText, h } from './common.js';

const RELOAD_AFTER = 2000;
const CHANGES = new Set(['assigned', 'accepted', 'rejected', 'rejection_denied', 'timed_out', 'reassigned', 'rescheduled']);

function duration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const minutes = Math.floor(s / 60);
  if (minutes < 60) return s % 60 ? `${minutes} min ${s % 60} s` : `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function mountMyNumbers(container, { subscribe = () => {} } = {}) {
  if (!container) return;
  let request = 0;

  function figure(label, value, hint) {
    return h('div', { class: 'kpi' }, h('span', { class: 'kpi-value' }, value), h('span', { class: 'kpi-label' }, label),
      hint ? h('span', { class: 'kpi-hint' }, hint) : null);
  }

  async function load() {
    const mine = ++request;
    try {
      const f = await api('/api/scheduling/insights/mine/');
      if (mine !== request) return;
      const rate = f.acceptance_rate === null ? '—' : `${Math.round(f.acceptance_rate * 100)}%`;
      container.replaceChildren(
        h('div', { class: 'kpis', role: 'list' },
          figure('Offers', String(f.offers), `${f.accepted} accepted · ${f.rejected} rejected · ${f.timed_out} timed out`),
          figure('Accepted', rate),
          figure('Median response', duration(f.median_response_seconds), 'from the offer to your answer')),
        h('p', { class: 'muted small' }, 'Only you and the operators see these figures.'));
      for (const node of container.querySelectorAll('.kpi')) node.setAttribute('role', 'listitem');
    } catch (err) {
      if (mine !== request) return;
      container.replaceChildren(h('p', { class: 'error', role: 'alert' }, `Could not load your figures: ${errorText(err)}`));
    } finally {
      container.removeAttribute('aria-busy');
    }
  }

  let timer = null;
  subscribe(({ kind }) => {
    if (!CHANGES.has(kind)) return;
    clearTimeout(timer);
    timer = setTimeout(load, RELOAD_AFTER);
  });
  load();
}
