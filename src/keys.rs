//! JSON Web Key Sets (RFC 7517): parsing into ready-to-use verification keys, and signature
//! verification with them.
//!
//! Keys are parsed once per fetched key set, not per request. Entries the filter cannot or
//! must not use (encryption keys, unknown key types, malformed members, weak RSA) are skipped
//! with a note for the log; a set with no usable key at all is an error, so a broken or empty
//! response never replaces good keys.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::error::TokenError;
use crate::jws::Algorithm;

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (bounds verification cost).
pub const MAX_RSA_BITS: usize = 8192;

#[derive(Debug, Clone)]
pub enum PublicKey {
    Rsa(Box<rsa::RsaPublicKey>),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Ed25519(ed25519_compact::PublicKey),
}

impl PublicKey {
    /// Whether `alg` is meant for this key type.
    pub fn fits(&self, alg: Algorithm) -> bool {
        use Algorithm::*;
        matches!(
            (self, alg),
            (PublicKey::Rsa(_), RS256 | RS384 | RS512 | PS256 | PS384 | PS512)
                | (PublicKey::P256(_), ES256)
                | (PublicKey::P384(_), ES384)
                | (PublicKey::Ed25519(_), EdDSA)
        )
    }

    /// Verifies `signature` over `message` with `alg`. The caller has checked [`fits`].
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> Result<(), TokenError> {
        use Algorithm::*;
        let ok = match (self, alg) {
            (PublicKey::Rsa(key), RS256) => rsa_pkcs1::<Sha256>(key, message, signature),
            (PublicKey::Rsa(key), RS384) => rsa_pkcs1::<Sha384>(key, message, signature),
            (PublicKey::Rsa(key), RS512) => rsa_pkcs1::<Sha512>(key, message, signature),
            (PublicKey::Rsa(key), PS256) => rsa_pss::<Sha256>(key, message, signature),
            (PublicKey::Rsa(key), PS384) => rsa_pss::<Sha384>(key, message, signature),
            (PublicKey::Rsa(key), PS512) => rsa_pss::<Sha512>(key, message, signature),
            (PublicKey::P256(key), ES256) => {
                use p256::ecdsa::signature::Verifier;
                p256::ecdsa::Signature::from_slice(signature)
                    .map(|sig| key.verify(message, &sig).is_ok())
                    .unwrap_or(false)
            }
            (PublicKey::P384(key), ES384) => {
                use p384::ecdsa::signature::Verifier;
                p384::ecdsa::Signature::from_slice(signature)
                    .map(|sig| key.verify(message, &sig).is_ok())
                    .unwrap_or(false)
            }
            (PublicKey::Ed25519(key), EdDSA) => ed25519_compact::Signature::from_slice(signature)
                .map(|sig| key.verify(message, &sig).is_ok())
                .unwrap_or(false),
            _ => return Err(TokenError::UnsupportedAlg),
        };
        if ok {
            Ok(())
        } else {
            Err(TokenError::BadSignature)
        }
    }
}

fn rsa_pkcs1<D: Digest + rsa::pkcs8::AssociatedOid>(
    key: &rsa::RsaPublicKey,
    message: &[u8],
    signature: &[u8],
) -> bool {
    let hashed = D::digest(message);
    key.verify(rsa::Pkcs1v15Sign::new::<D>(), &hashed, signature).is_ok()
}

fn rsa_pss<D: 'static + Digest + sha2::digest::DynDigest + Send + Sync>(
    key: &rsa::RsaPublicKey,
    message: &[u8],
    signature: &[u8],
) -> bool {
    let hashed = D::digest(message);
    key.verify(rsa::Pss::new::<D>(), &hashed, signature).is_ok()
}

/// Identifies a key by its material (SHA-256 over type, `kid`, `alg` and public parameters),
/// so a cached verdict can tell whether the key that made it is still in the set.
pub type KeyId = [u8; 32];

/// One usable verification key from the set.
#[derive(Debug, Clone)]
pub struct Jwk {
    pub id: KeyId,
    pub kid: Option<String>,
    /// The key's own `alg`, when it names one: then only that algorithm may use it.
    pub alg: Option<Algorithm>,
    pub key: PublicKey,
}

