// The jobs a disabled therapist still holds (pending or confirmed, start ahead),
// under the disabled-therapists list, each with one-click "Reassign to best" (the
// first of the ranked candidates) and "To the queue". One request for the whole
// list (`?held_by_disabled=true`), refetched shortly after any live event.

import { apiAll, errorText, formatRange, h, renderKeyed, setBusy, statusBadge, toast } from './common.js';
import { reassignToBest, toQueue } from './dispatch.js';

const REFETCH_AFTER_MS = 800;

export function mountDisabledJobs(container, { subscribe }) {
  const heading = h('h3', { id: 'h-disabled-jobs' }, 'Jobs still held by disabled therapists');
  const intro = h('p', { class: 'muted small' }, 'Move them before their time comes: “Reassign to best” offers the job '
    + 'to the best available therapist, “To the queue” leaves it for you to assign.');
  const list = h('div', { 'aria-labelledby': 'h-disabled-jobs' });
  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  container.replaceChildren(heading, intro, error, list);
  container.hidden = true;
  let timer = null;
  let request = 0;

  async function load() {
    const mine = ++request;
    try {
      const { results } = await apiAll('/api/scheduling/appointments/?held_by_disabled=true&ordering=starts_at&page_size=200');
      if (mine !== request) return;
      error.hidden = true;
      render(results);
    } catch (err) {
      if (mine !== request) return;
      error.textContent = `Could not load the disabled therapists’ jobs: ${errorText(err)}`;
      error.hidden = false;
      container.hidden = false;
    }
  }

  function render(jobs) {
    const groups = new Map();
    for (const a of jobs) {
      if (!groups.has(a.therapist.id)) groups.set(a.therapist.id, { therapist: a.therapist, jobs: [] });
      groups.get(a.therapist.id).jobs.push(a);
    }
    const items = [...groups.values()];
    renderKeyed(list, items, (g) => g.therapist.id, (g) => g.jobs.map((a) => `${a.id}:${a.updated_at}`).join(','), group);
    container.hidden = items.length === 0 && error.hidden;
  }

  function group({ therapist, jobs }) {
    const headingId = `dj-${therapist.id}`;
    return h('section', { class: 'dj-group', 'aria-labelledby': headingId, dataset: { therapistId: therapist.id } },
      h('h4', { id: headingId }, `${therapist.name} · ${jobs.length} job${jobs.length === 1 ? '' : 's'}`),
      h('ul', { class: 'dj-jobs' }, jobs.map((a) => h('li', { dataset: { appointmentId: a.id } },
        h('span', { class: 'dj-what' }, statusBadge(a.status), ' ', h('strong', null, a.client.name), ` #${a.id}`,
          h('span', { class: 'sub muted small' }, `${a.service.name} · ${formatRange(a.starts_at, a.ends_at)}`)),
        h('span', { class: 'dj-buttons' },
          button('Reassign to best', 'primary small', a, () => reassignToBest(a, `${therapist.name} is disabled`)),
          button('To the queue', 'secondary small', a, () => toQueue(a, `${therapist.name} is disabled`)))))));
  }

  function button(label, cls, a, run) {
    return h('button', {
      type: 'button', class: cls, dataset: { action: `${label}-${a.id}` },
      onclick: async (event) => {
        const target = event.currentTarget;
        setBusy(target, true);
        try {
          await run();
          load();
        } catch (err) {
          toast(errorText(err), { kind: 'error' });
          setBusy(target, false);
        }
      },
    }, label, h('span', { class: 'sr-only' }, ` #${a.id}`));
  }

  subscribe(() => {
    clearTimeout(timer);
    timer = setTimeout(load, REFETCH_AFTER_MS);
  });
  load();
  return { load };
}
