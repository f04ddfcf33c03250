// The therapist's calendar feed: a secret address to subscribe to in a calendar
// app, with Copy and Rotate (a new address; the old one stops working at once).

import { api, errorText, openDialog, setBusy, show, toast } from './common.js';

const $ = (id) => document.getElementById(id);

function render(url) {
  $('calendar-url').value = url || '';
  show($('calendar-some'), !!url);
  show($('calendar-none'), !url);
}

function fail(message) {
  $('calendar-error').textContent = message || '';
  $('calendar-error').hidden = !message;
}

async function rotate() {
  const { calendar_url: url } = await api('/api/accounts/me/calendar/rotate/', { method: 'POST' });
  render(url);
  return url;
}

async function copy() {
  const input = $('calendar-url');
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    // No clipboard access (an insecure page, say): select it for a manual copy.
    input.focus();
    input.select();
    toast('Press Ctrl+C (or long-press and Copy) to copy the selected address.');
    return;
  }
  toast('Calendar address copied. Add it in your calendar app as a subscription ("From URL").');
}

$('calendar-create').addEventListener('click', async (event) => {
  const button = event.currentTarget;
  setBusy(button, true);
  fail(null);
  try {
    await rotate();
    $('calendar-url').focus();
    toast('Your calendar address is ready: copy it into your calendar app.');
  } catch (err) {
    fail(`Could not create the address: ${errorText(err)}`);
  } finally {
    setBusy(button, false);
  }
});

$('calendar-copy').addEventListener('click', copy);

$('calendar-rotate').addEventListener('click', () => openDialog({
  title: 'Get a new calendar address?',
  intro: 'The current address stops working at once. Calendars subscribed to it stop updating until you add '
    + 'the new one. Do this if the address was shared with someone it should not have been.',
  confirmLabel: 'Get a new address',
  onConfirm: async () => {
    await rotate();
    toast('New calendar address made; the old one no longer works.');
  },
}));

api('/api/accounts/me/').then((me) => render(me.calendar_url))
  .catch((err) => fail(`Could not load your calendar address: ${errorText(err)}`));
