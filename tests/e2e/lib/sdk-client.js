// An MCP client on the official TypeScript SDK with its OAuth support: protected-resource metadata
// discovery, authorization server discovery, dynamic registration (or a static client id),
// authorization code + PKCE + resource, token; then ordinary MCP calls with the bearer token.
import * as crypto from 'node:crypto';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

/**
 * OAuthClientProvider keeping everything in memory. `openBrowser(url)` stands for sending the user
 * to the authorization server; it resolves to the URL the browser finally landed on (the
 * redirect URI with `code` and `state`).
 */
export class InMemoryOAuthClientProvider {
  constructor({ redirectUrl, clientId, openBrowser }) {
    this._redirectUrl = redirectUrl;
    this._staticClient = clientId ? { client_id: clientId } : undefined;
    this._openBrowser = openBrowser;
    this.registered = undefined;
    this.authorizationUrls = [];
    this.landedAt = undefined;
  }

  get redirectUrl() {
    return this._redirectUrl;
  }

  get clientMetadata() {
    return {
      client_name: 'mcp-auth e2e (MCP TypeScript SDK)',
      redirect_uris: [this._redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  state() {
    this._state = crypto.randomBytes(16).toString('base64url');
    return this._state;
  }

  clientInformation() {
    return this.registered ?? this._staticClient;
  }

  saveClientInformation(info) {
    this.registered = info;
  }

  tokens() {
    return this._tokens;
  }

  saveTokens(tokens) {
    this._tokens = tokens;
  }

  async redirectToAuthorization(url) {
    this.authorizationUrls.push(new URL(url));
    this.landedAt = new URL(await this._openBrowser(url.href));
  }

  // SEP-2352 (SDK 2.x): the authorization server the flow started with, checked on the callback.
  saveDiscoveryState(state) {
    this._discovery = state;
  }

  discoveryState() {
    return this._discovery;
  }

  saveCodeVerifier(verifier) {
    this._verifier = verifier;
  }

  codeVerifier() {
    if (!this._verifier) throw new Error('no code verifier saved');
    return this._verifier;
  }

  invalidateCredentials(scope) {
    if (scope === 'all' || scope === 'client') this.registered = undefined;
    if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
    if (scope === 'all' || scope === 'verifier') this._verifier = undefined;
  }

  // The authorization response, checked like a client must: state, then issuer (RFC 9207).
  authorizationCode() {
    const params = this.landedAt?.searchParams;
    if (!params) throw new Error('the user never came back to the redirect URI');
    if (params.get('error')) throw new Error(`authorization failed: ${params.get('error')} ${params.get('error_description') ?? ''}`);
    if (params.get('state') !== this._state) throw new Error('state mismatch in the authorization response');
    return params.get('code');
  }
}

const CLIENT_INFO = { name: 'mcp-auth-e2e-sdk', version: '1.0.0' };

/**
 * Connects to `serverUrl`, running the OAuth flow when the server answers 401.
 * Returns { client, transport, provider, authorized }.
 */
export async function connectWithOAuth(serverUrl, provider) {
  const url = new URL(serverUrl);
  let client = new Client(CLIENT_INFO);
  let transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
  try {
    await client.connect(transport);
    return {
      client, transport, provider, authorized: false,
    };
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
  }
  await transport.finishAuth(provider.authorizationCode());
  await transport.close().catch(() => {});
  client = new Client(CLIENT_INFO);
  transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
  await client.connect(transport);
  return {
    client, transport, provider, authorized: true,
  };
}

// Connects with a fixed Authorization header and no OAuth support: what a client holding some
// token does. Rejects with the SDK's StreamableHTTPError when the server refuses.
export async function connectWithToken(serverUrl, token) {
  const client = new Client(CLIENT_INFO);
  const headers = token === undefined ? {} : { Authorization: `Bearer ${token}` };
  const transport = new StreamableHTTPClientTransport(new URL(serverUrl), { requestInit: { headers } });
  await client.connect(transport);
  return { client, transport };
}
