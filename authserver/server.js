#!/usr/bin/env node
// Development authorization server (Keycloak realm `my-realm` look-alike). See README.md.
//
// Environment:
//   AUTH_PORT                 listen port (default 8080)
//   AUTH_HOST                 listen address (default 127.0.0.1)
//   AUTH_ISSUER               issuer (default http://localhost:$AUTH_PORT/realms/my-realm)
//   AUTH_DATA_DIR             where the signing/encryption keys are kept (default authserver/.data)
//   AUTH_DEFAULT_RESOURCE     resource assumed when a request names none (default http://localhost:9000/mcp)
//   AUTH_ACCESS_TOKEN_TTL     access token lifetime in seconds (default 300)
//   AUTH_EXTRA_REDIRECT_URIS  more redirect URIs for `mcp-client`, separated by spaces or commas
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { createAuthServer } from './lib/authserver.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const env = process.env;

function intEnv(name, fallback, min = 0) {
  if (env[name] === undefined || env[name] === '') return fallback;
  const value = Number(env[name]);
  if (!Number.isSafeInteger(value) || value < min) {
    console.error(`authserver: ${name} must be an integer >= ${min}, got ${JSON.stringify(env[name])}`);
    process.exit(2);
  }
  return value;
}

const port = intEnv('AUTH_PORT', 8080);
const host = env.AUTH_HOST || '127.0.0.1';
const issuer = env.AUTH_ISSUER || `http://localhost:${port}/realms/my-realm`;
const dataDir = path.resolve(env.AUTH_DATA_DIR || path.join(here, '.data'));

let app;
try {
  app = createAuthServer({
    issuer,
    dataDir,
    defaultResource: env.AUTH_DEFAULT_RESOURCE || undefined,
    accessTokenTtl: intEnv('AUTH_ACCESS_TOKEN_TTL', undefined, 1),
    extraRedirectUris: (env.AUTH_EXTRA_REDIRECT_URIS || '').split(/[\s,]+/).filter(Boolean),
  });
} catch (err) {
  console.error(`authserver: ${err.message}`);
  process.exit(1);
}

const { server } = app;
server.on('error', (err) => {
  console.error(`authserver: cannot listen on ${host}:${port}: ${err.message}`);
  process.exit(1);
});
server.listen(port, host, () => {
  const { port: bound } = server.address();
  console.log(`authserver: ${app.keysCreated ? 'created' : 'loaded'} keys ${app.keyFile}`);
  console.log(`authserver: issuer ${app.issuer}`);
  console.log(`authserver: listening on http://${host}:${bound} (user eitan / test, public client mcp-client)`);
});

function shutdown(signal) {
  console.log(`authserver: ${signal}, shutting down`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
