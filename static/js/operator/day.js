// The day board tab: static/js/dayboard.js draws it; this wraps it as a tab and
// hands it the live events.

import { mountDayBoard } from '../dayboard.js';

const listeners = new Set();

export default {
  name: 'day',
  title: 'Day board',
  init() {
    mountDayBoard(document.getElementById('dayboard'), {
      subscribe: (listener) => listeners.add(listener), panel: document.getElementById('panel-day'),
    });
  },
  onEvent(event) {
    listeners.forEach((listener) => listener(event));
  },
};
