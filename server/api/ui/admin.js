// The Audit page (admin, auditor) and the Access keys page (admin).
import {api, enc, session} from './api.js';
import {h, field, setFieldError, errorBox, notice, when, labelCells} from './dom.js';

const AUDIT_PAGE = 100;

export function auditView(main, {signal}) {
  main.append(h('h1', {}, 'Audit'));
  if (!session.can('audit')) {
    main.append(notice('The ' + session.role + ' role may not read the audit trail.'));
    return;
  }
  const cred = h('input', {id: 'audit-credential', type: 'search', placeholder: 'All credentials', spellcheck: 'false'});
  const status = h('div', {class: 'status'});
  const body = h('tbody');
  const more = h('button', {type: 'button', class: 'secondary'}, 'Next page');
  const first = h('button', {type: 'button', class: 'secondary'}, 'First page');
  const cols = ['Seq', 'At', 'Actor', 'Role', 'Action', 'Target', 'Result', 'Remote'];
  main.append(h('p', {class: 'hint'}, 'Every change, resolve, login failure and key change, oldest first, hash-chained.'),
    h('form', {class: 'toolbar', onsubmit: (ev) => { ev.preventDefault(); since = 0; load(); }},
      h('div', {class: 'field inline grow'}, h('label', {for: cred.id}, 'Credential'), cred),
      h('button', {type: 'submit', class: 'secondary'}, 'Filter')),
    status,
    h('div', {class: 'table-wrap'}, h('table', {class: 'grid dense', id: 'audit'},
      h('thead', {}, h('tr', {}, cols.map((c) => h('th', {scope: 'col'}, c)))), body)),
    h('div', {class: 'pager'}, first, more));
  let since = 0;

  async function load() {
    const q = new URLSearchParams({since, limit: AUDIT_PAGE});
    if (cred.value.trim()) q.set('credential', cred.value.trim());
    try {
      const r = await api('GET', '/audit?' + q, {signal});
      status.replaceChildren();
      const mono = [false, false, true, false, false, true, false, false];
      body.replaceChildren(...r.data.map((a) => h('tr', {class: a.result === 'success' ? '' : 'failed'},
        [String(a.seq), when(a.at), a.actor, a.role, a.action, a.target, a.result, a.remote]
          .map((v, i) => h('td', {class: i === 1 ? 'nowrap' : mono[i] ? 'mono' : null}, v ?? '')))));
      if (!r.data.length) body.append(h('tr', {}, h('td', {colspan: cols.length, class: 'empty'}, 'No entries.')));
      labelCells(body.parentNode);
      const nextSince = Number(r.headers.get('Next-Since'));
      more.disabled = r.data.length < AUDIT_PAGE || !(nextSince > since);
      first.disabled = since === 0;
      more.onclick = () => { since = nextSince; load(); };
    } catch (e) {
      if (!signal.aborted) status.replaceChildren(errorBox(e, 'Reading the audit trail failed'));
    }
  }
  first.addEventListener('click', () => { since = 0; load(); });
  load();
}

const ROLES = ['admin', 'operator', 'auditor', 'ci'];

