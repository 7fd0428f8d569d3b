// The Credentials store page (the table) and a credential's own page
// (metadata, usages, Edit, Test connection, Delete).
import {api, enc, session} from './api.js';
import {h, errorBox, notice, when, labelCells} from './dom.js';
import {CHANGE} from './feed.js';
import {TYPES, typeLabel} from './types.js';

const PAGE = 50;

/** Reload @p fn when the feed reports news (coalesced), until @p signal aborts. */
function follow(signal, fn, relevant = () => true) {
  let t = null;
  const on = (ev) => {
    if (!ev.detail.length || ev.detail.some(relevant)) {
      clearTimeout(t);
      t = setTimeout(fn, 150);
    }
  };
  window.addEventListener(CHANGE, on);
  signal.addEventListener('abort', () => { clearTimeout(t); window.removeEventListener(CHANGE, on); });
}

export function listView(main, {signal, go}) {
  main.append(h('h1', {}, 'Credentials store'));
  if (!session.can('read')) {
    main.append(notice('The ' + session.role + ' role registers usages and resolves credentials; it may not list or read them.'));
    return;
  }
  const type = h('select', {id: 'filter-type'}, h('option', {value: ''}, 'All types'),
    TYPES.map((t) => h('option', {value: t.type}, t.label)));
  const search = h('input', {id: 'filter-search', type: 'search', placeholder: 'Name or description'});
  const add = session.can('write')
    ? h('button', {type: 'button', onclick: () => go('#/new-credential')}, 'Add credential') : null;
  const status = h('div', {class: 'status'});
  const body = h('tbody');
  const count = h('span', {class: 'count'});
  const prev = h('button', {type: 'button', class: 'secondary'}, 'Previous');
  const next = h('button', {type: 'button', class: 'secondary'}, 'Next');
  let offset = 0;
  let seq = 0;

  main.append(
    h('div', {class: 'toolbar'},
      h('div', {class: 'field inline'}, h('label', {for: type.id}, 'Type'), type),
      h('div', {class: 'field inline grow'}, h('label', {for: search.id}, 'Search'), search),
      add),
    status,
    h('div', {class: 'table-wrap'},
      h('table', {class: 'grid', id: 'credentials'},
        h('thead', {}, h('tr', {}, ['Name', 'Type', 'Description', 'Usages', 'Version', 'Last modified']
          .map((c) => h('th', {scope: 'col'}, c)))),
        body)),
    h('div', {class: 'pager'}, prev, count, next));

  async function load() {
    const mine = ++seq;
    const q = new URLSearchParams({offset, limit: PAGE});
    if (type.value) q.set('type', type.value);
    if (search.value.trim()) q.set('search', search.value.trim());
    try {
      const r = await api('GET', '/credentials?' + q, {signal});
      const usages = await Promise.all(r.data.map((c) =>
        api('GET', '/credentials/' + enc(c._id) + '/usages', {signal}).then((u) => u.data.length, (e) => e)));
      if (mine !== seq) return;
      const total = Number(r.headers.get('Total-Count') || r.data.length);
      status.replaceChildren();
      const failed = usages.find((u) => u instanceof Error);
      if (failed) status.append(errorBox(failed, 'Reading usages failed'));
      body.replaceChildren(...r.data.map((c, i) => row(c, usages[i])));
      if (!r.data.length) body.append(h('tr', {}, h('td', {colspan: 6, class: 'empty'}, 'No credentials.')));
      labelCells(body.parentNode);
      count.textContent = total ? (offset + 1) + '–' + (offset + r.data.length) + ' of ' + total : '';
      prev.disabled = offset === 0;
      next.disabled = offset + r.data.length >= total;
    } catch (e) {
      if (signal.aborted || mine !== seq) return;
      status.replaceChildren(errorBox(e, 'Listing credentials failed'));
    }
  }

  function row(c, nUsages) {
    const href = '#/credentials/' + enc(c._id);
    const tr = h('tr', {class: 'link-row', onclick: (ev) => { if (ev.target.tagName !== 'A') go(href); }},
      h('td', {}, h('a', {href}, c._id)),
      h('td', {}, typeLabel(c.type)),
      h('td', {class: 'desc'}, c.description || ''),
      h('td', {class: 'num'}, nUsages instanceof Error ? '?' : String(nUsages)),
      h('td', {class: 'num'}, String(c.version ?? '')),
      h('td', {}, when(c.lastModified)));
    return tr;
  }

  let debounce = null;
  type.addEventListener('change', () => { offset = 0; load(); });
  search.addEventListener('input', () => { clearTimeout(debounce); debounce = setTimeout(() => { offset = 0; load(); }, 250); });
  prev.addEventListener('click', () => { offset = Math.max(0, offset - PAGE); load(); });
  next.addEventListener('click', () => { offset += PAGE; load(); });
  follow(signal, load);
  load();
}