impl Jwk {
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.key.fits(alg) && self.alg.is_none_or(|own| own == alg)
    }
}

#[derive(Debug, Clone, Default)]
pub struct KeySet {
    pub keys: Vec<Jwk>,
    /// Why entries were skipped, for the operator's log.
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksError {
    NotJson,
    NoKeysArray,
    NoUsableKey,
}

impl std::fmt::Display for JwksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JwksError::NotJson => "key set is not a JSON object",
            JwksError::NoKeysArray => "key set has no `keys` array",
            JwksError::NoUsableKey => "key set has no usable signing key",
        })
    }
}

/// What a key lookup for a token found.
#[derive(Debug)]
pub enum KeyMatch<'a> {
    Found(&'a Jwk),
    /// A key with that `kid` exists but not for this algorithm.
    WrongAlgorithm,
    /// Nothing with that `kid`; or, without `kid`, not exactly one key for the algorithm.
    NotFound,
}

impl KeySet {
    pub fn parse(body: &[u8]) -> Result<KeySet, JwksError> {
        let doc: Value = serde_json::from_slice(body).map_err(|_| JwksError::NotJson)?;
        let doc = doc.as_object().ok_or(JwksError::NotJson)?;
        let entries = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NoKeysArray)?;
        let mut set = KeySet::default();
        for (i, entry) in entries.iter().enumerate() {
            match parse_jwk(entry) {
                Ok(jwk) => set.keys.push(jwk),
                Err(why) => set.skipped.push(format!("keys[{i}]: {why}")),
            }
        }
        if set.keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        Ok(set)
    }

    /// Selects the key for a token: by `kid` when the token has one; without `kid`, only
    /// when exactly one key accepts the algorithm (never "try them all").
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> KeyMatch<'_> {
        match kid {
            Some(kid) => {
                let mut named = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).peekable();
                if named.peek().is_none() {
                    return KeyMatch::NotFound;
                }
                named
                    .find(|k| k.accepts(alg))
                    .map_or(KeyMatch::WrongAlgorithm, KeyMatch::Found)
            }
            None => {
                let mut suitable = self.keys.iter().filter(|k| k.accepts(alg));
                match (suitable.next(), suitable.next()) {
                    (Some(only), None) => KeyMatch::Found(only),
                    _ => KeyMatch::NotFound,
                }
            }
        }
    }

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().filter_map(|k| k.kid.as_deref())
    }
}

fn parse_jwk(entry: &Value) -> Result<Jwk, String> {
    let obj = entry.as_object().ok_or("not an object")?;
    let kid = match obj.get("kid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("kid is not a string".into()),
    };
    let label = kid.as_deref().unwrap_or("(no kid)").chars().take(64).collect::<String>();
    let fail = |why: &str| format!("{label}: {why}");
    match obj.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(Value::String(u)) => return Err(fail(&format!("use `{u}` is not sig"))),
        Some(_) => return Err(fail("use is not a string")),
    }
    if let Some(ops) = obj.get("key_ops") {
        let ops = ops.as_array().ok_or_else(|| fail("key_ops is not an array"))?;
        if !ops.iter().any(|op| op.as_str() == Some("verify")) {
            return Err(fail("key_ops does not include verify"));
        }
    }
    let alg = match obj.get("alg") {
        None => None,
        Some(Value::String(name)) => Some(
            Algorithm::from_name(name)
                .ok_or_else(|| fail(&format!("alg `{name}` is not a supported signature algorithm")))?,
        ),
        Some(_) => return Err(fail("alg is not a string")),
    };
    let kty = obj.get("kty").and_then(Value::as_str).ok_or_else(|| fail("no kty"))?;
    let key = match kty {
        "RSA" => rsa_key(obj).map_err(|e| fail(&e))?,
        "EC" => ec_key(obj).map_err(|e| fail(&e))?,
        "OKP" => okp_key(obj).map_err(|e| fail(&e))?,
        other => return Err(fail(&format!("kty `{other}` is not supported"))),
    };
    if let Some(alg) = alg {
        if !key.fits(alg) {
            return Err(fail(&format!("alg {} does not fit kty {kty}", alg.name())));
        }
    }
    let mut hasher = Sha256::new();
    for part in [Some(kty), kid.as_deref(), alg.map(Algorithm::name)]
        .into_iter()
        .chain(["n", "e", "crv", "x", "y"].iter().map(|m| obj.get(*m).and_then(Value::as_str)))
    {
        hasher.update(part.unwrap_or("").as_bytes());
        hasher.update([0]);
    }
    Ok(Jwk { id: hasher.finalize().into(), kid, alg, key })
}

