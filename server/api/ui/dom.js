// Building the page from data: strings are always inserted as text
// (append / textContent), never parsed as HTML, so whatever a user stored
// in a description or a name renders as those characters.

/**
 * h('a', {href: '#/x', class: 'link', onclick: fn}, 'text', child...)
 * Props starting with "on" become listeners; value and checked are set as
 * properties; false, null and undefined props are left out.
 */
export function h(tag, props = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value' || k === 'checked') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  el.append(...kids.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false)
    .map((c) => (c instanceof Node ? c : String(c))));
  return el;
}

/** A labelled control: <div class="field"><label for=id>label</label>control<p error></div>. */
export function field(label, control, hint) {
  const id = control.id || (control.id = 'f-' + Math.random().toString(36).slice(2, 10));
  const err = h('p', {class: 'field-error', id: id + '-err', hidden: true});
  const kids = [h('label', {for: id}, label), control];
  if (hint) {
    kids.push(h('p', {class: 'hint', id: id + '-hint'}, hint));
    control.setAttribute('aria-describedby', id + '-hint');
  }
  return h('div', {class: 'field'}, kids, err);
}

/** Show @p message under the control (field() made), or clear it with null. */
export function setFieldError(control, message) {
  const err = document.getElementById(control.id + '-err');
  if (!err) return;
  err.textContent = message || '';
  err.hidden = !message;
  if (message) {
    control.setAttribute('aria-invalid', 'true');
    control.setAttribute('aria-errormessage', err.id);
  } else {
    control.removeAttribute('aria-invalid');
    control.removeAttribute('aria-errormessage');
  }
}

/** An alert box for a failed call: its message, status and code. */
export function errorBox(e, prefix) {
  const parts = [prefix ? prefix + ': ' : '', e.message || String(e)];
  const meta = [e.status ? 'HTTP ' + e.status : null, e.code || null].filter(Boolean).join(', ');
  return h('div', {class: 'error', role: 'alert'}, parts.join(''), meta ? h('span', {class: 'code'}, ' (' + meta + ')') : null);
}

export function notice(text, kind = 'info') {
  return h('div', {class: 'notice ' + kind, role: 'status'}, text);
}

/** "2026-12-01T11:37:35Z" → "2026-12-01 11:37:35 UTC"; "" for nothing. */
export function when(t) {
  if (!t) return '';
  return String(t).replace('T', ' ').replace(/Z$/, ' UTC');
}

/** Wait @p ms unless @p signal aborts first (then resolves at once). */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, {once: true});
  });
}

/**
 * Name each cell of @p table's body after its column (data-label), so that
 * a narrow window can show rows as label/value lists (style.css).
 */
export function labelCells(table) {
  const cols = [...table.tHead.rows[0].cells].map((th) => th.textContent);
  for (const tr of table.tBodies[0].rows) {
    [...tr.cells].forEach((td, i) => { if (cols[i]) td.dataset.label = cols[i]; });
  }
}
