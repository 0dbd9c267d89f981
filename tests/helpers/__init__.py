"""Integration-test harness: keys and tokens, JWKS and upstream servers, Envoy process, HTTP client."""
