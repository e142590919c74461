// Small DOM helpers shared by the pages.

// h builds an element: h('td', {class: 'num'}, 'text', child). Attributes starting with "on"
// are listeners; false/null attributes and children are left out.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) { el.replaceChildren(); append(el, children); return el; }

const nf = new Intl.NumberFormat();
export const num = (n) => (typeof n === 'number' ? nf.format(n) : n ?? '');
export function rate(r) {
  if (typeof r !== 'number') return '';
  return r === 0 ? '0/s' : (r < 10 ? r.toFixed(1) : nf.format(Math.round(r))) + '/s';
}
export function bytes(n) {
  if (typeof n !== 'number') return '';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + u[i];
}
export const when = (ms) => (typeof ms === 'number' ? new Date(ms).toLocaleString() : '');
export const detailRate = (o, k) => o?.[k + '_details']?.rate;

// features are RabbitMQ's short flags: D durable, AD auto-delete, I internal, Excl exclusive,
// plus the arguments a queue or exchange was declared with.
export function features(o) {
  const out = [];
  if (o.durable) out.push(badge('D', 'durable'));
  if (o.auto_delete) out.push(badge('AD', 'auto-delete'));
  if (o.internal) out.push(badge('I', 'internal'));
  if (o.exclusive) out.push(badge('Excl', 'exclusive'));
  for (const k of Object.keys(o.arguments || {})) out.push(badge(k.replace(/^x-/, ''), `${k}: ${JSON.stringify(o.arguments[k])}`));
  if (o.policy) out.push(badge('Pol ' + o.policy, 'policy'));
  return out;
}
export const badge = (text, title) => h('span', { class: 'badge', title }, text);

// memberState is a quorum queue member's state as the answering node knows it: 'online',
// 'offline', or 'unknown': a follower does not know the other followers (raft.members says
// known false), and a Warren node outside a smaller group knows none (no raft object, no
// member online).
export function memberState(q, name) {
  const online = q.online || [];
  if (!q.raft && !online.length) return 'unknown';
  const m = (q.raft?.members || []).find((x) => x.name === name);
  if (m && !m.known) return 'unknown';
  return online.includes(name) ? 'online' : 'offline';
}

// replicas shows where a queue runs: a quorum queue's members, the leader first (starred),
// each marked online, offline or unknown; another queue's node.
export function replicas(q) {
  const members = q.members || [];
  if (!members.length) return q.node ?? '';
  const sorted = [...members].sort((a, b) => (b === q.leader) - (a === q.leader) || a.localeCompare(b));
  return h('span', { class: 'replicas' }, sorted.map((m) => {
    const st = memberState(q, m);
    const leader = m === q.leader;
    return h('span', { class: `member ${st}${leader ? ' leader' : ''}`, dataset: { member: m, state: st },
      title: `${m}: ${leader ? 'leader, ' : ''}${st}` }, (leader ? '\u2605 ' : '') + m);
  }));
}
export const stateText = (s) => h('span', { class: 'state-' + String(s || 'unknown') }, s ?? '');

// table renders rows with columns {label, value(row) -> node|text, num}; key(row) names a row
// in data-key so tests and scripts can find it.
export function table(columns, rows, { empty = 'Nothing here yet.', key } = {}) {
  const head = h('tr', {}, columns.map((c) => h('th', { class: c.num ? 'num' : '' }, c.label)));
  const body = h('tbody');
  if (!rows.length) body.append(h('tr', {}, h('td', { class: 'empty', colSpan: columns.length }, empty)));
  for (const r of rows) {
    body.append(h('tr', { dataset: key ? { key: key(r) } : {} },
      columns.map((c) => h('td', { class: c.num ? 'num' : '' }, c.value(r)))));
  }
  return h('div', { class: 'tablewrap' }, h('table', {}, h('thead', {}, head), body));
}

