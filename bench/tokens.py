#!/usr/bin/env python3
"""Token pool for the benchmark: one RS256 signing key and many distinct Keycloak-shaped tokens.

RSA-2048 signing costs ~0.3-0.5 ms per token in Python (OpenSSL through ``cryptography``), so the
pool is signed in parallel (one process per core) and kept between runs under
``bench/results/.cache/`` (git-ignored): a run only signs the tokens it is missing.

Every token carries a fresh ``jti``/``sub``/``sid`` (so every token string differs) and a long
lifetime (``exp`` = signing time + 24 h) so a kept pool stays valid; a pool whose oldest token
expires within two hours is thrown away and signed again. The issuer is the shipped envoy.yaml's
(``http://localhost:8080/realms/my-realm``): the bench renders its Envoy configs without rebasing
the plugin's URLs, so the issuer does not depend on the free ports a run picks.

CLI (what bench/run.py calls; also handy on its own):

    python bench/tokens.py --ensure 200000     # pool file holds >= 200000 tokens, prints its path
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

from helpers.keys import Key, rsa_key  # noqa: E402  (read-only use of the test harness)
from helpers.tokens import keycloak_claims, mint  # noqa: E402

CACHE_DIR = BENCH_DIR / "results" / ".cache"
KEY_PATH = CACHE_DIR / "signing-key.pem"
META_PATH = CACHE_DIR / "signing-key.json"
POOL_PATH = CACHE_DIR / "tokens.txt"
POOL_META = CACHE_DIR / "tokens.json"

ISSUER = "http://localhost:8080/realms/my-realm"  # envoy.yaml's, unrebased
LIFETIME_S = 24 * 3600
MIN_REMAINING_S = 2 * 3600
BATCH = 2000


def signing_key() -> Key:
    """The bench's RS256 key (x5c like Keycloak's), created once and kept in the cache dir."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    if KEY_PATH.exists() and META_PATH.exists():
        private = serialization.load_pem_private_key(KEY_PATH.read_bytes(), password=None)
        meta = json.loads(META_PATH.read_text())
        if isinstance(private, rsa.RSAPrivateKey):
            return Key(kid=meta["kid"], private=private, kty="RSA", alg="RS256", use="sig", x5c=True)
    key = rsa_key("RS256")
    KEY_PATH.write_bytes(key.private.private_bytes(serialization.Encoding.PEM,
                                                   serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    META_PATH.write_text(json.dumps({"kid": key.kid}))
    # Any pool signed with a previous key is useless now.
    POOL_PATH.unlink(missing_ok=True)
    POOL_META.unlink(missing_ok=True)
    return key


def mint_one(key: Key, now: int | None = None, lifetime: int = LIFETIME_S, **claims) -> str:
    """One token; ``claims`` add or replace claims (e.g. ``roles=["admin"]``)."""
    return mint(key, keycloak_claims(ISSUER, now=now, lifetime=lifetime, **claims))


def _sign_batch(count: int) -> list[str]:
    key = signing_key()
    now = int(time.time())
    return [mint_one(key, now) for _ in range(count)]


def pool_count() -> int:
    """Usable tokens in the kept pool (0 when missing, stale, or signed by another key)."""
    if not (POOL_PATH.exists() and POOL_META.exists()):
        return 0
    try:
        meta = json.loads(POOL_META.read_text())
    except ValueError:
        return 0
    key_meta = json.loads(META_PATH.read_text()) if META_PATH.exists() else {}
    if meta.get("kid") != key_meta.get("kid") or meta.get("issuer") != ISSUER:
        return 0
    if meta.get("oldest_exp", 0) < time.time() + MIN_REMAINING_S:
        return 0
    return int(meta.get("count", 0))


def ensure(count: int, workers: int | None = None, log=print) -> Path:
    """Make the pool file hold at least ``count`` tokens, signing only the missing ones."""
    key = signing_key()
    have = pool_count()
    if have == 0:
        POOL_PATH.write_text("")
        POOL_META.write_text(json.dumps({"kid": key.kid, "issuer": ISSUER, "count": 0,
                                         "oldest_exp": int(time.time()) + LIFETIME_S}))
    missing = count - have
    if missing <= 0:
        return POOL_PATH
    workers = workers or os.cpu_count() or 1
    started = time.monotonic()
    log(f"signing {missing} RS256 tokens with {workers} processes (pool {have} -> {count}) ...")
    batches = [BATCH] * (missing // BATCH) + ([missing % BATCH] if missing % BATCH else [])
    done = have
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool, \
            open(POOL_PATH, "a", encoding="ascii") as out:
        for tokens in pool.map(_sign_batch, batches):
            out.write("\n".join(tokens) + "\n")
            done += len(tokens)
    meta = json.loads(POOL_META.read_text())
    meta["count"] = done
    POOL_META.write_text(json.dumps(meta))
    log(f"signed {missing} tokens in {time.monotonic() - started:.1f}s")
    return POOL_PATH


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ensure", type=int, required=True, metavar="N")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    path = ensure(args.ensure, args.workers, log=lambda m: print(m, file=sys.stderr))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
