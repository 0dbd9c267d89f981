"""Prints a Keycloak-shaped RS256 token signed by the unit tests' key (src/testdata)."""
import base64, json, time
from pathlib import Path
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

root = Path(__file__).resolve().parents[2]
key = serialization.load_pem_private_key((root / "src/testdata/rsa-test-key.pem").read_bytes(), None)
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
header = {"alg": "RS256", "typ": "JWT", "kid": "kc-rs256-Xq3"}
claims = {"exp": now + 3600, "iat": now, "jti": "x" * 36, "iss": "http://localhost:8080/realms/my-realm",
          "aud": ["echo-mcp-server", "account"], "sub": "5c0b0a42-0000-4000-8000-000000000000", "typ": "Bearer",
          "azp": "mcp-client", "sid": "s" * 36, "scope": "openid mcp:tools email profile",
          "realm_access": {"roles": ["default-roles-my-realm", "offline_access", "uma_authorization"]},
          "email_verified": True, "name": "Eitan Test", "preferred_username": "eitan", "email": "eitan@example.com"}
signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
print(f"{signing_input}.{b64(sig)}")
