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

use crate::error::TokenError;
use crate::jws::Algorithm;
use crate::rsa_verify::{Hash, RsaPublic};

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (bounds verification cost).
pub const MAX_RSA_BITS: usize = 8192;

/// A public key, kept in the form its verifier takes. RSA uses the filter's own verifier
/// (`rsa_verify`: Montgomery state precomputed per key, checked against Wycheproof), about five
/// times faster than `ring` inside V8 and ten times the `rsa` crate. EC and Ed25519 use `ring`
/// (BoringSSL's arithmetic in portable C): in V8 about twice as fast as the pure-Rust crates.
#[derive(Debug, Clone)]
pub enum PublicKey {
    Rsa(Box<RsaPublic>),
    /// Uncompressed SEC1 points (`04 || x || y`).
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519([u8; 32]),
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

    /// Verifies `signature` over `message` with `alg`.
    pub fn verify(
        &self,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), TokenError> {
        use ring::signature as rs;
        use Algorithm::*;
        let ok = match (self, alg) {
            (PublicKey::Rsa(key), _) => {
                let (hash, pss) = match alg {
                    RS256 => (Hash::Sha256, false),
                    RS384 => (Hash::Sha384, false),
                    RS512 => (Hash::Sha512, false),
                    PS256 => (Hash::Sha256, true),
                    PS384 => (Hash::Sha384, true),
                    PS512 => (Hash::Sha512, true),
                    _ => return Err(TokenError::UnsupportedAlg),
                };
                let digest = hash.digest(message);
                if pss {
                    key.verify_pss(hash, digest.as_ref(), signature)
                } else {
                    key.verify_pkcs1v15(hash, digest.as_ref(), signature)
                }
            }
            (PublicKey::P256(point), ES256) => {
                rs::UnparsedPublicKey::new(&rs::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, signature)
                    .is_ok()
            }
            (PublicKey::P384(point), ES384) => {
                rs::UnparsedPublicKey::new(&rs::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, signature)
                    .is_ok()
            }
            (PublicKey::Ed25519(x), EdDSA) => {
                rs::UnparsedPublicKey::new(&rs::ED25519, x).verify(message, signature).is_ok()
            }
            _ => return Err(TokenError::UnsupportedAlg),
        };
        if ok {
            Ok(())
        } else {
            Err(TokenError::BadSignature)
        }
    }
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

/// How a token names its key: its header's `kid` (if any) and `alg`, the question
/// [`KeySet::find`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLookup {
    pub kid: Option<String>,
    pub alg: Algorithm,
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
        let entries = doc.get("keys").and_then(Value::as_array).ok_or(JwksError::NoKeysArray)?;
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
                let mut named =
                    self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).peekable();
                if named.peek().is_none() {
                    return KeyMatch::NotFound;
                }
                named.find(|k| k.accepts(alg)).map_or(KeyMatch::WrongAlgorithm, KeyMatch::Found)
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

    /// Whether a token that names its key by `lookup` would be checked with `key` in this set:
    /// a cached verdict stays true across a key-set change only then.
    pub fn selects(&self, lookup: &KeyLookup, key: KeyId) -> bool {
        matches!(self.find(lookup.kid.as_deref(), lookup.alg), KeyMatch::Found(jwk) if jwk.id == key)
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
        Some(Value::String(name)) => Some(Algorithm::from_name(name).ok_or_else(|| {
            fail(&format!("alg `{name}` is not a supported signature algorithm"))
        })?),
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
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [Some(kty), kid.as_deref(), alg.map(Algorithm::name)]
        .into_iter()
        .chain(["n", "e", "crv", "x", "y"].iter().map(|m| obj.get(*m).and_then(Value::as_str)))
    {
        hasher.update(part.unwrap_or("").as_bytes());
        hasher.update(&[0]);
    }
    let id = KeyId::try_from(hasher.finish().as_ref()).unwrap_or_default();
    Ok(Jwk { id, kid, alg, key })
}

fn member(obj: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let s = obj.get(name).and_then(Value::as_str).ok_or_else(|| format!("missing `{name}`"))?;
    URL_SAFE_NO_PAD.decode(s).map_err(|_| format!("`{name}` is not base64url"))
}

fn rsa_key(obj: &Map<String, Value>) -> Result<PublicKey, String> {
    let n = strip_zeros(member(obj, "n")?);
    let e = strip_zeros(member(obj, "e")?);
    let bits = n.first().map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize);
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(format!(
            "RSA modulus of {bits} bits is outside {MIN_RSA_BITS}..={MAX_RSA_BITS}"
        ));
    }
    if n.last().is_none_or(|low| low % 2 == 0) {
        return Err("invalid RSA key: even modulus".into());
    }
    // The verifier's bounds: an odd exponent of at least 3 and at most 33 bits.
    let e_value = e.iter().try_fold(0u64, |acc, b| acc.checked_mul(256).map(|v| v + u64::from(*b)));
    match e_value {
        Some(v) if v >= 3 && v % 2 == 1 && v < (1 << 33) => RsaPublic::new(&n, &e)
            .map(|key| PublicKey::Rsa(Box::new(key)))
            .map_err(|err| format!("invalid RSA key: {err}")),
        _ => Err("invalid RSA key: exponent out of range".into()),
    }
}

fn strip_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
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
    // Whether the point is on the curve is checked by the verifier, which refuses every
    // signature for a point that is not.
    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok(if size == 32 { PublicKey::P256(point) } else { PublicKey::P384(point) })
}

fn okp_key(obj: &Map<String, Value>) -> Result<PublicKey, String> {
    let crv = obj.get("crv").and_then(Value::as_str).ok_or("no crv")?;
    if crv != "Ed25519" {
        return Err(format!("curve `{crv}` is not supported"));
    }
    let x = member(obj, "x")?;
    <[u8; 32]>::try_from(x.as_slice())
        .map(PublicKey::Ed25519)
        .map_err(|_| "an Ed25519 key must be 32 bytes".into())
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
    fn off_curve_point_verifies_nothing() {
        let mut doc = testkeys::all_types_jwks();
        doc["keys"][1]["y"] = doc["keys"][1]["x"].clone();
        let set = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        let KeyMatch::Found(jwk) = set.find(Some("ec256"), Algorithm::ES256) else { panic!() };
        let sig = testkeys::sign(Algorithm::ES256, b"m");
        assert_eq!(jwk.key.verify(Algorithm::ES256, b"m", &sig), Err(TokenError::BadSignature));
    }

    #[test]
    fn rsa_exponent_and_parity() {
        for (n, e) in [
            (testkeys::rsa_n(), "AQ"),
            (testkeys::rsa_n(), "AQAA"),
            (testkeys::rsa_n(), "AAAAAAABAAE"),
        ] {
            let doc = serde_json::json!({"keys": [{"kty": "RSA", "n": n, "e": e}]});
            let parsed = KeySet::parse(doc.to_string().as_bytes());
            // e = 1 and e = 65536 are refused; a zero-padded 65537 is fine.
            assert_eq!(parsed.is_ok(), e == "AAAAAAABAAE", "{e}");
        }
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
