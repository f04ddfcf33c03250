// The Insights tab of the operator dashboard: how offers fare over a range of
// business dates. A date range with 7 / 30 / 90-day presets, KPI tiles, charts
// (answers per therapist, rejections by reason, bookings and cancellations per
// day) each with a text alternative, the per-therapist table sortable by every
// column, and the same table as CSV. It loads when its panel is first shown and
// reloads (debounced) when appointment events arrive while it is on screen.
//
//   mountInsights(container, { subscribe })
//     container  an element inside the tab's panel ([data-panel]); its content is built here
//     subscribe  subscribe(listener): listener({id, kind, appointment}) for every live event
//
// Chart.js (static/vendor/chartjs, pinned, MIT) is imported on first use only.

import { REASON_LABELS, api, errorText, h, setBusy, show, todayKey } from './common.js';

const CHART_JS = new URL('../vendor/chartjs/chart.umd.js', import.meta.url);
const PRESETS = [7, 30, 90];
const DEFAULT_DAYS = 30;
const REFRESH_AFTER = 1500; // ms of quiet after the last event
const REFRESH_AT_LEAST_EVERY = 6000; // ms, however busy the feed
const TOP_THERAPISTS = 15; // in the chart; the table lists everyone
const COLOURS = {
  accepted: '#15803d', rejected: '#c2410c', timed_out: '#b42318', bookings: '#6b3fa0', cancelled: '#b42318',
  completed: '#15803d',
};
const REASON_COLOURS = {
  schedule_conflict: '#6b3fa0', too_far: '#0369a1', client_concern: '#c2410c', health: '#15803d', other: '#6b7280',
};
const COLUMNS = [
  { key: 'name', label: 'Therapist', text: true },
  { key: 'offers', label: 'Offers' },
  { key: 'accepted', label: 'Accepted' },
  { key: 'rejected', label: 'Rejected' },
  { key: 'timed_out', label: 'Timed out' },
  { key: 'acceptance_rate', label: 'Acceptance', format: (v) => percent(v) },
  { key: 'median_response_seconds', label: 'Median response', format: (v) => duration(v) },
];

let chartLibrary = null;

function loadChartJs() {
  // The UMD build sets window.Chart when imported as a module.
  if (!chartLibrary) chartLibrary = import(CHART_JS.href).then(() => window.Chart);
  return chartLibrary;
}

// --- Dates (calendar dates of the business zone, as YYYY-MM-DD) ------------------------------

const DATE_RE = /^\d{4}-\d{2}-\d{2}$/;

function addDays(key, days) {
  const [y, m, d] = key.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}

function daysBetween(from, to) {
  return Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / 86400000);
}

const DAY_LABEL = new Intl.DateTimeFormat('en-US', { timeZone: 'UTC', month: 'short', day: 'numeric' });
const DAY_LABEL_YEAR = new Intl.DateTimeFormat('en-US', { timeZone: 'UTC', month: 'short', day: 'numeric', year: 'numeric' });

function dayLabel(key, withYear = false) {
  return (withYear ? DAY_LABEL_YEAR : DAY_LABEL).format(new Date(`${key}T00:00:00Z`));
}

function rangeLabel(from, to) {
  if (from === to) return dayLabel(from, true);
  return `${dayLabel(from, from.slice(0, 4) !== to.slice(0, 4))} – ${dayLabel(to, true)}`;
}

// --- Numbers ------------------------------------------------------------------------------------

