// Signing and encryption keys of the dev authorization server, kept in a file so that tokens
// (and a filter's cached key set) stay valid across restarts.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

// RFC 7638 JWK thumbprint of an RSA key: SHA-256 over the required members in lexical order.
export function rsaThumbprint(jwk) {
  const canonical = JSON.stringify({ e: jwk.e, kty: 'RSA', n: jwk.n });
  return crypto.createHash('sha256').update(canonical).digest('base64url');
}

function newRsaJwk(use, alg) {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: rsaThumbprint(jwk), use, alg };
}

function isUsable(keys) {
  return Array.isArray(keys)
    && keys.some((k) => k.kty === 'RSA' && k.use === 'sig' && k.alg === 'RS256' && k.d)
    && keys.some((k) => k.kty === 'RSA' && k.use === 'enc' && k.d);
}

// Returns the private JWKS ({ keys: [sig, enc] }) stored in `${dataDir}/jwks.json`, creating it on
// first use. Creation is race-free: the file is written aside and hard-linked into place, so two
// servers starting at once end up with the same keys.
export function loadOrCreateKeys(dataDir) {
  const file = path.join(dataDir, 'jwks.json');
  try {
    const stored = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (isUsable(stored.keys)) return { jwks: stored, file, created: false };
    throw new Error(`${file} holds no RS256 signing key and RSA encryption key; delete it to start over`);
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const jwks = { keys: [newRsaJwk('sig', 'RS256'), newRsaJwk('enc', 'RSA-OAEP')] };
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(jwks, null, 2)}\n`, { mode: 0o600 });
  try {
    fs.linkSync(tmp, file);
  } catch (err) {
    if (err.code !== 'EEXIST') throw err;
    fs.unlinkSync(tmp);
    return loadOrCreateKeys(dataDir);
  }
  fs.unlinkSync(tmp);
  return { jwks, file, created: true };
}

// Public members only, as published at the JWKS endpoint.
export function publicJwk(jwk) {
  const {
    kty, n, e, kid, use, alg,
  } = jwk;
  return {
    kty, n, e, kid, use, alg,
  };
}