// problem explains a failed call. A listing the broker does not serve (404/405) gets a plain
// "not available" note (class missing-endpoint) instead of a broken page.
export function problem(err, what) {
  if (err && (err.status === 404 || err.status === 405)) {
    return h('div', { class: 'notice missing-endpoint', role: 'status' },
      h('strong', {}, `${what} not available. `),
      `This broker does not serve ${err.method} ${err.path} (HTTP ${err.status}).`);
  }
  if (err && err.status === 401) {
    return h('div', { class: 'notice err load-error', role: 'alert' },
      h('strong', {}, `${what}: not allowed. `), err.reason || 'Your user may not see this.');
  }
  return h('div', { class: 'notice err load-error', role: 'alert' }, h('strong', {}, `${what} failed. `), err?.message || String(err));
}

// actionError says what went wrong with an action; a 404/405 may be an endpoint this broker
// does not serve.
export function actionError(err) {
  if (err && err.status === 405) return `This broker does not support ${err.method} ${err.path} (HTTP 405).`;
  if (err && err.status === 404) return `${err.method} ${err.path}: not found (HTTP 404): the object is gone, or this broker does not serve this endpoint.`;
  return err?.message || String(err);
}

export function toast(text, kind = 'ok') {
  const t = h('div', { class: 'toast' + (kind === 'err' ? ' err' : ''), role: kind === 'err' ? 'alert' : 'status' }, text);
  document.getElementById('toasts').append(t);
  setTimeout(() => t.remove(), kind === 'err' ? 9000 : 4000);
}

// field makes a labelled input: {name, label, type: text|password|number|select|textarea|checkbox,
// options, value, placeholder, required}.
export function field(f) {
  let input;
  const common = { name: f.name, id: f.id || `f-${f.name}`, required: !!f.required, placeholder: f.placeholder };
  if (f.type === 'select') {
    input = h('select', common, (f.options || []).map((o) => {
      const [v, l] = Array.isArray(o) ? o : [o, o];
      return h('option', { value: v }, l);
    }));
    if (f.value !== undefined) input.value = f.value;
  } else if (f.type === 'textarea') {
    input = h('textarea', common, f.value ?? '');
  } else if (f.type === 'checkbox') {
    input = h('input', { ...common, type: 'checkbox', checked: !!f.value });
    return h('label', { class: 'check' }, input, f.label);
  } else {
    input = h('input', { ...common, type: f.type || 'text', value: f.value ?? '', min: f.min, accept: f.accept });
  }
  return h('label', {}, f.label, input);
}

// values reads a form's fields by name (checkboxes as booleans, files as File).
export function values(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.type === 'checkbox') out[el.name] = el.checked;
    else if (el.type === 'file') out[el.name] = el.files[0];
    else out[el.name] = el.value;
  }
  return out;
}

// dialog shows a modal form; onSubmit(values) runs on submit, and its error (thrown) is shown
// inside the dialog, which stays open. Resolves once the dialog closes.
export function dialog({ title, id, fields, submit = 'Save', danger = false, intro, onSubmit }) {
  return new Promise((resolve) => {
    const err = h('p', { class: 'error dialog-error', role: 'alert', hidden: true });
    const form = h('form', { method: 'dialog' },
      h('h2', {}, title), intro ? h('p', { class: 'muted' }, intro) : null,
      (fields || []).map(field), err,
      h('div', { class: 'buttons' },
        h('button', { type: 'button', class: 'cancel', onclick: () => dlg.close() }, 'Cancel'),
        h('button', { type: 'submit', class: danger ? 'danger submit' : 'primary submit' }, submit)));
    const dlg = h('dialog', { id }, form);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const btn = form.querySelector('button.submit');
      btn.disabled = true;
      err.hidden = true;
      try {
        await onSubmit(values(form));
        dlg.close();
      } catch (e) {
        err.textContent = actionError(e);
        err.hidden = false;
      } finally {
        btn.disabled = false;
      }
    });
    dlg.addEventListener('close', () => { dlg.remove(); resolve(); });
    document.body.append(dlg);
    dlg.showModal();
  });
}

// parseJSON reads an optional JSON object typed into a form ("" is {}).
export function parseJSON(text, what) {
  if (!text || !text.trim()) return {};
  let v;
  try { v = JSON.parse(text); } catch (e) { throw new Error(`${what} is not valid JSON: ${e.message}`); }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${what} must be a JSON object`);
  return v;
}

// vhostOptions lists the vhosts the user can see, for a select.
export async function vhostOptions(api) {
  try { return (await api.get('/vhosts')).map((v) => v.name); } catch { return ['/']; }
}