function percent(rate) {
  return rate === null || rate === undefined ? '—' : `${Math.round(rate * 100)}%`;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const minutes = Math.floor(s / 60);
  if (minutes < 60) return s % 60 ? `${minutes} min ${s % 60} s` : `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  return minutes % 60 ? `${hours} h ${minutes % 60} min` : `${hours} h`;
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

// --- Text alternatives ---------------------------------------------------------------------------

/** A chart's numbers as a table, for screen readers (its box is visually hidden:
 * a table itself would not shrink to the hidden size and would widen the page). */
function dataTable(caption, headers, rows) {
  return h('table', null,
    h('caption', null, caption),
    h('thead', null, h('tr', null, headers.map((text) => h('th', { scope: 'col' }, text)))),
    h('tbody', null, rows.map((row) => h('tr', null, row.map((cell, i) => (i === 0
      ? h('th', { scope: 'row' }, cell) : h('td', null, cell)))))));
}

// --- The tab -------------------------------------------------------------------------------------

export function mountInsights(container, { subscribe = () => {} } = {}) {
  if (!container) return null;
  const panel = container.closest('[data-panel]') || container;
  const params = new URLSearchParams(window.location.search);
  const today = todayKey();
  const state = {
    from: DATE_RE.test(params.get('from') || '') ? params.get('from') : addDays(today, -(DEFAULT_DAYS - 1)),
    to: DATE_RE.test(params.get('to') || '') ? params.get('to') : today,
    report: null,
    shown: '',  // the status line of the figures on screen
    sort: { key: 'offers', dir: 'desc' },
    request: 0,
    stale: true,
    loads: 0,
    charts: {},
  };

  // Controls.
  const fromInput = h('input', { id: 'insights-from', type: 'date', name: 'from', value: state.from, max: today, required: true });
  const toInput = h('input', { id: 'insights-to', type: 'date', name: 'to', value: state.to, max: today, required: true });
  const presetButtons = PRESETS.map((days) => h('button', {
    type: 'button', class: 'secondary small', 'aria-pressed': 'false', dataset: { days },
    onclick: () => choose(addDays(todayKey(), -(days - 1)), todayKey()),
  }, `Last ${days} days`));
  const csvLink = h('a', { class: 'button secondary small', download: '' }, 'Download CSV');
  const form = h('form', { class: 'insights-range', 'aria-label': 'Date range', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'insights-from' }, 'From'), fromInput),
    h('div', { class: 'field' }, h('label', { for: 'insights-to' }, 'To'), toInput),
    h('div', { class: 'presets', role: 'group', 'aria-label': 'Presets' }, presetButtons),
    h('div', { class: 'field actions-inline' }, csvLink));
  const status = h('p', { class: 'muted small', role: 'status', 'aria-live': 'polite' });
  const error = h('p', { class: 'error', role: 'alert', hidden: true });

  // KPI tiles.
  const kpis = {};
  const tile = (key, label, hint) => {
    kpis[key] = h('span', { class: 'kpi-value' }, '—');
    return h('li', { class: 'kpi', dataset: { kpi: key } }, kpis[key], h('span', { class: 'kpi-label' }, label),
      hint ? h('span', { class: 'kpi-hint' }, hint) : null);
  };
  const tiles = h('ul', { class: 'kpis', 'aria-label': 'Key figures' },
    tile('offers', 'Offers'),
    tile('acceptance', 'Acceptance rate', 'accepted ÷ offers'),
    tile('median', 'Median response', 'offer to accept or reject'),
    tile('timeouts', 'Timeouts', 'offers nobody answered'),
    tile('lost', 'Bookings lost', 'cancelled: no answer, or nobody free'));

  // Charts, each with a summary label and a hidden table.
  const chartCard = (key, title) => {
    const canvas = h('canvas', { role: 'img', 'aria-label': title });
    const alt = h('div', { class: 'chart-alt sr-only' });
    const empty = h('p', { class: 'empty small', hidden: true });
    const box = h('div', { class: 'chart-box' }, canvas);
    const card = h('figure', { class: 'chart-card', dataset: { chart: key } },
      h('figcaption', null, title), box, empty, alt);
    return { card, canvas, box, alt, empty, title };
  };
  const cards = {
    therapists: chartCard('therapists', 'Answers per therapist'),
    reasons: chartCard('reasons', 'Rejections by reason'),
    days: chartCard('days', 'Bookings and cancellations per day'),
  };

  // The per-therapist table.
  const tbody = h('tbody');
  const headerCells = COLUMNS.map((column) => h('th', {
    scope: 'col', 'aria-sort': 'none', class: column.text ? null : 'num', dataset: { key: column.key },
  }, h('button', { type: 'button', class: 'sort', onclick: () => sortBy(column.key) }, column.label,
    h('span', { class: 'sort-mark', 'aria-hidden': 'true' }))));
  const table = h('table', { class: 'data-table' },
    h('caption', null, 'Per therapist (sort by any column)'),
    h('thead', null, h('tr', null, headerCells)), tbody);
  const tableEmpty = h('p', { class: 'empty', hidden: true }, 'No therapists yet.');

  container.replaceChildren(
    form, status, error, tiles,
    h('div', { class: 'charts' }, Object.values(cards).map((c) => c.card)),
    h('h3', null, 'Therapists'),
    h('div', { class: 'table-wrap', role: 'region', 'aria-label': 'Per-therapist table', tabindex: '0' }, table),
    tableEmpty);
  container.removeAttribute('aria-busy');
  container.dataset.loads = '0';

  // --- Range --------------------------------------------------------------------------------------

  function choose(from, to) {
    fromInput.value = from;
    toInput.value = to;
    apply();
  }

  function apply() {
    const from = fromInput.value;
    const to = toInput.value;
    if (!DATE_RE.test(from) || !DATE_RE.test(to)) {
      refuse('Choose both dates: From and To.');
      return;
    }
    if (to < from) {
      refuse('To must be on or after From.');
      return;
    }
    if (daysBetween(from, to) >= 366) {
      refuse('Choose a range of at most 366 days.');
      return;
    }
    state.from = from;
    state.to = to;
    load();
  }

  form.addEventListener('change', apply);
  form.addEventListener('submit', (event) => { event.preventDefault(); apply(); });

  // A range typed a moment ago may still be loading: its figures are no longer
  // what was asked for, and must not land (nor clear this message) when they come.
  function refuse(message) {
    state.request += 1;
    container.removeAttribute('aria-busy');
    status.textContent = state.shown;
    showError(message);
  }

  function showError(message) {
    error.textContent = message || '';
    error.hidden = !message;
  }

  function markPresets() {
    const latest = todayKey();
    for (const button of presetButtons) {
      const days = Number(button.dataset.days);
      const on = state.to === latest && state.from === addDays(latest, -(days - 1));
      button.setAttribute('aria-pressed', String(on));
    }
  }

  function query(format) {
    const q = new URLSearchParams({ from: state.from, to: state.to });
    if (format) q.set('format', format);
    return q;
  }

  // --- Loading ------------------------------------------------------------------------------------

  async function load() {
    const request = ++state.request;
    state.stale = false;
    markPresets();
    csvLink.href = `/api/scheduling/insights/?${query('csv')}`;
    if (!panel.hidden) {
      const url = new URL(window.location.href);
      url.searchParams.set('from', state.from);
      url.searchParams.set('to', state.to);
      history.replaceState(null, '', url);
    }
    status.textContent = `Loading ${rangeLabel(state.from, state.to)}…`;
    container.setAttribute('aria-busy', 'true');
    try {
      const [report, Chart] = await Promise.all([api(`/api/scheduling/insights/?${query()}`), loadChartJs()]);
      if (request !== state.request) return;
      state.report = report;
      showError(null);
      render(Chart);
      state.loads += 1;
      container.dataset.loads = String(state.loads);
      const now = new Intl.DateTimeFormat('en-US', { hour: 'numeric', minute: '2-digit' }).format(new Date());
      status.textContent = `${rangeLabel(report.from, report.to)} · ${plural(report.totals.appointments, 'booking')}`
        + ` · updated ${now}`;
      state.shown = status.textContent;
    } catch (err) {
      if (request !== state.request) return;
      showError(`Could not load the figures: ${errorText(err)}`);
      status.textContent = '';
    } finally {
      if (request === state.request) container.removeAttribute('aria-busy');
    }
  }

  // --- Rendering ----------------------------------------------------------------------------------

  function render(Chart) {
    const r = state.report;
    const t = r.totals;
    const lost = (t.cancelled.response_timeout || 0) + (t.cancelled.no_available_therapist || 0);
    kpis.offers.textContent = String(t.offers);
    kpis.acceptance.textContent = percent(t.offers ? t.accepted / t.offers : null);
    kpis.median.textContent = duration(t.median_response_seconds);
    kpis.timeouts.textContent = String(t.timed_out);
    kpis.lost.textContent = String(lost);
    renderTable();
    renderTherapistChart(Chart, r);
    renderReasonChart(Chart, r);
    renderDayChart(Chart, r);
  }

  function chart(Chart, key, config) {
    const card = cards[key];
    // No animation: a live refresh redraws in place instead of replaying the chart.
    const options = {
      responsive: true, maintainAspectRatio: false, animation: false,
      plugins: { legend: { position: 'bottom', labels: { boxWidth: 12 } } },
      ...config.options,
    };
    if (state.charts[key]) {
      const existing = state.charts[key];
      existing.data = config.data;
      existing.options = options;
      existing.update('none');
      return existing;
    }
    state.charts[key] = new Chart(card.canvas, { ...config, options });
    return state.charts[key];
  }

  function renderTherapistChart(Chart, r) {
    const card = cards.therapists;
    const offered = r.therapists.filter((t) => t.offers > 0).sort((a, b) => b.offers - a.offers).slice(0, TOP_THERAPISTS);
    const noAnswer = (t) => t.offers - t.accepted - t.rejected - t.timed_out;
    show(card.box, offered.length > 0);
    card.empty.textContent = 'No offers in this range.';
    show(card.empty, offered.length === 0);
    card.box.style.height = `${Math.max(220, 60 + offered.length * 34)}px`;
    const more = r.therapists.filter((t) => t.offers > 0).length - offered.length;
    card.canvas.setAttribute('aria-label', offered.length
      ? `Stacked bar chart of the answers to each therapist's offers, ${plural(offered.length, 'therapist')}`
        + `${more > 0 ? ` (the ${offered.length} with most offers)` : ''}: `
        + offered.map((t) => `${t.name} ${t.accepted} of ${t.offers} accepted, ${t.timed_out} timed out`).join('; ')
      : 'No offers in this range.');
    card.alt.replaceChildren(dataTable(card.title, ['Therapist', 'Offers', 'Accepted', 'Rejected', 'Timed out',
      'Not answered'], offered.map((t) => [t.name, t.offers, t.accepted, t.rejected, t.timed_out, noAnswer(t)])));
    if (!offered.length) return;
    chart(Chart, 'therapists', {
      type: 'bar',
      data: {
        labels: offered.map((t) => t.name),
        datasets: [
          { label: 'Accepted', data: offered.map((t) => t.accepted), backgroundColor: COLOURS.accepted },
          { label: 'Rejected', data: offered.map((t) => t.rejected), backgroundColor: COLOURS.rejected },
          { label: 'Timed out', data: offered.map((t) => t.timed_out), backgroundColor: COLOURS.timed_out },
          { label: 'Not answered', data: offered.map(noAnswer), backgroundColor: '#cbd5e1' },
        ],
      },
      options: {
        indexAxis: 'y',
        scales: { x: { stacked: true, beginAtZero: true, ticks: { precision: 0 } }, y: { stacked: true } },
        plugins: {
          legend: { position: 'bottom', labels: { boxWidth: 12 } },
          tooltip: { callbacks: { footer: (items) => {
            const t = offered[items[0].dataIndex];
            return `Acceptance ${percent(t.acceptance_rate)} · median response ${duration(t.median_response_seconds)}`;
          } } },
        },
      },
    });
  }

  function renderReasonChart(Chart, r) {
    const card = cards.reasons;
    const reasons = r.rejection_reasons;
    const total = reasons.reduce((sum, x) => sum + x.count, 0);
    show(card.box, total > 0);
    card.empty.textContent = 'No rejections in this range.';
    show(card.empty, total === 0);
    const label = (code) => REASON_LABELS[code] || code;
    card.canvas.setAttribute('aria-label', total
      ? `Doughnut chart of ${plural(total, 'rejection')} by reason: `
        + reasons.filter((x) => x.count).map((x) => `${label(x.code)} ${x.count}`).join(', ')
      : 'No rejections in this range.');
    card.alt.replaceChildren(dataTable(card.title, ['Reason', 'Rejections'], reasons.map((x) => [label(x.code), x.count])));
    if (!total) return;
    chart(Chart, 'reasons', {
      type: 'doughnut',
      data: {
        labels: reasons.map((x) => label(x.code)),
        datasets: [{ data: reasons.map((x) => x.count), backgroundColor: reasons.map((x) => REASON_COLOURS[x.code] || '#9ca3af') }],
      },
      options: { cutout: '55%' },
    });
  }

  function renderDayChart(Chart, r) {
    const card = cards.days;
    const days = r.days;
    const bookings = days.reduce((sum, d) => sum + d.appointments, 0);
    const cancelled = days.reduce((sum, d) => sum + d.cancelled, 0);
    const busiest = days.reduce((best, d) => (d.appointments > (best ? best.appointments : -1) ? d : best), null);
    card.canvas.setAttribute('aria-label', `Line chart of bookings and cancellations per day, ${rangeLabel(r.from, r.to)}: `
      + `${plural(bookings, 'booking')}, ${cancelled} cancelled`
      + (busiest && busiest.appointments ? `; busiest day ${dayLabel(busiest.date)} with ${busiest.appointments}` : ''));
    card.alt.replaceChildren(dataTable(card.title, ['Day', 'Bookings', 'Completed', 'Cancelled'],
      days.map((d) => [dayLabel(d.date, true), d.appointments, d.completed, d.cancelled])));
    chart(Chart, 'days', {
      type: 'line',
      data: {
        labels: days.map((d) => dayLabel(d.date)),
        datasets: [
          { label: 'Bookings', data: days.map((d) => d.appointments), borderColor: COLOURS.bookings,
            backgroundColor: COLOURS.bookings, cubicInterpolationMode: 'monotone', pointRadius: days.length > 45 ? 0 : 2 },
          { label: 'Cancelled', data: days.map((d) => d.cancelled), borderColor: COLOURS.cancelled,
            backgroundColor: COLOURS.cancelled, cubicInterpolationMode: 'monotone', pointRadius: days.length > 45 ? 0 : 2 },
        ],
      },
      options: {
        interaction: { mode: 'index', intersect: false },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } }, x: { ticks: { autoSkip: true, maxRotation: 0 } } },
      },
    });
  }

  // --- The table ----------------------------------------------------------------------------------

  function sortBy(key) {
    const column = COLUMNS.find((c) => c.key === key);
    if (state.sort.key === key) state.sort.dir = state.sort.dir === 'asc' ? 'desc' : 'asc';
    else state.sort = { key, dir: column.text ? 'asc' : 'desc' };
    renderTable();
  }

  function renderTable() {
    if (!state.report) return;
    const { key, dir } = state.sort;
    const column = COLUMNS.find((c) => c.key === key);
    const sign = dir === 'asc' ? 1 : -1;
    const rows = [...state.report.therapists].sort((a, b) => {
      const x = a[key];
      const y = b[key];
      // Empty figures (no offers, no answers) go last whichever way.
      if (x === null || x === undefined) return (y === null || y === undefined) ? a.name.localeCompare(b.name) : 1;
      if (y === null || y === undefined) return -1;
      const order = column.text ? x.localeCompare(y) : x - y;
      return order * sign || a.name.localeCompare(b.name);
    });
    for (const th of headerCells) {
      const on = th.dataset.key === key;
      th.setAttribute('aria-sort', on ? (dir === 'asc' ? 'ascending' : 'descending') : 'none');
      th.querySelector('.sort-mark').textContent = on ? (dir === 'asc' ? ' ▲' : ' ▼') : '';
    }
    // data-label names each figure where a phone shows the rows as cards.
    tbody.replaceChildren(...rows.map((t) => h('tr', { dataset: { therapistId: t.id } },
      COLUMNS.map((c) => (c.text
        ? h('th', { scope: 'row' }, t[c.key])
        : h('td', { class: 'num', dataset: { label: c.label } }, c.format ? c.format(t[c.key]) : String(t[c.key])))))));
    show(tableEmpty, rows.length === 0);
  }

  // --- When to load -------------------------------------------------------------------------------

  let quietTimer = null;
  let firstPendingAt = 0;

  function refreshSoon() {
    if (panel.hidden) {
      state.stale = true;
      return;
    }
    const now = Date.now();
    if (!firstPendingAt) firstPendingAt = now;
    clearTimeout(quietTimer);
    const wait = Math.max(0, Math.min(REFRESH_AFTER, firstPendingAt + REFRESH_AT_LEAST_EVERY - now));
    quietTimer = setTimeout(() => {
      firstPendingAt = 0;
      load();
    }, wait);
  }

  subscribe(() => refreshSoon());

  // The dashboard shows and hides panels; load on the first showing, and again
  // when events arrived while hidden.
  const onShown = () => {
    if (panel.hidden) return;
    if (state.stale) load();
  };
  new MutationObserver(onShown).observe(panel, { attributes: true, attributeFilter: ['hidden'] });
  markPresets();
  csvLink.href = `/api/scheduling/insights/?${query('csv')}`;
  onShown();
  return { reload: load };
}
