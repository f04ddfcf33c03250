// What the operator and therapist pages share on top of common.js: one render
// per animation frame however many updates arrive, and the live connection with
// its notification catch-up.

import { errorText, h, toast } from './common.js';
import { startLive } from './live.js';

/**
 * batchedRender(store, render) -> {schedule, apply}. `apply(snapshot, options)` puts a
 * snapshot in the store and, when that changed what the page shows, schedules
 * `render` for the next frame: a burst of live events costs one render.
 */
export function batchedRender(store, render) {
  let queued = false;
  function schedule() {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      render();
    });
  }
  function apply(snapshot, options) {
    const changed = store.apply(snapshot, options);
    if (changed) schedule();
    return changed;
  }
  return { schedule, apply };
}

/** A label and its value, for a <dl class="facts">. */
export function fact(label, ...value) {
  return [h('dt', null, label), h('dd', null, ...value)];
}

/**
 * The page's live connection (see live.js): appointment events go to `onEvent`,
 * notifications to the bell; after a catch-up found events the socket missed, the
 * notifications are fetched again (once, however many catch-ups come together).
 */
export function startDashboardLive({ onEvent, notifications }) {
  let notificationsTimer = null;
  return startLive({
    onEvent,
    onNotification: (message) => notifications.receive(message),
    onCaughtUp: () => {
      clearTimeout(notificationsTimer);
      notificationsTimer = setTimeout(() => notifications.refresh()
        .catch((err) => toast(`Could not update the notifications: ${errorText(err)}`, { kind: 'error' })), 300);
    },
  });
}
