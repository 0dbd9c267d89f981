// Development authorization server shaped like the tutorial's Keycloak realm `my-realm`, built on
// the certified `oidc-provider`. Everything lives under the issuer's path (/realms/my-realm), with
// Keycloak's endpoint paths, so clients configured for Keycloak work unchanged.
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import * as querystring from 'node:querystring';

import Provider, { errors } from 'oidc-provider';

import { loadOrCreateKeys } from './keys.js';

export const REALM_DEFAULTS = Object.freeze({
  clientId: 'mcp-client',
  redirectUris: [
    'http://localhost:6274/oauth/callback',
    'http://localhost:6274/oauth/callback/debug',
    // The MCP Inspector CLI's default callback listener (`--callback-url`).
    'http://127.0.0.1:6276/oauth/callback',
  ],
  audience: 'echo-mcp-server',
  // The realm's default scope: in every access token.
  scope: 'mcp:tools',
  // An optional scope: only in tokens whose authorization request asks for it (step-up).
  optionalScopes: ['mcp:admin'],
  defaultResource: 'http://localhost:9000/mcp',
  accessTokenTtl: 300,
});

// The realm's users. `sub` is a fixed UUID, as Keycloak's user ids are; the realm import file
// (keycloak/realm-my-realm.json) gives each user the same id and realm roles. `roles` goes into
// access tokens (the policy's `"admin" in jwt.roles`).
export const USERS = new Map([
  ['eitan', {
    password: 'test',
    sub: '5f0c2b7e-3a1d-4e8b-9c6f-2d7a1e4b8c90',
    roles: ['admin', 'user'],
    claims: {
      preferred_username: 'eitan',
      name: 'Eitan Test',
      given_name: 'Eitan',
      family_name: 'Test',
      email: 'eitan@example.com',
      email_verified: true,
    },
  }],
  ['alice', {
    password: 'test',
    sub: 'a1c3e7f0-6b2d-4c8e-9f1a-3d5b7c9e0f24',
    roles: ['user'],
    claims: {
      preferred_username: 'alice',
      name: 'Alice Test',
      given_name: 'Alice',
      family_name: 'Test',
      email: 'alice@example.com',
      email_verified: true,
    },
  }],
]);
const USERS_BY_SUB = new Map([...USERS.values()].map((u) => [u.sub, u]));