/* ------------------------------------------------------ one credential */

const LABELS = {
  _id: 'Name', type: 'Type', description: 'Description', version: 'Version', created: 'Created',
  lastModified: 'Last modified', owner: 'Owner', accountID: 'Account ID', accountGUID: 'Account GUID',
  roleArn: 'Role ARN', externalID: 'External ID', useAWSRole: 'Use IAM role',
  useSTSRegionalEndpoint: 'Use STS regional endpoint', region: 'Region',
  durationSeconds: 'Duration (seconds)', projectID: 'Project ID', secret: 'Secret', apiToken: 'API token',
  'azureSPInfo.clientId': 'Client ID', 'azureSPInfo.tenantId': 'Tenant ID',
  'azureSPInfo.subscriptionId': 'Subscription ID', 'certificate.subject': 'Subject',
  'certificate.issuer': 'Issuer', 'certificate.notAfter': 'Not after', 'certificate.sha256': 'SHA-256',
};
/* What accountID holds, by type (API.md §3). */
const ACCOUNT_ID = {aws: 'Access key ID', azure: 'Client ID', gcp: 'Client email', basic: 'Username'};

/** Metadata as label/value rows; sealed values show as "sealed", never their blob. */
function metaRows(c) {
  const rows = [];
  const put = (k, v) => rows.push([(k === 'accountID' && ACCOUNT_ID[c.type]) || LABELS[k] || k, v]);
  for (const [k, v] of Object.entries(c)) {
    if (k === 'type') put(k, typeLabel(v));
    else if (v && typeof v === 'object' && 'encrypted' in v) put(k, v.encrypted ? 'sealed' : '—');
    else if (k === 'kubeconfig' && v) {
      put('Current context', v.currentContext || '');
      for (const cl of v.clusters || []) put('Cluster ' + cl.name, cl.server || '');
    } else if (Array.isArray(v)) put(k, v.map((x) => (typeof x === 'object' ? JSON.stringify(x) : String(x))).join(', '));
    else if (v && typeof v === 'object') for (const [k2, v2] of Object.entries(v)) put(k + '.' + k2, String(v2));
    else if (k === 'created' || k === 'lastModified') put(k, when(v));
    else put(k, typeof v === 'boolean' ? (v ? 'yes' : 'no') : String(v ?? ''));
  }
  return rows;
}