fn member(obj: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let s = obj
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing `{name}`"))?;
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| format!("`{name}` is not base64url"))
}

fn rsa_key(obj: &Map<String, Value>) -> Result<PublicKey, String> {
    let n = member(obj, "n")?;
    let e = member(obj, "e")?;
    let n = rsa::BigUint::from_bytes_be(&n);
    let bits = n.bits();
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(format!("RSA modulus of {bits} bits is outside {MIN_RSA_BITS}..={MAX_RSA_BITS}"));
    }
    let e = rsa::BigUint::from_bytes_be(&e);
    rsa::RsaPublicKey::new_with_max_size(n, e, MAX_RSA_BITS)
        .map(|k| PublicKey::Rsa(Box::new(k)))
        .map_err(|err| format!("invalid RSA key: {err}"))
}

fn ec_key(obj: &Map<String, Value>) -> Result<PublicKey, String> {
    let crv = obj.get("crv").and_then(Value::as_str).ok_or("no crv")?;
    let x = member(obj, "x")?;
    let y = member(obj, "y")?;
    let size = match crv {
        "P-256" => 32,
        "P-384" => 48,
        other => return Err(format!("curve `{other}` is not supported")),
    };
    if x.len() != size || y.len() != size {
        return Err(format!("coordinates of a {crv} key must be {size} bytes"));
    }
    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    let bad = |_| format!("not a point on {crv}");
    match crv {
        "P-256" => p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)
            .map(PublicKey::P256)
            .map_err(bad),
        _ => p384::ecdsa::VerifyingKey::from_sec1_bytes(&point)
            .map(PublicKey::P384)
            .map_err(bad),
    }
}

