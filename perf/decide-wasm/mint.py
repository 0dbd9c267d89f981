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
# The claims fixture shared with the tests (tests/fixtures/keycloak_claims.json), valid for an hour.
fixture = json.loads((root / "tests/fixtures/keycloak_claims.json").read_text())
claims = {**fixture["claims"], **{k: now + v for k, v in fixture["relative_times"].items()}, "exp": now + 3600}
signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
print(f"{signing_input}.{b64(sig)}")
