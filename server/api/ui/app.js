// The console's shell: log in and out, the navigation, the router (one view
// at a time under <main>, each given an AbortSignal that ends its calls when
// the user moves on) and the event feed that keeps views current.
import {api, session, EXPIRED, EXTENDED} from './api.js';
import {h, field, errorBox, notice} from './dom.js';
import {startFeed} from './feed.js';
import {listView, credentialView} from './creds.js';
import {formView} from './form.js';
import {auditView, keysView} from './admin.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const logoutBtn = document.getElementById('logout');
const live = document.getElementById('live');

let view = null;      // AbortController of the current view
let feed = null;      // AbortController of the event feed
let expiry = null;    // timer that returns to the login form when the token expires
let flash = null;     // a message for the next view ("Deleted x")

const routes = [
  [/^#\/credentials\/?$/, () => listView],
  [/^#\/new-credential$/, () => formView],
  [/^#\/credentials\/([^/]+)\/edit$/, () => formView],
  [/^#\/credentials\/([^/]+)$/, () => credentialView],
  [/^#\/audit$/, () => auditView],
  [/^#\/access-keys$/, () => keysView],
];

/** Go to @p hash, with an optional message shown on the next page. */
export function go(hash, message) {
  flash = message || null;
  if (location.hash === hash) render();
  else location.hash = hash;
}

function render() {
  view?.abort();
  view = new AbortController();
  main.replaceChildren();
  if (!session.token) return loginView();
  showChrome();
  let hash = location.hash || '#/credentials';
  let found = routes.find(([re]) => re.test(hash));
  if (!found) {
    hash = '#/credentials';
    history.replaceState(null, '', hash);
    found = routes[0];
  }
  const m = hash.match(found[0]);
  let param = null;
  try {
    param = m[1] ? decodeURIComponent(m[1]) : null;
  } catch {
    return go('#/credentials', 'That address names no credential.');
  }
  const ctx = {signal: view.signal, go, param};
  if (flash) main.append(notice(flash, 'ok'));
  flash = null;
  for (const a of nav.querySelectorAll('a')) {
    if (hash.startsWith(a.getAttribute('href'))) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  found[1]()(main, ctx);
  main.focus({preventScroll: true});
}

function showChrome() {
  const c = session.claims;
  nav.hidden = false;
  for (const a of nav.querySelectorAll('[data-can]')) a.hidden = !session.can(a.dataset.can);
  who.textContent = c ? c.sub + ' (' + c.role + ')' : '';
  logoutBtn.hidden = false;
  if (!feed && session.can('read')) {
    feed = new AbortController();
    startFeed(feed.signal, live);
  }
  scheduleExpiry();
}

/* Back to the login form when the token expires (timers hold at most ~24 days). */
function scheduleExpiry() {
  clearTimeout(expiry);
  const exp = session.claims?.exp;
  if (!exp) return;
  const left = exp * 1000 - Date.now();
  expiry = setTimeout(() => (left > 2 ** 31 - 1 ? scheduleExpiry() : expire()),
    Math.max(0, Math.min(left, 2 ** 31 - 1)));
}

function hideChrome() {
  nav.hidden = true;
  who.textContent = '';
  logoutBtn.hidden = true;
  live.hidden = true;
  feed?.abort();
  feed = null;
  clearTimeout(expiry);
}

function logout(message) {
  session.clear();
  hideChrome();
  flash = message || null;
  render();
}

function expire() {
  if (session.token) session.clear();
  logout('Your session has expired. Log in again.');
}

function loginView() {
  hideChrome();
  const id = h('input', {id: 'login-id', name: 'username', autocomplete: 'username', spellcheck: 'false'});
  const secret = h('input', {id: 'login-secret', name: 'password', type: 'password', autocomplete: 'current-password'});
  const status = h('div', {class: 'form-status'});
  const button = h('button', {type: 'submit'}, 'Log in');
  const form = h('form', {class: 'card login', novalidate: true, 'aria-labelledby': 'login-title'},
    h('h1', {id: 'login-title'}, 'Log in to credstore'),
    h('p', {class: 'hint'}, 'Use an access key: its id and its secret.'),
    field('Access key ID', id), field('Secret key', secret), status,
    h('div', {class: 'actions'}, button));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    status.replaceChildren();
    button.disabled = true;
    try {
      const {data} = await api('POST', '/login', {body: {username: id.value.trim(), password: secret.value}});
      session.set(data.token);
      secret.value = '';
      render();
    } catch (e) {
      status.append(errorBox(e, 'Log in failed'));
      secret.select();
    } finally {
      button.disabled = false;
    }
  });
  if (flash) main.append(notice(flash, 'info'));
  flash = null;
  main.append(form);
  id.focus();
}

logoutBtn.addEventListener('click', () => logout('You are logged out.'));
window.addEventListener(EXPIRED, () => expire());
window.addEventListener(EXTENDED, () => scheduleExpiry());
window.addEventListener('hashchange', render);
render();
