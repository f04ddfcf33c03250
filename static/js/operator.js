// The operator dashboard's entry module: the tabs, start-up and live updates.
//
// Each tab is a small module in static/js/operator/ whose default export is a
// tab object; this module switches between them and hands each the live events:
//
//   export default {
//     name: 'reviews',        // the address (?tab=reviews), data-tab and data-panel in the template
//     title: 'Reviews',       // the document title while it is shown
//     init() {},              // once at start-up: listeners, first loads            (optional)
//     show() {},              // each time it becomes the current tab: lazy loads   (optional)
//     render() {},            // after appointments changed, at most once a frame   (optional)
//     onEvent(event) {},      // every live appointment event {id, kind, appointment} (optional)
//     urlParams(params) {},   // adds its own query parameters to its address       (optional)
//     restore(params) {},     // reads them back at start-up and on back/forward   (optional)
//   };
//
// To add a tab: write static/js/operator/<name>.js, import it below and add it to
// TABS (the order of TABS is the order of init and render); add its link
// (`<a href="?tab=<name>" data-tab="<name>">`) and its panel
// (`<section data-panel="<name>">`) to templates/scheduling/operator.html; and add
// its name to OPERATOR_TABS in scheduling/pages.py so the server renders
// ?tab=<name> with that panel open. What tabs share (the appointment store, the
// open queue, card builders, the dialogs) is in operator/shared.js and
// operator/dialogs.js.

import { PAGE } from './common.js';
import { startDashboardLive } from './dashboard.js';
import { mountDisabledJobs } from './disabled_jobs.js';
import all from './operator/all.js';
import { detailsDialog } from './operator/dialogs.js';
import notificationsTab, { notifications } from './operator/notifications.js';
import reviews from './operator/reviews.js';
import { onRender, page, scheduleRender, store, tabUrl, tabs } from './operator/shared.js';
import day from './operator/day.js';
import insights from './operator/insights.js';
import timeouts from './operator/timeouts.js';

const TABS = [reviews, timeouts, all, day, insights, notificationsTab];
const DEFAULT_TAB = 'reviews';

for (const tab of TABS) {
  tabs.set(tab.name, tab);
  if (tab.render) onRender(tab.render);
}

function switchTab(name, { push = true } = {}) {
  const next = tabs.has(name) ? name : DEFAULT_TAB;
  page.tab = next;
  document.querySelectorAll('.tabs a[data-tab]').forEach((link) => {
    if (link.dataset.tab === next) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  });
  document.querySelectorAll('[data-panel]').forEach((panel) => { panel.hidden = panel.dataset.panel !== next; });
  document.title = `${tabs.get(next).title} · Operator · Royal Care Scheduling`;
  if (push) history.pushState(null, '', tabUrl(next));
  const tab = tabs.get(next);
  if (tab.show) tab.show();
}

document.addEventListener('click', (event) => {
  const link = event.target.closest('a[data-tab]');
  if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  switchTab(link.dataset.tab);
});

function restore(params) {
  for (const tab of TABS) if (tab.restore) tab.restore(params);
}

window.addEventListener('popstate', () => {
  const params = new URLSearchParams(window.location.search);
  restore(params);
  switchTab(params.get('tab') || DEFAULT_TAB, { push: false });
});

// Parts of the page outside any one tab (the disabled therapists' open jobs) follow the live events too.
const liveListeners = new Set();
mountDisabledJobs(document.getElementById('disabled-jobs'), { subscribe: (listener) => liveListeners.add(listener) });

function onEvent(event) {
  // The open details dialog (rules.js) follows its appointment.
  document.dispatchEvent(new CustomEvent('appointment-event', { detail: event }));
  if (store.apply(event.appointment, { eventId: event.id })) scheduleRender();
  for (const tab of TABS) if (tab.onEvent) tab.onEvent(event);
  liveListeners.forEach((listener) => listener(event));
}

const params = new URLSearchParams(window.location.search);
restore(params);
for (const tab of TABS) if (tab.init) tab.init();
page.tab = tabs.has(PAGE.tab) ? PAGE.tab : DEFAULT_TAB;
const current = tabs.get(page.tab);
if (current.show) current.show();
page.live = startDashboardLive({ onEvent, notifications });
// A notification's link (?appointment=<id>) opened in a new tab or from elsewhere.
if (Number(params.get('appointment')) > 0) {
  history.replaceState(null, '', tabUrl(page.tab));
  detailsDialog(Number(params.get('appointment')));
}
