// An MCP client on the 2.x TypeScript SDK (`@modelcontextprotocol/client`), whose transport steps up
// by itself on `403 insufficient_scope` (SEP-2350: it asks for the union of the scopes it had and
// the challenged ones, and bypasses the refresh token, which cannot widen a grant). 1.32.2, the last
// `@modelcontextprotocol/sdk`, replaces the scope and refreshes instead, then gives up.
//
// The interactive part stays the application's, as the SDK documents: when the transport sends the
// user to the authorization server, the call rejects with UnauthorizedError; the application hands
// the callback to `transport.finishAuth` and calls again.
import { Client, StreamableHTTPClientTransport, UnauthorizedError } from '@modelcontextprotocol/client';

const CLIENT_INFO = { name: 'mcp-auth-e2e-sdk2', version: '1.0.0' };

/**
 * A fetch that records every request's MCP routing headers and every refused response (status,
 * WWW-Authenticate, body), so a test can check what went over the wire.
 */
export function recordingFetch() {
  const exchanges = [];
  const wrapped = async (input, init) => {
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    const method = init?.method ?? (input instanceof Request ? input.method : 'GET');
    const entry = {
      method,
      url: String(input instanceof Request ? input.url : input),
      mcpMethod: headers.get('mcp-method'),
      mcpName: headers.get('mcp-name'),
      body: typeof init?.body === 'string' ? init.body : undefined,
    };
    const res = await fetch(input, init);
    entry.status = res.status;
    entry.wwwAuthenticate = res.headers.get('www-authenticate');
    if (res.status >= 400) entry.responseBody = await res.clone().text();
    exchanges.push(entry);
    return res;
  };
  wrapped.exchanges = exchanges;
  return wrapped;
}

/**
 * Runs `fn` (a connect or a call); when it needed the user, finishes the authorization with what
 * the browser brought back to the redirect URI (state checked by the provider) and runs it again.
 * Returns { value, reauthorized }.
 */
export async function withAuthorization(transport, provider, fn) {
  try {
    return { value: await fn(), reauthorized: false };
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
  }
  provider.authorizationCode(); // checks state and error before the code is used
  await transport.finishAuth(provider.landedAt.searchParams);
  return { value: await fn(), reauthorized: true };
}

/** Connects with OAuth (login when the server answers 401). Returns { client, transport }. */
export async function connect(serverUrl, provider, fetchFn) {
  const url = new URL(serverUrl);
  const open = () => {
    const transport = new StreamableHTTPClientTransport(url, { authProvider: provider, fetch: fetchFn });
    return { client: new Client(CLIENT_INFO), transport };
  };
  let conn = open();
  try {
    await conn.client.connect(conn.transport);
    return conn;
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
  }
  provider.authorizationCode();
  await conn.transport.finishAuth(provider.landedAt.searchParams);
  await conn.transport.close().catch(() => {});
  conn = open();
  await conn.client.connect(conn.transport);
  return conn;
}

export { UnauthorizedError };
