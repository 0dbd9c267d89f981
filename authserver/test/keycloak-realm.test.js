// keycloak/realm-my-realm.json describes the same realm as this dev server: keep them in step.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { test } from 'node:test';

import { REALM_DEFAULTS, USERS } from '../lib/authserver.js';

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

test('optional client scope mcp:admin: requestable by mcp-client and by registered clients, in the token scope', () => {
  for (const name of REALM_DEFAULTS.optionalScopes) {
    const scope = realm.clientScopes.find((s) => s.name === name);
    assert.ok(scope, name);
    assert.equal(scope.attributes['include.in.token.scope'], 'true');
    const client = realm.clients.find((c) => c.clientId === REALM_DEFAULTS.clientId);
    assert.ok(client.optionalClientScopes.includes(name));
    assert.ok(!client.defaultClientScopes.includes(name), 'not in the default token');
    assert.ok(realm.defaultOptionalClientScopes.includes(name));
    assert.ok(!realm.defaultDefaultClientScopes.includes(name));
  }
});

test('every dev-server user exists with the same id, password and roles; roles reach access tokens', () => {
  for (const [username, user] of USERS) {
    const kc = realm.users.find((u) => u.username === username);
    assert.ok(kc, username);
    assert.equal(kc.id, user.sub);
    assert.deepEqual(kc.credentials, [{ type: 'password', value: user.password, temporary: false }]);
    for (const role of user.roles) {
      assert.ok(kc.realmRoles.includes(role), `${username}: ${role}`);
      assert.ok(realm.roles.realm.some((r) => r.name === role), role);
    }
  }
  assert.ok(!realm.users.find((u) => u.username === 'alice').realmRoles.includes('admin'));
  // A top-level `roles` claim (the policy reads jwt.roles) on every token for the MCP server.
  const tools = realm.clientScopes.find((s) => s.name === REALM_DEFAULTS.scope);
  const mapper = tools.protocolMappers.find((m) => m.protocolMapper === 'oidc-usermodel-realm-role-mapper');
  assert.equal(mapper.config['claim.name'], 'roles');
  assert.equal(mapper.config.multivalued, 'true');
  assert.equal(mapper.config['access.token.claim'], 'true');
});
