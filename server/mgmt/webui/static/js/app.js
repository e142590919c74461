// Warren's management UI: login, navigation, and the page that fits the location hash.
import * as api from './api.js';
import { clear, h, toast } from './ui.js';
import overview from './pages/overview.js';
import connections from './pages/connections.js';
import channels from './pages/channels.js';
import exchanges from './pages/exchanges.js';
import queues from './pages/queues.js';
import queue from './pages/queue.js';
import users from './pages/users.js';
import policies from './pages/policies.js';
import definitions from './pages/definitions.js';

// routes: #/<page>[/<arg>...]; arguments are URI-encoded segments (the vhost "/" is %2F).
const routes = { overview, connections, channels, exchanges, queues, queue, users, policies, definitions };

const $ = (id) => document.getElementById(id);
let current = null; // {stop(): void} of the page on screen
let timers = [];
let stops = [];

function stopPage() {
  timers.forEach(clearInterval);
  timers = [];
  stops.forEach((f) => f());
  stops = [];
  if (current && current.stop) current.stop();
  current = null;
}

// ctx is what a page gets: the API, its route arguments, and helpers bound to its lifetime.
function context(args) {
  return {
    api,
    args,
    navigate: (hash) => { location.hash = hash; },
    // every runs fn now and every ms while the page is on screen.
    every(ms, fn) { fn(); timers.push(setInterval(fn, ms)); },
    // onStop runs fn when the page leaves the screen.
    onStop(fn) { stops.push(fn); },
    toast,
  };
}

async function route() {
  if (!api.loadCredentials()) { showLogin(); return; }
  const parts = (location.hash.replace(/^#\/?/, '') || 'overview').split('/').map((s) => {
    try { return decodeURIComponent(s); } catch { return s; }
  });
  const name = parts[0] === 'queues' && parts.length === 3 ? 'queue' : parts[0];
  const page = routes[name];
  stopPage();
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.dataset.page === (name === 'queue' ? 'queues' : name));
  }
  const main = clear($('main'));
  if (!page) {
    main.append(h('div', { class: 'notice' }, 'No such page. ', h('a', { href: '#/overview' }, 'Go to the overview.')));
    return;
  }
  document.title = `${page.title} · Warren`;
  main.dataset.page = name;
  try {
    current = (await page.render(main, context(parts.slice(1)))) || null;
  } catch (e) {
    main.append(h('div', { class: 'notice err', role: 'alert' }, String(e.message || e)));
  }
}

function showLogin(message) {
  stopPage();
  $('shell').hidden = true;
  $('login').hidden = false;
  const err = $('login-error');
  err.hidden = !message;
  err.textContent = message || '';
  $('login-user').focus();
}

async function showShell() {
  const cred = api.loadCredentials();
  $('login').hidden = true;
  $('shell').hidden = false;
  $('whoami').textContent = cred.user;
  try {
    const me = await api.get('/whoami');
    const tags = Array.isArray(me.tags) ? me.tags.join(', ') : me.tags;
    $('whoami').textContent = tags ? `${me.name} (${tags})` : me.name;
    const o = await api.get('/overview');
    $('product').textContent = `${o.product_name || 'Warren'} ${o.product_version || ''} · ${o.cluster_name || ''}`;
  } catch { /* the page itself reports problems */ }
  await route();
}

$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const user = $('login-user').value;
  const pass = $('login-pass').value;
  const btn = $('login-submit');
  btn.disabled = true;
  try {
    api.saveCredentials(user, pass);
    await api.request('GET', '/whoami', undefined, { auth: api.loadCredentials().auth });
    $('login-pass').value = '';
    if (!location.hash || location.hash === '#/login') location.hash = '#/overview';
    await showShell();
  } catch (e) {
    api.clearCredentials();
    showLogin(e.status === 401 ? `Login failed: ${e.reason || 'not authorised'}` : `Login failed: ${e.message}`);
  } finally {
    btn.disabled = false;
  }
});

$('logout').addEventListener('click', () => {
  api.clearCredentials();
  showLogin();
});

// A 401 after login (password changed, user deleted) sends the user back to the login form.
window.addEventListener('warren:unauthorized', (ev) => {
  const body = ev.detail?.body;
  if (!body || body.error === 'not_authorized') { // bad credentials, not a missing permission
    api.clearCredentials();
    showLogin('Your session is no longer valid: log in again.');
  }
});

window.addEventListener('hashchange', () => { if (api.loadCredentials()) route(); });

if (api.loadCredentials()) showShell(); else showLogin();
