// Tests of the dev authorization server, in-process on a free port: `node --test test/`.
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { createAuthServer, USERS } from '../lib/authserver.js';
import { authorizeAsUser } from '../lib/login-agent.js';

const CALLBACK = 'http://127.0.0.1:6276/oauth/callback';

async function freePort() {
  const srv = net.createServer();
  await new Promise((resolve) => { srv.listen(0, '127.0.0.1', resolve); });
  const { port } = srv.address();
  await new Promise((resolve) => { srv.close(resolve); });
  return port;
}

function decodeJwt(token) {
  const [h, p, s] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url')),
    payload: JSON.parse(Buffer.from(p, 'base64url')),
    signingInput: `${h}.${p}`,
    signature: Buffer.from(s, 'base64url'),
  };
}

function pkce() {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

const form = (params) => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams(params).toString(),
});

describe('dev authorization server', () => {
  let dataDir;
  let app;
  let origin;
  let issuer;
  let meta;

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'authserver-test-'));
    const port = await freePort();
    origin = `http://localhost:${port}`;
    issuer = `${origin}/realms/my-realm`;
    app = createAuthServer({ issuer, dataDir, log: () => {} });
    await new Promise((resolve) => { app.server.listen(port, '127.0.0.1', resolve); });
    meta = await (await fetch(`${origin}/.well-known/oauth-authorization-server/realms/my-realm`)).json();
  });

  after(async () => {
    app?.server.closeAllConnections();
    await new Promise((resolve) => { app?.server.close(resolve); });
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  // Exchanges a code obtained by signing in (as eitan unless told); returns the token response.
  async function signInAndExchange({
    clientId, scope, resource, username,
  }) {
    const { verifier, challenge } = pkce();
    const url = new URL(meta.authorization_endpoint);
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: CALLBACK,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state: 'st4te',
      ...(scope !== undefined ? { scope } : {}),
      ...(resource ? { resource } : {}),
    }).toString();
    const { callbackUrl } = await authorizeAsUser(url.href, { redirectUri: CALLBACK, ...(username ? { username } : {}) });
    const cb = new URL(callbackUrl).searchParams;
    assert.equal(cb.get('state'), 'st4te');
    assert.equal(cb.get('iss'), issuer);
    assert.ok(cb.get('code'), `no code in ${callbackUrl}`);
    const res = await fetch(meta.token_endpoint, form({
      grant_type: 'authorization_code',
      code: cb.get('code'),
      redirect_uri: CALLBACK,
      code_verifier: verifier,
      client_id: clientId,
      ...(resource ? { resource } : {}),
    }));
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    return body;
  }

  function assertAccessToken(token, { username = 'eitan' } = {}) {
    const jwt = decodeJwt(token);
    assert.equal(jwt.header.alg, 'RS256');
    const signing = app.jwks.keys.find((k) => k.use === 'sig');
    assert.equal(jwt.header.kid, signing.kid);
    const key = crypto.createPublicKey({ key: { kty: 'RSA', n: signing.n, e: signing.e }, format: 'jwk' });
    assert.ok(crypto.verify('sha256', Buffer.from(jwt.signingInput), key, jwt.signature), 'signature');
    const c = jwt.payload;
    assert.equal(c.iss, issuer);
    assert.equal(c.aud, 'echo-mcp-server');
    assert.equal(c.sub, USERS.get(username).sub);
    assert.equal(c.exp - c.iat, 300);
    assert.ok(Math.abs(c.iat - Date.now() / 1000) < 60);
    assert.ok(c.scope.split(' ').includes('mcp:tools'), c.scope);
    assert.equal(c.preferred_username, username);
    return c;
  }

  test('health endpoint', async () => {
    const res = await fetch(`${origin}/healthz`);
    assert.equal(res.status, 200);
    assert.equal((await res.json()).issuer, issuer);
  });

  test('discovery at every location MCP clients try, with Keycloak paths', async () => {
    for (const p of [
      '/.well-known/oauth-authorization-server/realms/my-realm',
      '/.well-known/openid-configuration/realms/my-realm',
      '/realms/my-realm/.well-known/openid-configuration',
    ]) {
      const res = await fetch(`${origin}${p}`);
      assert.equal(res.status, 200, p);
      const doc = await res.json();
      assert.equal(doc.issuer, issuer, p);
    }
    const base = `${issuer}/protocol/openid-connect`;
    assert.equal(meta.authorization_endpoint, `${base}/auth`);
    assert.equal(meta.token_endpoint, `${base}/token`);
    assert.equal(meta.jwks_uri, `${base}/certs`);
    assert.equal(meta.userinfo_endpoint, `${base}/userinfo`);
    assert.equal(meta.registration_endpoint, `${issuer}/clients-registrations/openid-connect`);
    assert.deepEqual(meta.code_challenge_methods_supported, ['S256']);
    assert.deepEqual(meta.response_types_supported, ['code']);
    assert.ok(meta.scopes_supported.includes('mcp:tools'));
    assert.ok(meta.scopes_supported.includes('mcp:admin'));
    assert.ok(meta.token_endpoint_auth_methods_supported.includes('none'));
    assert.equal((await fetch(`${origin}/.well-known/oauth-authorization-server`)).status, 404);
  });

  test('JWKS publishes an RS256 signing key and an RSA-OAEP encryption key, public parts only', async () => {
    const res = await fetch(meta.jwks_uri);
    assert.equal(res.status, 200);
    const { keys } = await res.json();
    const sig = keys.filter((k) => k.use === 'sig');
    const enc = keys.filter((k) => k.use === 'enc');
    assert.equal(sig.length, 1);
    assert.equal(enc.length, 1);
    assert.equal(sig[0].alg, 'RS256');
    assert.equal(enc[0].alg, 'RSA-OAEP');
    for (const k of keys) {
      assert.equal(k.kty, 'RSA');
      assert.ok(k.kid && k.n && k.e);
      for (const priv of ['d', 'p', 'q', 'dp', 'dq', 'qi']) assert.equal(k[priv], undefined);
    }
  });

  test('keys are stable across restarts (same data dir)', () => {
    const again = createAuthServer({ issuer, dataDir, log: () => {} });
    assert.equal(again.keysCreated, false);
    assert.deepEqual(again.jwks.keys.map((k) => k.kid), app.jwks.keys.map((k) => k.kid));
  });

  test('static public client: code + PKCE without scope or resource yields a JWT for echo-mcp-server', async () => {
    const tokens = await signInAndExchange({ clientId: 'mcp-client' });
    assert.equal(tokens.token_type, 'Bearer');
    assert.equal(tokens.expires_in, 300);
    assert.ok(tokens.refresh_token);
    const claims = assertAccessToken(tokens.access_token);
    assert.equal(claims.client_id, 'mcp-client');
    assert.equal(claims.azp, 'mcp-client');
    assert.equal(claims.scope, 'mcp:tools');
    assert.deepEqual(claims.roles, ['admin', 'user']);
  });

  test('mcp:admin is not in the default token but is granted when asked for (step-up)', async () => {
    const tokens = await signInAndExchange({ clientId: 'mcp-client', scope: 'mcp:tools mcp:admin' });
    const claims = assertAccessToken(tokens.access_token);
    assert.deepEqual(claims.scope.split(' ').sort(), ['mcp:admin', 'mcp:tools']);
    // Asking for mcp:admin alone still brings the realm's default scope.
    const alone = assertAccessToken((await signInAndExchange({ clientId: 'mcp-client', scope: 'mcp:admin' })).access_token);
    assert.deepEqual(alone.scope.split(' ').sort(), ['mcp:admin', 'mcp:tools']);
  });

  test('second user alice / test: no admin role, may still ask for mcp:admin', async () => {
    const plain = assertAccessToken(
      (await signInAndExchange({ clientId: 'mcp-client', username: 'alice' })).access_token,
      { username: 'alice' },
    );
    assert.equal(plain.scope, 'mcp:tools');
    assert.deepEqual(plain.roles, ['user']);
    assert.notEqual(plain.sub, USERS.get('eitan').sub);
    const admin = assertAccessToken(
      (await signInAndExchange({ clientId: 'mcp-client', username: 'alice', scope: 'mcp:admin' })).access_token,
      { username: 'alice' },
    );
    assert.ok(admin.scope.split(' ').includes('mcp:admin'));
    assert.deepEqual(admin.roles, ['user']);
  });

  test('dynamic registration with "scope": "" then a resource-bound token', async () => {
    const res = await fetch(meta.registration_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_name: 'MCP Inspector',
        redirect_uris: [CALLBACK],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
        scope: '',
      }),
    });
    const client = await res.json();
    assert.equal(res.status, 201, JSON.stringify(client));
    assert.equal(client.client_secret, undefined);
    const tokens = await signInAndExchange({
      clientId: client.client_id, scope: 'openid', resource: 'http://localhost:9000/mcp',
    });
    const claims = assertAccessToken(tokens.access_token);
    assert.equal(claims.client_id, client.client_id);
    assert.ok(tokens.id_token, 'openid scope gives an ID token');
  });

  test('a client registered with "scope": "mcp:tools" may still step up to mcp:admin', async () => {
    const res = await fetch(meta.registration_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_name: 'MCP SDK client',
        redirect_uris: [CALLBACK],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
        scope: 'mcp:tools',
      }),
    });
    const client = await res.json();
    assert.equal(res.status, 201, JSON.stringify(client));
    const first = assertAccessToken((await signInAndExchange({ clientId: client.client_id, scope: 'mcp:tools' })).access_token);
    assert.equal(first.scope, 'mcp:tools');
    const stepped = assertAccessToken((await signInAndExchange({ clientId: client.client_id, scope: 'mcp:tools mcp:admin' })).access_token);
    assert.deepEqual(stepped.scope.split(' ').sort(), ['mcp:admin', 'mcp:tools']);
  });

  test('any resource indicator still gives aud echo-mcp-server', async () => {
    const tokens = await signInAndExchange({
      clientId: 'mcp-client', scope: 'mcp:tools', resource: 'http://127.0.0.1:45678/mcp',
    });
    assertAccessToken(tokens.access_token);
  });

  test('wrong password is refused on the login form', async () => {
    const { challenge } = pkce();
    const url = new URL(meta.authorization_endpoint);
    url.search = new URLSearchParams({
      response_type: 'code', client_id: 'mcp-client', redirect_uri: CALLBACK, code_challenge: challenge, code_challenge_method: 'S256',
    }).toString();
    await assert.rejects(
      authorizeAsUser(url.href, { redirectUri: CALLBACK, password: 'wrong' }),
      (err) => err.status === 401 && /Invalid username or password/.test(err.message),
    );
  });

  test('PKCE is required', async () => {
    const url = new URL(meta.authorization_endpoint);
    url.search = new URLSearchParams({ response_type: 'code', client_id: 'mcp-client', redirect_uri: CALLBACK }).toString();
    const res = await fetch(url, { redirect: 'manual' });
    assert.equal(res.status, 303);
    const loc = new URL(res.headers.get('location'));
    assert.equal(`${loc.origin}${loc.pathname}`, CALLBACK);
    assert.equal(loc.searchParams.get('error'), 'invalid_request');
    assert.match(loc.searchParams.get('error_description'), /PKCE/);
  });

  test('unregistered redirect URIs are refused', async () => {
    const { challenge } = pkce();
    const url = new URL(meta.authorization_endpoint);
    url.search = new URLSearchParams({
      response_type: 'code', client_id: 'mcp-client', redirect_uri: 'http://localhost:9999/cb', code_challenge: challenge, code_challenge_method: 'S256',
    }).toString();
    const res = await fetch(url, { redirect: 'manual' });
    assert.equal(res.status, 400);
  });

  test('the public client cannot use client credentials or the password grant', async () => {
    for (const grant of [{ grant_type: 'client_credentials' }, { grant_type: 'password', username: 'eitan', password: 'test' }]) {
      const res = await fetch(meta.token_endpoint, form({ ...grant, client_id: 'mcp-client' }));
      assert.equal(res.status, 400, grant.grant_type);
      assert.ok((await res.json()).error, grant.grant_type);
    }
  });

  test('CORS for browser clients on loopback origins (discovery, registration, token)', async () => {
    const origin6274 = 'http://localhost:6274';
    const disco = await fetch(`${origin}/.well-known/oauth-authorization-server/realms/my-realm`, { headers: { origin: origin6274 } });
    assert.ok(disco.headers.get('access-control-allow-origin'));
    for (const endpoint of [meta.registration_endpoint, meta.token_endpoint]) {
      const res = await fetch(endpoint, {
        method: 'OPTIONS',
        headers: { origin: origin6274, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
      });
      assert.equal(res.status, 204, endpoint);
      assert.equal(res.headers.get('access-control-allow-origin'), origin6274, endpoint);
    }
  });

  test('unknown paths are 404', async () => {
    assert.equal((await fetch(`${origin}/realms/other/protocol/openid-connect/certs`)).status, 404);
  });
});
