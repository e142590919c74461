// The management API client: RabbitMQ's API shape, basic auth from the session.

const KEY = 'warren.credentials';

// ApiError is an answer other than 2xx. missing is true when the endpoint itself is not
// served by this broker (404 on a listing, 405 anywhere), so pages can say so plainly.
export class ApiError extends Error {
  constructor(method, path, status, body) {
    const reason = body && (body.reason || body.error);
    super(`${method} ${path}: ${status}${reason ? ' ' + reason : ''}`);
    this.method = method;
    this.path = path;
    this.status = status;
    this.body = body;
    this.reason = reason || '';
  }
}

function b64(s) {
  const bytes = new TextEncoder().encode(s);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

// Credentials are kept in sessionStorage, as RabbitMQ's UI keeps them: gone with the tab.
export function saveCredentials(user, pass) {
  sessionStorage.setItem(KEY, JSON.stringify({ user, auth: b64(`${user}:${pass}`) }));
}
export function loadCredentials() {
  try { return JSON.parse(sessionStorage.getItem(KEY) || 'null'); } catch { return null; }
}
export function clearCredentials() { sessionStorage.removeItem(KEY); }

// seg encodes one path segment: the default vhost "/" is "%2F".
export const seg = (s) => encodeURIComponent(s);

// request calls the API. body (not undefined) is sent as JSON, or as is when it is a string.
export async function request(method, path, body, { headers = {}, auth } = {}) {
  const cred = auth || loadCredentials()?.auth;
  // JSON when the answer has a body; anything for a bodyless 204 (RabbitMQ answers 406 to a
  // purge that accepts only JSON).
  const h = { Accept: 'application/json, */*;q=0.5', ...headers };
  if (cred) h.Authorization = 'Basic ' + cred;
  let payload;
  if (body !== undefined) {
    h['Content-Type'] = 'application/json';
    payload = typeof body === 'string' ? body : JSON.stringify(body);
  }
  // credentials: 'omit' keeps the browser's own basic-auth prompt away on a 401.
  const resp = await fetch('/api' + path, { method, headers: h, body: payload, credentials: 'omit', cache: 'no-store' });
  const text = await resp.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch { data = { reason: text.slice(0, 200) }; } }
  if (!resp.ok) {
    const err = new ApiError(method, '/api' + path, resp.status, data);
    if (resp.status === 401 && !auth) window.dispatchEvent(new CustomEvent('warren:unauthorized', { detail: err }));
    throw err;
  }
  return data;
}

export const get = (path) => request('GET', path);
export const put = (path, body) => request('PUT', path, body ?? {});
export const post = (path, body) => request('POST', path, body ?? {});
export const del = (path, headers) => request('DELETE', path, undefined, { headers });
