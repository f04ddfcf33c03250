// Re-offer on the operator dashboard: the offer chain of an appointment and its
// "Assign by hand" switch, in the details dialog, kept current by live events.
// operator.js calls mountOfferChain(); it dispatches 'appointment-event' on the
// document for every live event, which is how an open chain hears of changes.

import { PAGE, api, errorText, h, setBusy, toast } from './common.js';
import { chainSteps } from './chain.js';

const OPEN = new Set(['pending', 'confirmed', 'rejected']);
const RULES = PAGE.rules || {};

function render(section, appointment) {
  const steps = chainSteps(appointment.history);
  const list = h('ol', { 'aria-label': 'Offer chain' },
    steps.length ? steps.map((step) => h('li', { class: step.waiting ? 'waiting' : null }, step.text))
      : h('li', null, 'Not offered to anyone yet.'));
  const parts = [h('h3', null, 'Offers'), list];
  if (RULES.auto_reoffer) {
    parts.push(h('p', { class: 'muted small' }, appointment.held
      ? 'Assign by hand: automatic offers skip this booking; it waits for you when it loses its therapist.'
      : `Automatic offers: ${appointment.auto_offers} of ${RULES.reoffer_max} made.`));
  }
  if (OPEN.has(appointment.status)) {
    const holdOn = !appointment.held;
    parts.push(h('button', {
      type: 'button', class: 'secondary small', dataset: { action: 'hold' },
      onclick: async (event) => {
        const button = event.currentTarget;
        setBusy(button, true);
        try {
          await api(`/api/scheduling/appointments/${appointment.id}/hold/`, {
            method: 'POST', body: { hold: holdOn },
          });
          toast(holdOn ? `#${appointment.id}: assign by hand; no automatic offers.`
            : `#${appointment.id}: automatic offers again.`);
          await section.refresh('hold');
        } catch (err) {
          toast(errorText(err), { kind: 'error' });
          setBusy(button, false);
        }
      },
    }, holdOn ? 'Assign by hand' : 'Allow automatic offers'));
  }
  section.replaceChildren(...parts);
}

function place(container, section) {
  const history = [...container.querySelectorAll('h3')].find((node) => node.textContent === 'History');
  if (history) history.before(section);
  else container.append(section);
}

/**
 * Adds the offer chain of `appointment` (the details JSON, with history) to
 * `container`, and keeps the details current: on each live event of this
 * appointment it fetches them again and calls `refill(details)` (which redraws
 * the rest of the container) before redrawing the chain.
 */
export function mountOfferChain(container, appointment, refill = null) {
  const section = h('section', { class: 'offer-chain', 'aria-live': 'polite' });
  const refresh = async (focusAction = null) => {
    try {
      const fresh = await api(`/api/scheduling/appointments/${appointment.id}/`);
      if (!container.isConnected) return;
      const active = focusAction
        || (container.contains(document.activeElement) ? document.activeElement.dataset.action : null);
      if (refill) refill(fresh);
      if (!section.isConnected) place(container, section);
      render(section, fresh);
      // Redrawn under the keyboard: focus goes back to the same control.
      const again = active && container.querySelector(`[data-action="${active}"]`);
      if (again) again.focus();
    } catch (err) {
      section.replaceChildren(h('p', { class: 'error', role: 'alert' }, errorText(err)));
    }
  };
  section.refresh = refresh;
  place(container, section);
  render(section, appointment);
  let timer = null;
  const onEvent = (event) => {
    if (!container.isConnected) {
      document.removeEventListener('appointment-event', onEvent);
      return;
    }
    if (event.detail.appointment.id !== appointment.id) return;
    // A timeout and its re-offer arrive together: one fetch for the burst.
    clearTimeout(timer);
    timer = setTimeout(() => refresh(), 150);
  };
  document.addEventListener('appointment-event', onEvent);
}
