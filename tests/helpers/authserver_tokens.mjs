// Real tokens from the dev authorization server (authserver/), for the Python tests: starts it
// in-process on the given port with a throw-away key directory, signs each user in through the
// code flow with PKCE (the login agent plays the browser), exchanges the code, and prints one
// JSON document: { issuer, jwks (the public key set from the certs endpoint), tokens: { user:
// { access_token, id_token, refresh_token } } }. Then it stops the server: the tokens are
// self-contained JWTs, checked against `jwks` served by the test's own JWKS server.
//
//   node tests/helpers/authserver_tokens.mjs PORT USER...
//   node tests/helpers/authserver_tokens.mjs ISSUER USER...
//
// Given an issuer URL instead of a port, it signs in at that running server (found through its
// `<issuer>/.well-known/openid-configuration`) and neither starts nor stops one.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { createAuthServer, REALM_DEFAULTS } from '../../authserver/lib/authserver.js';
import { authorizeAsUser } from '../../authserver/lib/login-agent.js';

const [portArg, ...users] = process.argv.slice(2);
const running = /^https?:\/\//.test(portArg ?? '');
const port = Number(portArg);
if ((!running && (!Number.isSafeInteger(port) || port <= 0)) || users.length === 0) {
  console.error('usage: authserver_tokens.mjs PORT|ISSUER USER...');
  process.exit(2);
}

const redirectUri = REALM_DEFAULTS.redirectUris[0];
const origin = running ? new URL(portArg).origin : `http://localhost:${port}`;
const issuer = running ? portArg.replace(/\/+$/, '') : `${origin}/realms/my-realm`;
const dataDir = running ? null : fs.mkdtempSync(path.join(os.tmpdir(), 'authserver-tokens-'));
const app = running ? null : createAuthServer({ issuer, dataDir, log: () => {} });

async function signIn(meta, username) {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  const url = new URL(meta.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: REALM_DEFAULTS.clientId,
    redirect_uri: redirectUri,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    scope: 'openid profile',
    nonce: crypto.randomBytes(8).toString('hex'),
  }).toString();
  const { callbackUrl } = await authorizeAsUser(url.href, { redirectUri, username });
  const code = new URL(callbackUrl).searchParams.get('code');
  if (!code) throw new Error(`no code in ${callbackUrl}`);
  const res = await fetch(meta.token_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier, client_id: REALM_DEFAULTS.clientId,
    }).toString(),
  });
  const body = await res.json();
  if (res.status !== 200 || !body.access_token || !body.id_token) {
    throw new Error(`token endpoint answered ${res.status}: ${JSON.stringify(body)}`);
  }
  return { access_token: body.access_token, id_token: body.id_token, refresh_token: body.refresh_token ?? null };
}

try {
  if (app) {
    await new Promise((resolve, reject) => {
      app.server.once('error', reject);
      app.server.listen(port, '127.0.0.1', resolve);
    });
  }
  const metaUrl = running
    ? `${issuer}/.well-known/openid-configuration`
    : `${origin}/.well-known/oauth-authorization-server/realms/my-realm`;
  const meta = await (await fetch(metaUrl)).json();
  const jwks = await (await fetch(meta.jwks_uri)).json();
  const tokens = {};
  for (const user of users) tokens[user] = await signIn(meta, user);
  process.stdout.write(`${JSON.stringify({ issuer, jwks, tokens })}\n`);
} catch (err) {
  console.error(`authserver_tokens: ${err.stack ?? err}`);
  process.exitCode = 1;
} finally {
  if (app) {
    app.server.closeAllConnections();
    await new Promise((resolve) => { app.server.close(resolve); });
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
