#!/usr/bin/env node
// Calls the echo tool through the OAuth-protected MCP endpoint with the MCP TypeScript SDK, as a
// person would: it prints the authorization URL, you sign in (eitan / test) in a browser, and the
// browser's redirect to a local callback listener hands over the code.
//
//   bash scripts/node.sh run node tests/e2e/sdk-echo.js [http://localhost:9000/mcp] [message] [count]
//
// Options by environment: MCP_CLIENT_ID (default: dynamic registration; `mcp-client` is the
// realm's static client), MCP_CALLBACK_URL (default http://127.0.0.1:6276/oauth/callback, which
// `mcp-client` has registered).
import * as http from 'node:http';

import { InMemoryOAuthClientProvider, connectWithOAuth } from './lib/sdk-client.js';

const [serverUrl = 'http://localhost:9000/mcp', message = 'hi', count = '2'] = process.argv.slice(2);
const callbackUrl = new URL(process.env.MCP_CALLBACK_URL || 'http://127.0.0.1:6276/oauth/callback');

// Waits for the browser to come back to the callback URL; resolves to the full URL it hit.
function waitForCallback() {
  return new Promise((resolve, reject) => {
    const server = http.createServer((req, res) => {
      const url = new URL(req.url, callbackUrl);
      if (url.pathname !== callbackUrl.pathname) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
        .end('<p>Signed in. You can close this tab and return to the terminal.</p>');
      server.close();
      resolve(url.href);
    });
    server.once('error', reject);
    server.listen(Number(callbackUrl.port), callbackUrl.hostname);
  });
}

const provider = new InMemoryOAuthClientProvider({
  redirectUrl: callbackUrl.href,
  clientId: process.env.MCP_CLIENT_ID || undefined,
  openBrowser: async (url) => {
    const landed = waitForCallback();
    process.stderr.write(`Please navigate to: ${url}\n`);
    return landed;
  },
});

const { client, transport } = await connectWithOAuth(serverUrl, provider);
try {
  const result = await client.callTool({ name: 'echo', arguments: { message, repeat_count: Number(count) } });
  console.log(result.content.map((c) => c.text).join('\n'));
} finally {
  await transport.terminateSession().catch(() => {});
  await client.close();
}
