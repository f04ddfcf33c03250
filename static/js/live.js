// The dashboards' one websocket to /ws/dashboard/, with everything that keeps a
// page right when the socket is not:
//  - reconnects with exponential backoff (1 s doubling to 10 s, with jitter);
//  - remembers the last event id seen (starting from the newest one visible when
//    the page was rendered) and catches up from /api/scheduling/events/?after=N
//    on every (re)connect and every 30 s while live;
//  - polls that feed every 3 s while the socket is down;
//  - asks from a little before the last id (ids are handed out before commit, so
//    a slow transaction can commit a lower id after a higher one) and skips the
//    ids it has already seen;
//  - a close with code 4403 means the account was disabled: reload, and the page
//    explains.
// The badge says "Live", "Reconnecting…" (nothing gets through) or "Polling"
// (the socket is down but the feed answers, so the page is still current).

import { api, PAGE } from './common.js';

const PING_EVERY = 25000;
const PONG_WITHIN = 10000;
const CATCH_UP_EVERY = 30000;
const POLL_EVERY = 3000;
const BACKOFF_FIRST = 1000;
const BACKOFF_MAX = 10000;
const CONNECT_TIMEOUT = 10000;
const OVERLAP = 20;
const CLOSE_DISABLED = 4403;
const FEED_PAGES = 25;

const LABELS = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', polling: 'Polling' };
const TITLES = {
  connecting: 'Connecting to live updates',
  live: 'Live: changes appear as they happen',
  reconnecting: 'The connection dropped; trying again',
  polling: 'The live connection is down; checking for changes every few seconds',
};

function reloadOnce() {
  // A page that keeps answering 403 must not reload in a loop.
  const last = Number(sessionStorage.getItem('live-reload-at') || 0);
  if (Date.now() - last < 30000) return false;
  sessionStorage.setItem('live-reload-at', String(Date.now()));
  window.location.reload();
  return true;
}

/**
 * startLive({onEvent({id, kind, appointment, source}), onNotification(message), onCaughtUp(applied)})
 */
