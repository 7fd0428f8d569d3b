// The public API, as any client calls it: a Bearer token from /login, kept
// in sessionStorage (gone when the tab closes; never localStorage, never a
// cookie), JSON in and out, every failure an ApiError carrying the body.

const TOKEN_KEY = 'credstore.token';

/** What a role may do (API.md §2), to hide what it could not use anyway. */
const CAN = {
  keys: ['admin'],
  write: ['admin', 'operator'],
  test: ['admin', 'operator'],
  read: ['admin', 'operator', 'auditor'],
  audit: ['admin', 'auditor'],
  use: ['admin', 'operator', 'ci'],
};

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.err) || (status ? 'HTTP ' + status : 'request failed'));
    this.status = status;
    this.code = body && body.code;
    this.field = body && body.field;
    this.body = body || {};
  }
}

function claimsOf(token) {
  try {
    const p = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(p + '='.repeat((4 - (p.length % 4)) % 4)));
  } catch {
    return null;
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  /** {sub, role, exp} of the token, or null. */
  get claims() { const t = this.token; return t ? claimsOf(t) : null; },
  get role() { return this.claims?.role || ''; },
  can(what) { return (CAN[what] || []).includes(this.role); },
  set(token) { sessionStorage.setItem(TOKEN_KEY, token); },
  clear() { sessionStorage.removeItem(TOKEN_KEY); },
};

/** Fired on window when the server refuses the token (expired, key deleted). */
export const EXPIRED = 'credstore:expired';

/** Fired on window with a new token after an extension. */
export const EXTENDED = 'credstore:extended';

let extending = null;

/* A user at work keeps the session: a call they make in the second half of
 * the token's life trades it for a fresh one (GET /auth_token/extend).
 * Background calls (the event feed) never do, so an idle console expires. */
function maybeExtend() {
  const c = session.claims;
  const now = Date.now() / 1000;
  if (extending || !c?.exp || !c.iat || now < c.iat + (c.exp - c.iat) / 2) return;
  extending = api('GET', '/auth_token/extend', {background: true}).then(({data}) => {
    if (session.token) {
      session.set(data.token);
      window.dispatchEvent(new CustomEvent(EXTENDED));
    }
  }, () => {}).finally(() => { extending = null; });
}

/**
 * Call /api/v1@p path. @return {status, data, headers}; throws ApiError
 * (status 0 when the server could not be reached) or an AbortError.
 * @p background: not the user's doing (does not extend the session).
 */
export async function api(method, path, {body, headers = {}, signal, background = false} = {}) {
  const h = {Accept: 'application/json', ...headers};
  const token = session.token;
  if (token) h.Authorization = 'Bearer ' + token;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  let r;
  try {
    r = await fetch('/api/v1' + path, {
      method, headers: h, signal, credentials: 'omit', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, {err: 'the server could not be reached (' + e.message + ')', code: 'network_error'});
  }
  const text = await r.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = {err: text.slice(0, 300)}; }
  }
  if (!r.ok) {
    if (r.status === 401 && token && path !== '/login') {
      session.clear();
      window.dispatchEvent(new CustomEvent(EXPIRED));
    }
    throw new ApiError(r.status, data);
  }
  if (!background && token) maybeExtend();
  return {status: r.status, data, headers: r.headers};
}

/** A credential id in a URL path. */
export const enc = encodeURIComponent;