fn okp_key(obj: &Map<String, Value>) -> Result<PublicKey, String> {
    let crv = obj.get("crv").and_then(Value::as_str).ok_or("no crv")?;
    if crv != "Ed25519" {
        return Err(format!("curve `{crv}` is not supported"));
    }
    let x = member(obj, "x")?;
    ed25519_compact::PublicKey::from_slice(&x)
        .map(PublicKey::Ed25519)
        .map_err(|_| "not an Ed25519 public key".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkeys;

    #[test]
    fn keycloak_shaped_set_skips_the_encryption_key() {
        let set = KeySet::parse(testkeys::keycloak_jwks().to_string().as_bytes()).unwrap();
        assert_eq!(set.keys.len(), 1);
        assert_eq!(set.keys[0].kid.as_deref(), Some(testkeys::RSA_KID));
        assert_eq!(set.skipped.len(), 1);
        assert!(set.skipped[0].contains("use `enc`"), "{:?}", set.skipped);
    }

    #[test]
    fn all_key_types_parse() {
        let set = KeySet::parse(testkeys::all_types_jwks().to_string().as_bytes()).unwrap();
        assert_eq!(set.keys.len(), 4, "{:?}", set.skipped);
        assert!(matches!(set.find(Some("ec256"), Algorithm::ES256), KeyMatch::Found(_)));
        assert!(matches!(set.find(Some("ec384"), Algorithm::ES384), KeyMatch::Found(_)));
        assert!(matches!(set.find(Some("ed"), Algorithm::EdDSA), KeyMatch::Found(_)));
        assert!(matches!(set.find(Some("ec256"), Algorithm::RS256), KeyMatch::WrongAlgorithm));
        assert!(matches!(set.find(Some("nope"), Algorithm::RS256), KeyMatch::NotFound));
        // Without kid: exactly one key fits ES256 but RS256 fits the one RSA key too.
        assert!(matches!(set.find(None, Algorithm::ES256), KeyMatch::Found(_)));
        assert!(matches!(set.find(None, Algorithm::RS256), KeyMatch::Found(_)));
    }

    #[test]
    fn without_kid_two_candidates_is_not_found() {
        let mut doc = testkeys::keycloak_jwks();
        let mut second = doc["keys"][1].clone();
        second["kid"] = "other".into();
        doc["keys"].as_array_mut().unwrap().push(second);
        let set = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        assert!(matches!(set.find(None, Algorithm::RS256), KeyMatch::NotFound));
    }

    #[test]
    fn key_alg_restricts_use() {
        let set = KeySet::parse(testkeys::keycloak_jwks().to_string().as_bytes()).unwrap();
        // The Keycloak key says alg RS256: PS256 with it is refused.
        assert!(matches!(
            set.find(Some(testkeys::RSA_KID), Algorithm::PS256),
            KeyMatch::WrongAlgorithm
        ));
    }

    #[test]
    fn broken_sets() {
        assert_eq!(KeySet::parse(b"not json").unwrap_err(), JwksError::NotJson);
        assert_eq!(KeySet::parse(b"[]").unwrap_err(), JwksError::NotJson);
        assert_eq!(KeySet::parse(b"{}").unwrap_err(), JwksError::NoKeysArray);
        assert_eq!(KeySet::parse(br#"{"keys":[]}"#).unwrap_err(), JwksError::NoUsableKey);
        let junk = serde_json::json!({"keys": [
            1, "x", {}, {"kty": "RSA"}, {"kty": "RSA", "n": "!!", "e": "AQAB"},
            {"kty": "oct", "k": "c2VjcmV0"}, {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"},
            {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"},
            {"kty": "OKP", "crv": "X25519", "x": "AAAA"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "alg": "ES256", "n": testkeys::rsa_n(), "e": "AQAB"},
            {"kty": "RSA", "key_ops": ["encrypt"], "n": testkeys::rsa_n(), "e": "AQAB"},
            {"kty": "RSA", "kid": 5, "n": testkeys::rsa_n(), "e": "AQAB"}
        ]});
        let body = junk.to_string();
        assert_eq!(KeySet::parse(body.as_bytes()).unwrap_err(), JwksError::NoUsableKey);
    }

    #[test]
    fn weak_rsa_is_skipped() {
        // 1024-bit modulus: all ones.
        let n = URL_SAFE_NO_PAD.encode([0xffu8; 128]);
        let doc = serde_json::json!({"keys": [{"kty": "RSA", "kid": "weak", "n": n, "e": "AQAB"}]});
        assert_eq!(KeySet::parse(doc.to_string().as_bytes()).unwrap_err(), JwksError::NoUsableKey);
    }

    #[test]
    fn signatures_verify_and_tampering_fails() {
        let set = KeySet::parse(testkeys::all_types_jwks().to_string().as_bytes()).unwrap();
        for (kid, alg) in [
            (testkeys::RSA_KID, Algorithm::RS256),
            (testkeys::RSA_KID, Algorithm::RS384),
            (testkeys::RSA_KID, Algorithm::RS512),
            (testkeys::RSA_KID, Algorithm::PS256),
            (testkeys::RSA_KID, Algorithm::PS384),
            (testkeys::RSA_KID, Algorithm::PS512),
            ("ec256", Algorithm::ES256),
            ("ec384", Algorithm::ES384),
            ("ed", Algorithm::EdDSA),
        ] {
            let msg = b"header.payload";
            let sig = testkeys::sign(alg, msg);
            let KeyMatch::Found(jwk) = set.find(Some(kid), alg) else {
                panic!("no key {kid} for {alg:?}")
            };
            assert_eq!(jwk.key.verify(alg, msg, &sig), Ok(()), "{alg:?}");
            assert_eq!(jwk.key.verify(alg, b"header.payloaD", &sig), Err(TokenError::BadSignature));
            let mut bad = sig.clone();
            bad[0] ^= 1;
            assert_eq!(jwk.key.verify(alg, msg, &bad), Err(TokenError::BadSignature));
            assert_eq!(jwk.key.verify(alg, msg, &[]), Err(TokenError::BadSignature));
        }
    }
}
