// Notifications: the operator's list (the bell links here), loaded on first view
// and kept current by the socket.

import { Notifications, errorText, toast } from '../common.js';
import { $ } from './shared.js';

export const notifications = new Notifications($('panel-notifications'));

export default {
  name: 'notifications',
  title: 'Notifications',
  show() {
    if (!notifications.loaded) notifications.load().catch((err) => toast(errorText(err), { kind: 'error' }));
  },
};
