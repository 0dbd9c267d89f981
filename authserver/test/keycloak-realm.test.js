// keycloak/realm-my-realm.json describes the same realm as this dev server: keep them in step.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { test } from 'node:test';

import { REALM_DEFAULTS } from '../lib/authserver.js';

const realm = JSON.parse(fs.readFileSync(new URL('../../keycloak/realm-my-realm.json', import.meta.url), 'utf8'));

test('realm, lifespan', () => {
  assert.equal(realm.realm, 'my-realm');
  assert.equal(realm.enabled, true);
  assert.equal(realm.accessTokenLifespan, REALM_DEFAULTS.accessTokenTtl);
});

test('public client mcp-client: standard flow + PKCE S256 only', () => {
  const client = realm.clients.find((c) => c.clientId === REALM_DEFAULTS.clientId);
  assert.ok(client);
  assert.equal(client.publicClient, true);
  assert.equal(client.standardFlowEnabled, true);
  assert.equal(client.implicitFlowEnabled, false);
  assert.equal(client.directAccessGrantsEnabled, false);
  assert.equal(client.serviceAccountsEnabled, false);
  assert.equal(client.attributes['pkce.code.challenge.method'], 'S256');
  assert.deepEqual(client.redirectUris, REALM_DEFAULTS.redirectUris);
  assert.deepEqual(client.webOrigins, ['http://localhost:6274']);
  assert.ok(client.defaultClientScopes.includes(REALM_DEFAULTS.scope));
});

test('client scope mcp:tools: default, in the token scope, audience echo-mcp-server', () => {
  const scope = realm.clientScopes.find((s) => s.name === REALM_DEFAULTS.scope);
  assert.ok(scope);
  assert.equal(scope.attributes['include.in.token.scope'], 'true');
  const mapper = scope.protocolMappers.find((m) => m.protocolMapper === 'oidc-audience-mapper');
  assert.equal(mapper.config['included.custom.audience'], REALM_DEFAULTS.audience);
  assert.equal(mapper.config['access.token.claim'], 'true');
  assert.ok(realm.defaultDefaultClientScopes.includes(REALM_DEFAULTS.scope));
});

test('every client scope a client or the realm names is defined (an import declaring scopes gets no built-ins)', () => {
  const defined = new Set(realm.clientScopes.map((s) => s.name));
  const named = [
    ...realm.defaultDefaultClientScopes, ...realm.defaultOptionalClientScopes,
    ...realm.clients.flatMap((c) => [...(c.defaultClientScopes ?? []), ...(c.optionalClientScopes ?? [])]),
  ];
  for (const name of named) assert.ok(defined.has(name), name);
  // Keycloak 25+ puts `sub` in access tokens through the `basic` scope.
  const basic = realm.clientScopes.find((s) => s.name === 'basic');
  assert.ok(basic.protocolMappers.some((m) => m.protocolMapper === 'oidc-sub-mapper'));
});

test('user eitan / test, permanent password', () => {
  const user = realm.users.find((u) => u.username === 'eitan');
  assert.ok(user);
  assert.equal(user.enabled, true);
  assert.equal(user.id, '5f0c2b7e-3a1d-4e8b-9c6f-2d7a1e4b8c90');
  assert.deepEqual(user.credentials, [{ type: 'password', value: 'test', temporary: false }]);
});