export function startLive({ onEvent, onNotification = () => {}, onCaughtUp = () => {} }) {
  const badge = document.getElementById('live-status');
  const state = {
    status: 'connecting',
    socket: null,
    lastEventId: Number(PAGE.last_event_id) || 0,
    seen: new Set(),
    attempts: 0,
    lastMessageAt: 0,
    stopped: false,
    lastPollFailed: false,
    timers: {},
    // How many events arrived each way (diagnostics).
    delivered: { socket: 0, feed: 0 },
  };

  function setStatus(status) {
    state.status = status;
    if (!badge) return;
    badge.dataset.state = status;
    badge.textContent = LABELS[status];
    badge.title = TITLES[status];
  }

  function clear(name, interval = false) {
    if (state.timers[name]) (interval ? clearInterval : clearTimeout)(state.timers[name]);
    state.timers[name] = null;
  }

  function deliver(id, kind, appointment, source) {
    if (!id || state.seen.has(id)) return false;
    state.seen.add(id);
    if (id > state.lastEventId) state.lastEventId = id;
    state.delivered[source] += 1;
    if (state.seen.size > 2000) {
      const floor = state.lastEventId - 1000;
      for (const seenId of state.seen) if (seenId < floor) state.seen.delete(seenId);
    }
    try {
      onEvent({ id, kind, appointment, source });
    } catch (err) {
      // One bad render must not stop the feed; the error still reaches the console.
      setTimeout(() => { throw err; });
    }
    return true;
  }

  let inflight = null;
  let again = false;

  /** Fetch what was missed; resolves true when the feed answered. */
  function catchUp() {
    if (inflight) {
      again = true;
      return inflight;
    }
    inflight = (async () => {
      let applied = 0;
      try {
        let after = Math.max(0, state.lastEventId - OVERLAP);
        for (let page = 0; page < FEED_PAGES; page += 1) {
          const data = await api(`/api/scheduling/events/?after=${after}`);
          for (const item of data.results) {
            if (deliver(item.id, item.kind, item.appointment, 'feed')) applied += 1;
          }
          if (!data.next || data.results.length === 0) break;
          after = data.results[data.results.length - 1].id;
        }
      } catch (err) {
        if (err.status === 401 || err.status === 403) {
          // Signed out, or the account was disabled: the page itself says which.
          if (reloadOnce()) stop();
        }
        return false;
      } finally {
        inflight = null;
      }
      if (applied) onCaughtUp(applied);
      if (again) {
        again = false;
        catchUp();
      }
      return true;
    })();
    return inflight;
  }

  function handle(message) {
    if (!message || typeof message !== 'object') return;
    if (message.type === 'appointment.event') {
      deliver(message.event_id, message.kind, message.appointment, 'socket');
    } else if (message.type === 'notification') {
      onNotification(message);
    }
    // "pong" needs nothing: any message proves the socket is alive.
  }

  function startHeartbeat(ws) {
    clear('ping', true);
    clear('catchUp', true);
    state.timers.ping = setInterval(() => {
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send(JSON.stringify({ type: 'ping' }));
      const sentAt = Date.now();
      clear('pong');
      state.timers.pong = setTimeout(() => {
        // Nothing came back: a half-open connection. Drop it and start again.
        if (state.socket === ws && state.lastMessageAt < sentAt) ws.close(4000, 'No pong');
      }, PONG_WITHIN);
    }, PING_EVERY);
    state.timers.catchUp = setInterval(catchUp, CATCH_UP_EVERY);
  }

  function stopHeartbeat() {
    clear('ping', true);
    clear('pong');
    clear('catchUp', true);
  }

  function startPolling() {
    if (state.timers.poll) return;
    state.timers.poll = setInterval(poll, POLL_EVERY);
  }

  function stopPolling() {
    clear('poll', true);
  }

  async function poll() {
    if (state.socket && state.socket.readyState === WebSocket.OPEN) return;
    const ok = await catchUp();
    if (state.stopped || (state.socket && state.socket.readyState === WebSocket.OPEN)) return;
    setStatus(ok ? 'polling' : 'reconnecting');
    if (ok && state.lastPollFailed && !state.socket) {
      // The server answers again after an outage: try the socket now rather
      // than at the end of a long backoff.
      state.attempts = 0;
      connect();
    }
    state.lastPollFailed = !ok;
  }

  function scheduleReconnect() {
    clear('reconnect');
    if (state.stopped) return;
    const base = Math.min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** state.attempts);
    const delay = base / 2 + Math.random() * (base / 2);
    state.attempts += 1;
    state.timers.reconnect = setTimeout(connect, delay);
  }

  function connect() {
    clear('reconnect');
    if (state.stopped || state.socket) return;
    const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
    let ws;
    try {
      ws = new WebSocket(`${scheme}://${window.location.host}/ws/dashboard/`);
    } catch {
      scheduleReconnect();
      return;
    }
    state.socket = ws;
    clear('connectTimeout');
    state.timers.connectTimeout = setTimeout(() => {
      if (ws.readyState === WebSocket.CONNECTING) ws.close();
    }, CONNECT_TIMEOUT);

    ws.addEventListener('open', () => {
      clear('connectTimeout');
      state.attempts = 0;
      state.lastMessageAt = Date.now();
      stopPolling();
      setStatus('live');
      startHeartbeat(ws);
      catchUp();
    });
    ws.addEventListener('message', (event) => {
      state.lastMessageAt = Date.now();
      let message = null;
      try { message = JSON.parse(event.data); } catch { return; }
      handle(message);
    });
    ws.addEventListener('close', (event) => {
      clear('connectTimeout');
      if (state.socket === ws) state.socket = null;
      stopHeartbeat();
      if (event.code === CLOSE_DISABLED) {
        stop();
        window.location.reload();
        return;
      }
      if (state.stopped) return;
      if (state.status === 'live' || state.status === 'connecting') setStatus('reconnecting');
      startPolling();
      poll();
      scheduleReconnect();
    });
  }

  function stop() {
    state.stopped = true;
    Object.keys(state.timers).forEach((name) => { clearTimeout(state.timers[name]); clearInterval(state.timers[name]); });
    if (state.socket) state.socket.close(1000, 'Page closed');
  }

  window.addEventListener('pagehide', stop);
  // A page restored from the back/forward cache has a dead socket: start afresh.
  window.addEventListener('pageshow', (event) => { if (event.persisted) window.location.reload(); });
  window.addEventListener('online', () => {
    if (!state.socket && !state.stopped) {
      state.attempts = 0;
      connect();
    }
  });

  setStatus('connecting');
  connect();

  const connection = {
    get status() { return state.status; },
    get lastEventId() { return state.lastEventId; },
    get socket() { return state.socket; },
    get delivered() { return { ...state.delivered }; },
    catchUp,
    stop,
  };
  // For diagnostics from the console (and the browser tests).
  window.liveConnection = connection;
  return connection;
}
