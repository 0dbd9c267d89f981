// Access tokens minted by the tests: with the authorization server's own signing key (read from
// its data dir) but wrong claims, or with a key nobody published.
import { SignJWT, exportJWK, generateKeyPair, importJWK } from 'jose';

const now = () => Math.floor(Date.now() / 1000);

export async function mint(privateJwk, claims, { kid = privateJwk.kid, alg = 'RS256' } = {}) {
  const key = await importJWK(privateJwk, alg);
  return new SignJWT(claims)
    .setProtectedHeader({ alg, typ: 'at+jwt', ...(kid ? { kid } : {}) })
    .sign(key);
}

export async function untrustedRsaJwk() {
  const { privateKey } = await generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
  return exportJWK(privateKey);
}

// Claims of a token the filter accepts (what the authserver issues), to be varied per case.
export function goodClaims(issuer, overrides = {}) {
  const t = now();
  return {
    iss: issuer,
    sub: '5f0c2b7e-3a1d-4e8b-9c6f-2d7a1e4b8c90',
    aud: 'echo-mcp-server',
    azp: 'mcp-client',
    client_id: 'mcp-client',
    scope: 'mcp:tools',
    iat: t,
    exp: t + 300,
    jti: `e2e-${t}-${Math.random().toString(36).slice(2)}`,
    ...overrides,
  };
}

export { now };
