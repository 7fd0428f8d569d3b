// The event feed (GET /events, long-polled): catch up to the present once,
// then wait for news; every batch after that fires "credstore:change" on
// window with the events, and the views that show them reload.
import {api} from './api.js';
import {sleep} from './dom.js';

export const CHANGE = 'credstore:change';

const WAIT = 25; // seconds a poll may wait (the server allows 60)

export async function startFeed(signal, status) {
  let since = 0;
  let caughtUp = false;
  const show = (text, bad) => {
    status.hidden = false;
    status.textContent = text;
    status.classList.toggle('bad', !!bad);
  };
  while (!signal.aborted) {
    try {
      const {data} = await api('GET', '/events?since=' + since + '&wait=' + (caughtUp ? WAIT : 0), {signal, background: true});
      since = data.next;
      if (!caughtUp && data.events.length === 0) {
        caughtUp = true;
        show('Live');
        // Changes made while catching up: let the views read them now.
        window.dispatchEvent(new CustomEvent(CHANGE, {detail: []}));
      } else if (caughtUp && data.events.length) {
        window.dispatchEvent(new CustomEvent(CHANGE, {detail: data.events}));
      }
    } catch (e) {
      if (signal.aborted || e.status === 401) return;
      if (e.status === 410 && Number.isInteger(e.body.oldest)) {
        // The feed was trimmed past us: start again from what is kept.
        since = Math.max(0, e.body.oldest - 1);
        caughtUp = false;
        continue;
      }
      show('Live updates paused: ' + e.message + ' — retrying', true);
      await sleep(5000, signal);
    }
  }
}
