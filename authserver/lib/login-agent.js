// A scripted "user with a browser" for this server's login pages: follows an authorization URL,
// keeps cookies, fills in the login form and stops at (or delivers to) the client's redirect URI.
// Used by the authserver's own tests and by the end-to-end tests; Node built-ins only.

export class CookieJar {
  #cookies = new Map(); // `${host}\n${path}\n${name}` -> { host, path, name, value, expires }

  store(url, setCookieHeaders) {
    const { host } = new URL(url);
    for (const header of setCookieHeaders) {
      const [pair, ...attrs] = header.split(';');
      const eq = pair.indexOf('=');
      if (eq < 1) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path = '/';
      let expires = Infinity;
      for (const attr of attrs) {
        const [k, ...v] = attr.trim().split('=');
        const key = k.toLowerCase();
        const val = v.join('=');
        if (key === 'path' && val.startsWith('/')) path = val;
        if (key === 'max-age') expires = Date.now() + Number(val) * 1000;
        if (key === 'expires' && expires === Infinity) expires = Date.parse(val);
      }
      const id = `${host}\n${path}\n${name}`;
      if (expires <= Date.now() || value === '') this.#cookies.delete(id);
      else this.#cookies.set(id, {
        host, path, name, value, expires,
      });
    }
  }

  header(url) {
    const { host, pathname } = new URL(url);
    const now = Date.now();
    return [...this.#cookies.values()]
      .filter((c) => c.host === host && c.expires > now
        && (pathname === c.path || pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`)))
      .sort((a, b) => b.path.length - a.path.length)
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }
}

const decodeHtml = (s) => s
  .replace(/&#(\d+);/g, (_, n) => String.fromCharCode(Number(n)))
  .replace(/&#x([0-9a-f]+);/gi, (_, n) => String.fromCharCode(parseInt(n, 16)))
  .replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>')
  .replace(/&amp;/g, '&');

/**
 * Plays the user: starts at `authorizationUrl`, follows redirects, signs in on the login form and
 * stops when a redirect points at `redirectUri` (compared without query).
 *
 * Returns { callbackUrl, steps, callbackResponse? }. With `deliver: true` the final redirect is
 * also followed (as a browser would), which hands the code to a client's callback listener;
 * `callbackResponse` is then { status, body }.
 * Throws when the server ends the flow elsewhere (an error page, a rejected password, ...).
 */
export async function authorizeAsUser(authorizationUrl, {
  redirectUri,
  username = 'eitan',
  password = 'test',
  deliver = false,
  jar = new CookieJar(),
  maxSteps = 20,
  timeoutMs = 10000,
} = {}) {
  const target = new URL(redirectUri);
  const isCallback = (u) => u.origin === target.origin && u.pathname === target.pathname;
  const steps = [];
  let url = new URL(authorizationUrl);
  let method = 'GET';
  let body;
  let submitted = false;

  for (let i = 0; i < maxSteps; i += 1) {
    if (isCallback(url)) {
      const result = { callbackUrl: url.href, steps };
      if (deliver) {
        const res = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
        result.callbackResponse = { status: res.status, body: await res.text() };
        steps.push(`GET ${url.origin}${url.pathname} -> ${res.status}`);
      }
      return result;
    }
    const headers = { accept: 'text/html' };
    const cookie = jar.header(url);
    if (cookie) headers.cookie = cookie;
    if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(url, {
      method, headers, body, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs),
    });
    jar.store(url, res.headers.getSetCookie());
    steps.push(`${method} ${url.pathname} -> ${res.status}`);

    if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
      await res.arrayBuffer();
      url = new URL(res.headers.get('location'), url);
      method = 'GET';
      body = undefined;
      continue;
    }

    const text = await res.text();
    const form = /<form[^>]*method="post"[^>]*action="([^"]+)"/i.exec(text);
    if (res.status === 200 && form && /name="password"/.test(text) && !submitted) {
      url = new URL(decodeHtml(form[1]), url);
      method = 'POST';
      body = new URLSearchParams({ username, password }).toString();
      submitted = true;
      continue;
    }
    const error = /<p class="error"[^>]*>([^<]*)</.exec(text)?.[1]
      ?? text.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 300);
    const err = new Error(`authorization did not reach ${redirectUri}: ${method} ${url.pathname} answered ${res.status}: ${decodeHtml(error)}`);
    err.steps = steps;
    err.status = res.status;
    throw err;
  }
  throw new Error(`authorization did not reach ${redirectUri} within ${maxSteps} steps: ${steps.join(', ')}`);
}