export function credentialView(main, {signal, go, param: id}) {
  const title = h('h1', {}, id);
  const status = h('div', {class: 'status'});
  const actions = h('div', {class: 'actions'});
  const result = h('div', {class: 'result', 'aria-live': 'polite'});
  const meta = h('dl', {class: 'meta'});
  const usagesBody = h('tbody');
  const usageStatus = h('div', {class: 'status'});
  main.append(h('p', {class: 'crumbs'}, h('a', {href: '#/credentials'}, 'Credentials store'), ' / ', id),
    title, status, actions, result,
    h('section', {'aria-labelledby': 'meta-h'}, h('h2', {id: 'meta-h'}, 'Details'), meta),
    h('section', {'aria-labelledby': 'usages-h'}, h('h2', {id: 'usages-h'}, 'Usages'), usageStatus,
      h('div', {class: 'table-wrap'}, h('table', {class: 'grid', id: 'usages'},
        h('thead', {}, h('tr', {}, ['Type', 'Description', 'Stale', 'Last resolved', 'Count']
          .map((c) => h('th', {scope: 'col'}, c)))), usagesBody))));

  let cred = null;
  if (session.can('write')) actions.append(h('button', {type: 'button', onclick: () => go('#/credentials/' + enc(id) + '/edit')}, 'Edit'));
  if (session.can('test')) actions.append(h('button', {type: 'button', class: 'secondary', onclick: testConnection}, 'Test connection'));
  if (session.can('write')) actions.append(h('button', {type: 'button', class: 'danger', onclick: askDelete}, 'Delete'));

  async function load() {
    try {
      const [c, u] = await Promise.all([
        api('GET', '/credentials/' + enc(id), {signal}),
        api('GET', '/credentials/' + enc(id) + '/usages', {signal})]);
      cred = c.data;
      status.replaceChildren();
      meta.replaceChildren(...metaRows(cred).flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
      usagesBody.replaceChildren(...u.data.map(usageRow));
      if (!u.data.length) usagesBody.append(h('tr', {}, h('td', {colspan: 5, class: 'empty'}, 'No usages: nothing depends on this credential.')));
      labelCells(usagesBody.parentNode);
    } catch (e) {
      if (signal.aborted) return;
      status.replaceChildren(errorBox(e, e.status === 404 ? 'No such credential' : 'Reading the credential failed'));
    }
  }

  function usageRow(u) {
    return h('tr', {class: u.stale ? 'stale' : ''},
      h('td', {}, u.type || ''), h('td', {class: 'desc'}, u.description || ''),
      h('td', {}, u.stale ? h('span', {class: 'badge warn'}, 'stale') : 'no'),
      h('td', {}, u.lastResolvedAt ? when(u.lastResolvedAt) : 'never'),
      h('td', {class: 'num'}, String(u.resolveCount ?? 0)));
  }

  async function testConnection(ev) {
    const btn = ev.currentTarget;
    btn.disabled = true;
    result.replaceChildren(notice('Testing the connection…'));
    try {
      const {data} = await api('POST', '/credentials/' + enc(id) + '/test', {body: {}, signal});
      result.replaceChildren(h('div', {class: 'test ' + (data.ok ? 'ok' : 'bad'), role: 'status'},
        h('strong', {}, data.ok ? 'Connection OK' : 'Connection failed'),
        data.message ? h('p', {}, data.message) : null,
        h('p', {class: 'hint'}, 'Latency: ' + data.latencyMs + ' ms' + (data.identity ? ' · identity: ' + data.identity : ''))));
    } catch (e) {
      if (!signal.aborted) result.replaceChildren(errorBox(e, 'Test connection failed'));
    } finally {
      btn.disabled = false;
    }
  }

  function askDelete() {
    const yes = h('button', {type: 'button', class: 'danger', onclick: doDelete}, 'Delete permanently');
    result.replaceChildren(h('div', {class: 'confirm', role: 'group', 'aria-label': 'Confirm delete'},
      h('p', {}, 'Delete the credential ' + id + '? This cannot be undone.'), yes,
      h('button', {type: 'button', class: 'secondary', onclick: () => result.replaceChildren()}, 'Cancel')));
    yes.focus();
  }

  async function doDelete() {
    try {
      await api('DELETE', '/credentials/' + enc(id), {signal});
      go('#/credentials', 'Deleted ' + id + '.');
    } catch (e) {
      if (signal.aborted) return;
      if (e.code === 'credential_in_use') {
        const list = (e.body.usages || []).map((u) => h('li', {}, (u.type || '') + (u.description ? ' — ' + u.description : '') + ' (' + u.id + ')'));
        result.replaceChildren(h('div', {class: 'error', role: 'alert'},
          h('strong', {}, id + ' is in use and was not deleted.'),
          h('p', {}, 'Remove these usages first:'), h('ul', {class: 'in-use'}, list)));
      } else {
        result.replaceChildren(errorBox(e, 'Delete failed'));
      }
    }
  }

  follow(signal, load, (ev) => ev.credentialId === id);
  load();
}