/** datetime-local ("2026-12-01T12:30", local time) → RFC 3339 UTC without fractions. */
function rfc3339(local) {
  const d = new Date(local);
  return isNaN(d) ? local : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function keysView(main, {signal}) {
  main.append(h('h1', {}, 'Access keys'));
  if (!session.can('keys')) {
    main.append(notice('Only the admin role manages access keys.'));
    return;
  }
  const name = h('input', {id: 'key-name', 'data-key': 'name', autocomplete: 'off'});
  const role = h('select', {id: 'key-role', 'data-key': 'role'}, ROLES.map((r) => h('option', {value: r}, r)));
  const scope = h('input', {id: 'key-scope', 'data-key': 'scope', spellcheck: 'false', placeholder: 'aws-*, kube-staging'});
  const expires = h('input', {id: 'key-expires', 'data-key': 'expiresAt', type: 'datetime-local'});
  const formStatus = h('div', {class: 'form-status'});
  const created = h('div', {'aria-live': 'polite'});
  const status = h('div', {class: 'status'});
  const body = h('tbody');
  const form = h('form', {class: 'card', novalidate: true, 'aria-labelledby': 'key-form-h'},
    h('h2', {id: 'key-form-h'}, 'Create an access key'),
    h('div', {class: 'row'}, field('Name', name), field('Role', role)),
    h('div', {class: 'row'}, field('Scope', scope, 'Optional: comma-separated glob patterns over credential names'),
      field('Expires', expires, 'Optional')),
    formStatus, h('div', {class: 'actions'}, h('button', {type: 'submit'}, 'Create access key')));
  main.append(created, form, status, h('div', {class: 'table-wrap'}, h('table', {class: 'grid', id: 'access-keys'},
    h('thead', {}, h('tr', {}, ['ID', 'Name', 'Role', 'Scope', 'Created', 'Expires', ''].map((c) => h('th', {scope: 'col'}, c)))),
    body)));

  async function load() {
    try {
      const {data} = await api('GET', '/access_keys', {signal});
      status.replaceChildren();
      body.replaceChildren(...data.map(keyRow));
      labelCells(body.parentNode);
    } catch (e) {
      if (!signal.aborted) status.replaceChildren(errorBox(e, 'Listing access keys failed'));
    }
  }

  function keyRow(k) {
    const cell = h('td', {});
    const del = h('button', {type: 'button', class: 'danger small', 'aria-label': 'Delete access key ' + k.id}, 'Delete');
    del.addEventListener('click', () => {
      const yes = h('button', {type: 'button', class: 'danger small', 'aria-label': 'Confirm delete of ' + k.id}, 'Confirm delete');
      yes.addEventListener('click', async () => {
        try {
          await api('DELETE', '/access_keys/' + enc(k.id), {signal});
          status.replaceChildren(notice('Deleted access key ' + k.id + '.', 'ok'));
          load();
        } catch (e) {
          if (!signal.aborted) status.replaceChildren(errorBox(e, 'Deleting ' + k.id + ' failed'));
        }
      });
      cell.replaceChildren(yes, h('button', {type: 'button', class: 'secondary small', onclick: () => cell.replaceChildren(del)}, 'Cancel'));
      yes.focus();
    });
    cell.append(del);
    return h('tr', {}, h('td', {class: 'mono'}, k.id), h('td', {}, k.name || ''), h('td', {}, k.role),
      h('td', {}, (k.scope || []).join(', ')), h('td', {}, when(k.createdAt)), h('td', {}, when(k.expiresAt)), cell);
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    formStatus.replaceChildren();
    created.replaceChildren();
    for (const el of form.querySelectorAll('[data-key]')) setFieldError(el, null);
    const b = {name: name.value.trim(), role: role.value};
    const globs = scope.value.split(',').map((s) => s.trim()).filter(Boolean);
    if (globs.length) b.scope = globs;
    if (expires.value) b.expiresAt = rfc3339(expires.value);
    try {
      const {data} = await api('POST', '/access_keys', {body: b, signal});
      form.reset();
      created.replaceChildren(h('div', {class: 'card secret-once', role: 'status'},
        h('h2', {}, 'Access key created'),
        h('p', {}, 'Copy the secret now: it is shown only this once.'),
        h('dl', {class: 'meta'}, h('dt', {}, 'Access key ID'), h('dd', {class: 'mono', id: 'new-key-id'}, data.id),
          h('dt', {}, 'Secret key'), h('dd', {class: 'mono', id: 'new-key-secret'}, data.secret),
          h('dt', {}, 'Role'), h('dd', {}, data.role)),
        h('button', {type: 'button', class: 'secondary', onclick: () => created.replaceChildren()}, 'Done')));
      load();
    } catch (e) {
      if (signal.aborted) return;
      const el = e.field && form.querySelector('[data-key="' + CSS.escape(e.field) + '"]');
      if (el) { setFieldError(el, e.message); el.focus(); }
      formStatus.append(errorBox(e, 'Creating the access key failed'));
    }
  });
  load();
}
