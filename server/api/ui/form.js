// "Add credential" and "Edit": Name, Type, Description and the fields of
// the chosen type. A 400 is shown beside the field its "field" names.
import {api, enc, session} from './api.js';
import {h, field, setFieldError, errorBox, notice} from './dom.js';
import {TYPES, typeInfo, READ_ONLY} from './types.js';

function control(f, editing) {
  const id = 'cred-' + f.key;
  if (f.kind === 'check') return h('input', {id, type: 'checkbox', 'data-key': f.key});
  const keep = editing ? 'Leave empty to keep the stored value' : null;
  if (f.kind === 'area') return h('textarea', {id, rows: 8, spellcheck: 'false', 'data-key': f.key, 'data-secret': 'yes', placeholder: keep});
  return h('input', {id, type: f.kind === 'secret' ? 'password' : 'text', autocomplete: f.kind === 'secret' ? 'new-password' : 'off',
    spellcheck: 'false', 'data-key': f.key, 'data-secret': f.kind === 'secret' ? 'yes' : null, placeholder: keep});
}

/** The control an error's field belongs to: the longest key that is the field or a prefix of it. */
function controlFor(form, name) {
  let best = null;
  for (const el of form.querySelectorAll('[data-key]')) {
    const k = el.dataset.key;
    if ((name === k || name.startsWith(k + '.')) && (!best || k.length > best.dataset.key.length)) best = el;
  }
  return best;
}

export function formView(main, {signal, go, param: id}) {
  const editing = id !== null;
  if (!session.can('write')) {
    main.append(notice('The ' + session.role + ' role may not create or edit credentials.'));
    return;
  }
  const name = h('input', {id: 'cred-_id', 'data-key': '_id', spellcheck: 'false', autocomplete: 'off', value: editing ? id : ''});
  const type = h('select', {id: 'cred-type', 'data-key': 'type'}, TYPES.map((t) => h('option', {value: t.type}, t.label)));
  const description = h('input', {id: 'cred-description', 'data-key': 'description', autocomplete: 'off'});
  const typeFields = h('fieldset', {class: 'type-fields'});
  const status = h('div', {class: 'form-status'});
  const save = h('button', {type: 'submit'}, 'Save');
  const cancel = h('button', {type: 'button', class: 'secondary', onclick: () => history.back()}, 'Cancel');
  const form = h('form', {class: 'card', novalidate: true, 'aria-labelledby': 'form-h'},
    field('Name', name), field('Type', type), field('Description', description), typeFields, status,
    h('div', {class: 'actions'}, save, cancel));
  let original = null;
  if (editing) name.readOnly = true;

  function showType() {
    const t = typeInfo(type.value);
    typeFields.replaceChildren(h('legend', {}, t.label + ' fields'),
      ...t.fields.map((f) => (f.kind === 'check'
        ? h('div', {class: 'field check'}, control(f, editing), h('label', {for: 'cred-' + f.key}, f.label), h('p', {class: 'field-error', id: 'cred-' + f.key + '-err', hidden: true}))
        : field(f.label, control(f, editing), f.hint))));
    if (original && original.type === type.value) fill(original);
  }

  function fill(c) {
    description.value = c.description || '';
    for (const el of typeFields.querySelectorAll('[data-key]')) {
      const v = c[el.dataset.key];
      if (el.type === 'checkbox') el.checked = !!v;
      else if (el.dataset.secret !== 'yes' && typeof v !== 'object' && v !== undefined) el.value = String(v);
    }
  }

  /** The request body: on an edit, the stored record with the form's changes. */
  function body() {
    const b = {};
    if (original) for (const [k, v] of Object.entries(original)) if (!READ_ONLY.includes(k)) b[k] = v;
    b._id = name.value;
    b.type = type.value;
    if (description.value) b.description = description.value; else delete b.description;
    for (const el of typeFields.querySelectorAll('[data-key]')) {
      const k = el.dataset.key;
      if (el.type === 'checkbox') b[k] = el.checked;
      else if (el.dataset.secret === 'yes') { if (el.value) b[k] = {plain: el.value}; }
      else if (el.value.trim()) b[k] = el.value.trim();
      else delete b[k];
    }
    return b;
  }

  function clearErrors() {
    status.replaceChildren();
    for (const el of form.querySelectorAll('[data-key]')) setFieldError(el, null);
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors();
    save.disabled = true;
    try {
      const b = body();
      if (editing) {
        await api('PUT', '/credentials/' + enc(id), {body: b, headers: {'If-Match': String(original.version)}, signal});
      } else {
        if (await exists(b._id)) {
          setFieldError(name, 'A credential named ' + b._id + ' exists already; open it to edit it.');
          name.focus();
          return;
        }
        await api('POST', '/credentials', {body: b, signal});
      }
      go('#/credentials/' + enc(b._id), (editing ? 'Saved ' : 'Added ') + b._id + '.');
    } catch (e) {
      if (signal.aborted) return;
      const el = e.field ? controlFor(form, e.field) : null;
      if (el) {
        setFieldError(el, e.message);
        el.focus();
      }
      status.append(errorBox(e, e.status === 412 ? 'It was changed by someone else since you opened it; reload to see the change' : 'Saving failed'));
    } finally {
      save.disabled = false;
    }
  });

  async function exists(cid) {
    if (!cid) return false;
    try {
      await api('GET', '/credentials/' + enc(cid), {signal});
      return true;
    } catch (e) {
      if (e.status === 404 || e.status === 400) return false;
      throw e;
    }
  }

  type.addEventListener('change', showType);
  main.append(h('p', {class: 'crumbs'}, h('a', {href: '#/credentials'}, 'Credentials store'), ' / ', editing ? id : 'Add credential'),
    h('h1', {id: 'form-h'}, editing ? 'Edit ' + id : 'Add credential'), form);
  if (!editing) {
    showType();
    name.focus();
    return;
  }
  type.disabled = true;
  api('GET', '/credentials/' + enc(id), {signal}).then(({data}) => {
    original = data;
    type.value = data.type;
    showType();
    description.focus();
  }, (e) => { if (!signal.aborted) status.append(errorBox(e, 'Reading the credential failed')); });
}
