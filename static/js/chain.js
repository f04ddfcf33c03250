// The offer chain of one appointment, told from its history events:
// "offered to Ana Cruz 2:02 PM → timed out 2:32 PM → offered to Ben Reyes 2:32 PM …".
// Pure: history in, steps out; rules.js puts them on the page.

import { formatTime, formatWhen, dayKey, todayKey } from './common.js';

function stamp(iso) {
  return dayKey(iso) === todayKey() ? formatTime(iso) : formatWhen(iso);
}

function who(event) {
  return event.therapist ? event.therapist.name : 'a therapist';
}

function by(event) {
  return event.actor ? ` by ${event.actor}` : '';
}

/** One short phrase per step of the chain ({text, waiting}), oldest first. */
export function chainSteps(history) {
  const steps = [];
  for (const e of history || []) {
    const data = e.data || {};
    const at = stamp(e.created_at);
    let text = null;
    switch (e.kind) {
      case 'assigned':
        text = `offered to ${who(e)} ${at}${data.auto ? '' : by(e)}`;
        break;
      case 'accepted': text = `accepted by ${who(e)} ${at}`; break;
      case 'rejected': text = `rejected by ${who(e)} ${at}`; break;
      case 'rejection_accepted': text = `rejection accepted ${at}${by(e)}`; break;
      case 'rejection_denied': text = `sent back to ${who(e)} ${at}${by(e)}`; break;
      case 'timed_out': text = `timed out ${at}`; break;
      case 'reassigned':
        text = data.auto ? `taken back from ${who(e)} ${at} (${data.reason || 'automatic'})`
          : `taken back from ${who(e)} ${at}${by(e)}`;
        break;
      case 'held': text = data.held ? `assign by hand ${at}${by(e)}` : `automatic offers again ${at}${by(e)}`; break;
      case 'cancelled': text = `cancelled ${at}${by(e)}`; break;
      case 'no_available_therapist': text = `cancelled ${at}: no therapist available`; break;
      case 'started': text = `started ${at}`; break;
      case 'completed': text = `completed ${at}`; break;
      default: text = null;
    }
    if (text) steps.push({ text, waiting: false });
    if (data.waiting) steps.push({ text: `waiting for an operator: ${data.waiting}`, waiting: true });
  }
  return steps;
}

/** The chain as one line of text. */
export function chainText(history) {
  return chainSteps(history).map((step) => step.text).join(' → ');
}
