// The Insights tab: static/js/insights.js draws it; this wraps it as a tab and
// hands it the live events.

import { mountInsights } from '../insights.js';

const listeners = new Set();

export default {
  name: 'insights',
  title: 'Insights',
  init() {
    mountInsights(document.getElementById('insights-root'), { subscribe: (listener) => listeners.add(listener) });
  },
  onEvent(event) {
    listeners.forEach((listener) => listener(event));
  },
};