// Keycloak's endpoint paths, relative to the realm (the provider's mount path).
const ROUTES = {
  authorization: '/protocol/openid-connect/auth',
  token: '/protocol/openid-connect/token',
  jwks: '/protocol/openid-connect/certs',
  userinfo: '/protocol/openid-connect/userinfo',
  end_session: '/protocol/openid-connect/logout',
  introspection: '/protocol/openid-connect/token/introspect',
  revocation: '/protocol/openid-connect/revoke',
  registration: '/clients-registrations/openid-connect',
  device_authorization: '/protocol/openid-connect/auth/device',
  pushed_authorization_request: '/protocol/openid-connect/ext/par/request',
};

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>
body{font-family:system-ui,sans-serif;background:#f3f4f6;margin:0;padding:40px 16px}
main{max-width:360px;margin:0 auto;background:#fff;border-radius:8px;padding:24px 28px;box-shadow:0 1px 4px rgba(0,0,0,.15)}
h1{font-size:1.3em;margin:0 0 4px}p.sub{color:#555;margin:0 0 16px}
label{display:block;margin:12px 0 4px;font-size:.9em}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:8px;font-size:1em}
button{margin-top:16px;width:100%;padding:10px;font-size:1em;background:#2563eb;color:#fff;border:0;border-radius:4px;cursor:pointer}
.error{color:#b91c1c}.muted{color:#666;font-size:.85em}pre{white-space:pre-wrap}
</style>
</head>
<body><main>
${body}
</main></body>
</html>
`;
}

function loginPage({
  action, abort, client, realm, error, login,
}) {
  return page(`Sign in to ${realm}`, `<h1>Sign in to ${esc(realm)}</h1>
<p class="sub">to continue to <strong>${esc(client)}</strong></p>
${error ? `<p class="error" role="alert">${esc(error)}</p>` : ''}
<form method="post" action="${esc(action)}" autocomplete="off">
<label for="username">Username</label>
<input id="username" name="username" type="text" value="${esc(login)}" autofocus required>
<label for="password">Password</label>
<input id="password" name="password" type="password" required>
<button type="submit">Sign In</button>
</form>
<p class="muted">Development server: users <code>eitan</code> (admin) and <code>alice</code>, password <code>test</code>. <a href="${esc(abort)}">Cancel</a></p>`);
}

async function readBody(req, limit = 64 * 1024) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw Object.assign(new Error('request body too large'), { status: 413 });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function sendJson(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(text);
}

function sendHtml(res, status, html) {
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': Buffer.byteLength(html),
    'Cache-Control': 'no-store',
    'X-Frame-Options': 'DENY',
  });
  res.end(html);
}

const isLoopbackOrigin = (origin) => {
  const url = URL.parse(origin);
  return !!url && url.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
};

/**
 * Builds the provider and an http.Server for it (not yet listening).
 *
 * options: issuer, dataDir, extraRedirectUris ([string]), defaultResource, accessTokenTtl,
 *          log (function(line)).
 */
export function createAuthServer(options) {
  const issuer = options.issuer.replace(/\/+$/, '');
  const issuerUrl = new URL(issuer);
  const prefix = issuerUrl.pathname === '/' ? '' : issuerUrl.pathname; // e.g. /realms/my-realm
  const realm = prefix.split('/').filter(Boolean).pop() || issuerUrl.host;
  const log = options.log ?? ((line) => console.log(line));
  const accessTokenTtl = options.accessTokenTtl ?? REALM_DEFAULTS.accessTokenTtl;
  const defaultResource = options.defaultResource ?? REALM_DEFAULTS.defaultResource;
  const { jwks, file: keyFile, created } = loadOrCreateKeys(options.dataDir);

  const resourceServer = {
    // The scopes a token for the MCP server may carry; the provider grants those requested.
    scope: [REALM_DEFAULTS.scope, ...REALM_DEFAULTS.optionalScopes].join(' '),
    audience: REALM_DEFAULTS.audience,
    accessTokenTTL: accessTokenTtl,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  };

  const configuration = {
    jwks,
    clients: [{
      client_id: REALM_DEFAULTS.clientId,
      client_name: 'MCP Client',
      token_endpoint_auth_method: 'none',
      application_type: 'web',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [...REALM_DEFAULTS.redirectUris, ...(options.extraRedirectUris ?? [])],
    }],
    responseTypes: ['code'],
    scopes: ['openid', 'offline_access', 'profile', 'email', REALM_DEFAULTS.scope, ...REALM_DEFAULTS.optionalScopes],
    claims: {
      openid: ['sub'],
      profile: ['name', 'given_name', 'family_name', 'preferred_username'],
      email: ['email', 'email_verified'],
    },
    routes: ROUTES,
    pkce: { required: () => true },
    cookies: {
      keys: [crypto.randomBytes(32).toString('base64url')],
    },
    features: {
      devInteractions: { enabled: false },
      // Keycloak publishes an RSA-OAEP key (use: enc) beside its signing key; with encryption and
      // request objects enabled the provider uses it too, to decrypt encrypted request objects.
      encryption: { enabled: true },
      requestObjects: { enabled: true, requireSignedRequestObject: false },
      registration: { enabled: true, initialAccessToken: false },
      // Plain bearer tokens and front-channel requests only: what MCP clients use, what the filter
      // checks (no DPoP proofs, no pushed authorization requests).
      dPoP: { enabled: false },
      pushedAuthorizationRequests: { enabled: false },
      revocation: { enabled: true },
      introspection: { enabled: true },
      userinfo: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // Requests without `resource` still get a JWT for the MCP server's audience.
        defaultResource: async (_ctx, _client, oneOf) => {
          if (Array.isArray(oneOf)) return oneOf[0];
          return oneOf ?? defaultResource;
        },
        useGrantedResource: async () => true,
        // Like Keycloak's audience mapper: whatever the resource indicator, aud is the MCP server.
        getResourceServerInfo: async () => resourceServer,
      },
    },
    // Keycloak issues a refresh token whenever the client may use the grant.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    extraTokenClaims: async (_ctx, token) => {
      const user = token.accountId ? USERS_BY_SUB.get(token.accountId) : undefined;
      return {
        azp: token.clientId,
        typ: 'Bearer',
        ...(user ? { preferred_username: user.claims.preferred_username, roles: [...user.roles] } : {}),
      };
    },
    extraClientMetadata: {
      // RFC 7591 metadata MCP clients send. Declaring them also gives a hook into registration:
      // a registered `scope` is not kept as a restriction (the provider would refuse any other
      // scope to that client), as Keycloak gives a registered client the realm's default and
      // optional client scopes. MCP clients register with the scope of their first challenge
      // (or `"scope": ""`, the Inspector) and must still be able to step up to `mcp:admin`.
      properties: ['software_id', 'software_version'],
      validator(_ctx, key, value, metadata) {
        delete metadata.scope;
        if (value !== undefined && typeof value !== 'string') {
          throw new errors.InvalidClientMetadata(`${key} must be a string`);
        }
      },
    },
    clientBasedCORS: (_ctx, origin) => isLoopbackOrigin(origin),
    findAccount: async (_ctx, sub) => {
      const user = USERS_BY_SUB.get(sub);
      if (!user) return undefined;
      return {
        accountId: sub,
        claims: async () => ({ sub, ...user.claims }),
      };
    },
    interactions: {
      url: async (_ctx, interaction) => `${prefix}/login-actions/${interaction.uid}`,
    },
    ttl: {
      AccessToken: () => accessTokenTtl,
      AuthorizationCode: 60,
      IdToken: accessTokenTtl,
      RefreshToken: 1800,
      Interaction: 1800,
      Session: 10 * 3600,
      Grant: 10 * 3600,
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page('Error', `<h1>Error</h1>${Object.entries(out)
        .map(([k, v]) => `<pre><strong>${esc(k)}</strong>: ${esc(v)}</pre>`).join('')}`);
    },
  };

  const provider = new Provider(issuer, configuration);

  // Keycloak always adds the realm's default client scopes: an authorization request that does
  // not ask for `mcp:tools` (or for no scope at all) gets it anyway.
  provider.use(async (ctx, next) => {
    if (ctx.path === ROUTES.authorization && ctx.method === 'GET' && !ctx.query.request_uri) {
      const requested = String(ctx.query.scope ?? '').split(' ').filter(Boolean);
      if (!requested.includes(REALM_DEFAULTS.scope)) {
        ctx.query = { ...ctx.query, scope: [...requested, REALM_DEFAULTS.scope].join(' ') };
      }
    }
    await next();
  });

  for (const event of ['server_error', 'authorization.error', 'grant.error', 'registration_create.error',
    'introspection.error', 'revocation.error', 'userinfo.error', 'end_session.error']) {
    provider.on(event, (_ctx, err) => {
      const detail = err?.error_description ? `${err.error}: ${err.error_description}` : (err?.stack ?? String(err));
      log(`authserver: ${event} ${detail}`);
    });
  }

  const callback = provider.callback();
  const interactionPath = new RegExp(`^${prefix}/login-actions/([A-Za-z0-9_-]+)(/login|/abort)?$`);

  async function interaction(req, res, uid, action) {
    let details;
    try {
      details = await provider.interactionDetails(req, res);
    } catch (err) {
      sendHtml(res, 400, page('Sign-in expired', `<h1>Sign-in expired</h1><p>${esc(err.error_description ?? err.message)}</p><p>Start again from your application.</p>`));
      return;
    }
    if (details.uid !== uid) {
      sendHtml(res, 400, page('Sign-in expired', '<h1>Sign-in expired</h1><p>This sign-in page does not belong to the current request.</p>'));
      return;
    }
    const client = await provider.Client.find(details.params.client_id);
    const clientName = client?.clientName ?? details.params.client_id;
    const action_ = `${prefix}/login-actions/${uid}/login`;
    const abort = `${prefix}/login-actions/${uid}/abort`;

    if (action === '/abort') {
      await provider.interactionFinished(req, res, {
        error: 'access_denied', error_description: 'End-User aborted interaction',
      }, { mergeWithLastSubmission: false });
      return;
    }

    if (details.prompt.name === 'login') {
      if (action === '/login' && req.method === 'POST') {
        const form = querystring.parse(await readBody(req));
        const username = String(form.username ?? '');
        const user = USERS.get(username);
        const password = Buffer.from(String(form.password ?? ''));
        const ok = user && password.length === Buffer.byteLength(user.password)
          && crypto.timingSafeEqual(password, Buffer.from(user.password));
        if (!ok) {
          sendHtml(res, 401, loginPage({
            action: action_, abort, client: clientName, realm, error: 'Invalid username or password.', login: username,
          }));
          return;
        }
        await provider.interactionFinished(req, res, {
          login: { accountId: user.sub, amr: ['pwd'] },
        }, { mergeWithLastSubmission: false });
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        sendHtml(res, 405, page('Method not allowed', '<h1>Method not allowed</h1>'));
        return;
      }
      sendHtml(res, 200, loginPage({
        action: action_, abort, client: clientName, realm, login: details.params.login_hint ?? '',
      }));
      return;
    }

    if (details.prompt.name === 'consent') {
      // Consent is not required for this realm's clients (Keycloak: "Consent required: off"):
      // grant exactly what is missing and go on.
      const { prompt: { details: missing }, params, session } = details;
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, {
        consent: details.grantId ? {} : { grantId },
      }, { mergeWithLastSubmission: true });
      return;
    }

    sendHtml(res, 400, page('Unsupported', `<h1>Unsupported prompt</h1><p>${esc(details.prompt.name)}</p>`));
  }

  async function handle(req, res) {
    const url = new URL(req.url, 'http://placeholder');
    const { pathname } = url;

    if (pathname === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) {
      sendJson(res, 200, { status: 'ok', issuer });
      return;
    }

    // RFC 8414 metadata and the other discovery locations MCP clients try for an issuer with a
    // path: all answer with the provider's discovery document.
    if (pathname === `/.well-known/oauth-authorization-server${prefix}`
      || (prefix && pathname === `/.well-known/openid-configuration${prefix}`)) {
      req.url = `${prefix}/.well-known/openid-configuration${url.search}`;
    }

    // Browser-based MCP clients (the Inspector's web UI on :6274) register from the page: allow
    // loopback origins on the registration endpoint, which the provider serves without CORS.
    const origin = req.headers.origin;
    if (pathname === `${prefix}${ROUTES.registration}` && origin && isLoopbackOrigin(origin)) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Vary', 'Origin');
      if (req.method === 'OPTIONS') {
        res.writeHead(204, {
          'Access-Control-Allow-Methods': 'POST',
          'Access-Control-Allow-Headers': req.headers['access-control-request-headers'] ?? 'content-type',
          'Access-Control-Max-Age': '3600',
        });
        res.end();
        return;
      }
    }

    const m = interactionPath.exec(pathname);
    if (m) {
      await interaction(req, res, m[1], m[2]);
      return;
    }

    const inRealm = req.url === prefix || req.url.startsWith(`${prefix}/`) || req.url.startsWith(`${prefix}?`);
    if (prefix && inRealm) {
      // Mounted like Express does it: the provider sees the path below the mount point and
      // derives its absolute URLs from originalUrl, so redirects keep the /realms/... prefix.
      // (baseUrl covers requests whose query the scope middleware below rewrites.)
      req.originalUrl = req.url;
      req.baseUrl = prefix;
      req.url = req.url.slice(prefix.length) || '/';
      if (req.url.startsWith('?')) req.url = `/${req.url}`;
      callback(req, res);
      return;
    }
    if (!prefix) {
      callback(req, res);
      return;
    }
    sendJson(res, 404, { error: 'not_found', error_description: `no route for ${pathname}` });
  }

  const server = http.createServer((req, res) => {
    const started = process.hrtime.bigint();
    const path = req.url.split('?')[0];
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      log(`${req.method} ${path} ${res.statusCode} ${ms.toFixed(1)}ms`);
    });
    handle(req, res).catch((err) => {
      log(`authserver: error handling ${req.method} ${path}: ${err.stack ?? err}`);
      if (!res.headersSent) sendJson(res, err.status ?? 500, { error: 'server_error', error_description: String(err.message) });
      else res.destroy();
    });
  });

  return {
    server, provider, issuer, prefix, keyFile, keysCreated: created, jwks,
  };
}
