// Notifications: the operator's list (the bell links here), loaded on first view
// and kept current by the socket.

import { Notifications, errorText, toast } from '../common.js';
import { detailsDialog } from './dialogs.js';
import { $ } from './shared.js';

// Each notification links to its appointment: a plain click opens its details here.
export const notifications = new Notifications($('panel-notifications'), {
  link: { href: (id) => `/operator/?tab=all&appointment=${id}`, open: detailsDialog },
});

export default {
  name: 'notifications',
  title: 'Notifications',
  show() {
    if (!notifications.loaded) notifications.load().catch((err) => toast(errorText(err), { kind: 'error' }));
  },
};
