//! JSON Web Key Sets (RFC 7517): parsing into ready-to-use verification keys, and signature
//! verification with them.
//!
//! Keys are parsed once per fetched key set, not per request. Entries the filter cannot or
//! must not use (encryption keys, unknown key types, malformed members, RSA keys outside the
//! [`RsaKeyPolicy`]) are skipped with a reason for the log and the counters; a `kid` that
//! repeats is reported; a set with no usable key at all is an error, so a broken or empty
//! response never replaces good keys.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::error::TokenError;
use crate::jws::Algorithm;
use crate::rsa_verify::{Hash, RsaKeyError, RsaKeyPolicy, RsaPublic};

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
    /// Entries not loaded, and why: for the operator's log and the counters.
    pub skipped: Vec<SkippedKey>,
    /// Loaded keys whose `kid` an earlier loaded key already has. A lookup by that `kid` takes
    /// the first key that fits the token's algorithm, so a later one may never be used.
    pub duplicates: Vec<DuplicateKid>,
}

/// An entry of the key set that was not loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// Position in the `keys` array.
    pub index: usize,
    /// The entry's `kid` (its first 64 characters), when it has a string one.
    pub kid: Option<String>,
    pub reason: SkipReason,
}

/// Why an entry was skipped. The detail strings are for the log; count by variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Not a signing key: `use` other than `sig`, or `key_ops` without `verify`.
    NotForSignatures(String),
    /// A key type, curve or algorithm the filter does not verify with.
    Unsupported(String),
    /// Not an object, or members missing, of the wrong type or badly encoded.
    Malformed(String),
    /// An RSA key that is not a usable key or that the [`RsaKeyPolicy`] refuses (too short,
    /// too long, an exponent other than 65537): see [`RsaKeyError::is_policy`].
    RsaKey(RsaKeyError),
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::NotForSignatures(why)
            | SkipReason::Unsupported(why)
            | SkipReason::Malformed(why) => f.write_str(why),
            SkipReason::RsaKey(err) => write!(f, "{err}"),
        }
    }
}

impl std::fmt::Display for SkippedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kid = self.kid.as_deref().unwrap_or("(no kid)");
        write!(f, "keys[{}]: {kid}: {}", self.index, self.reason)
    }
}

/// A loaded key whose `kid` repeats that of an earlier loaded key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKid {
    /// The `kid` (its first 64 characters).
    pub kid: String,
    /// Position of this entry, and of the first loaded entry with the same `kid`.
    pub index: usize,
    pub first: usize,
}

impl std::fmt::Display for DuplicateKid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "keys[{}]: kid {} repeats keys[{}]'s; a token naming it is checked with the first \
             of them that fits its alg",
            self.index, self.kid, self.first
        )
    }
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
    /// [`KeySet::parse_with`] the default [`RsaKeyPolicy`].
    pub fn parse(body: &[u8]) -> Result<KeySet, JwksError> {
        KeySet::parse_with(body, &RsaKeyPolicy::default())
    }

    /// Parses a JWKS document, loading the keys the filter can use and `rsa_policy` allows.
    pub fn parse_with(body: &[u8], rsa_policy: &RsaKeyPolicy) -> Result<KeySet, JwksError> {
        let doc: Value = serde_json::from_slice(body).map_err(|_| JwksError::NotJson)?;
        let doc = doc.as_object().ok_or(JwksError::NotJson)?;
        let entries = doc.get("keys").and_then(Value::as_array).ok_or(JwksError::NoKeysArray)?;
        let mut set = KeySet::default();
        // The position of the first loaded key with each kid, to report repeats.
        let mut first_with_kid: HashMap<String, usize> = HashMap::new();
        for (index, entry) in entries.iter().enumerate() {
            let kid = entry.get("kid").and_then(Value::as_str).map(label);
            match parse_jwk(entry, rsa_policy) {
                Ok(jwk) => {
                    if let Some(kid) = jwk.kid.as_deref() {
                        match first_with_kid.get(kid) {
                            Some(&first) => {
                                set.duplicates.push(DuplicateKid { kid: label(kid), index, first })
                            }
                            None => {
                                first_with_kid.insert(kid.to_owned(), index);
                            }
                        }
                    }
                    set.keys.push(jwk);
                }
                Err(reason) => set.skipped.push(SkippedKey { index, kid, reason }),
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

/// A `kid` for the log: its first 64 characters.
fn label(kid: &str) -> String {
    kid.chars().take(64).collect()
}

fn parse_jwk(entry: &Value, rsa_policy: &RsaKeyPolicy) -> Result<Jwk, SkipReason> {
    use SkipReason::{Malformed, NotForSignatures, Unsupported};
    let obj = entry.as_object().ok_or_else(|| Malformed("not an object".into()))?;
    let kid = match obj.get("kid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(Malformed("kid is not a string".into())),
    };
    match obj.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(Value::String(u)) => return Err(NotForSignatures(format!("use `{u}` is not sig"))),
        Some(_) => return Err(Malformed("use is not a string".into())),
    }
    if let Some(ops) = obj.get("key_ops") {
        let ops = ops.as_array().ok_or_else(|| Malformed("key_ops is not an array".into()))?;
        if !ops.iter().any(|op| op.as_str() == Some("verify")) {
            return Err(NotForSignatures("key_ops does not include verify".into()));
        }
    }
    let alg = match obj.get("alg") {
        None => None,
        Some(Value::String(name)) => Some(Algorithm::from_name(name).ok_or_else(|| {
            Unsupported(format!("alg `{name}` is not a supported signature algorithm"))
        })?),
        Some(_) => return Err(Malformed("alg is not a string".into())),
    };
    let kty = obj.get("kty").and_then(Value::as_str).ok_or_else(|| Malformed("no kty".into()))?;
    let key = match kty {
        "RSA" => rsa_key(obj, rsa_policy)?,
        "EC" => ec_key(obj)?,
        "OKP" => okp_key(obj)?,
        other => return Err(Unsupported(format!("kty `{other}` is not supported"))),
    };
    if let Some(alg) = alg {
        if !key.fits(alg) {
            return Err(Unsupported(format!("alg {} does not fit kty {kty}", alg.name())));
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

fn member(obj: &Map<String, Value>, name: &str) -> Result<Vec<u8>, SkipReason> {
    let s = obj
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| SkipReason::Malformed(format!("missing `{name}`")))?;
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| SkipReason::Malformed(format!("`{name}` is not base64url")))
}

/// Every bound on RSA keys (size, parity, exponent, the policy) lives in `rsa_verify`.
fn rsa_key(obj: &Map<String, Value>, policy: &RsaKeyPolicy) -> Result<PublicKey, SkipReason> {
    let n = member(obj, "n")?;
    let e = member(obj, "e")?;
    RsaPublic::with_policy(&n, &e, policy)
        .map(|key| PublicKey::Rsa(Box::new(key)))
        .map_err(SkipReason::RsaKey)
}

fn ec_key(obj: &Map<String, Value>) -> Result<PublicKey, SkipReason> {
    use SkipReason::{Malformed, Unsupported};
    let crv = obj.get("crv").and_then(Value::as_str).ok_or_else(|| Malformed("no crv".into()))?;
    let x = member(obj, "x")?;
    let y = member(obj, "y")?;
    let size = match crv {
        "P-256" => 32,
        "P-384" => 48,
        other => return Err(Unsupported(format!("curve `{other}` is not supported"))),
    };
    if x.len() != size || y.len() != size {
        return Err(Malformed(format!("coordinates of a {crv} key must be {size} bytes")));
    }
    // Whether the point is on the curve is checked by the verifier, which refuses every
    // signature for a point that is not.
    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok(if size == 32 { PublicKey::P256(point) } else { PublicKey::P384(point) })
}

fn okp_key(obj: &Map<String, Value>) -> Result<PublicKey, SkipReason> {
    use SkipReason::{Malformed, Unsupported};
    let crv = obj.get("crv").and_then(Value::as_str).ok_or_else(|| Malformed("no crv".into()))?;
    if crv != "Ed25519" {
        return Err(Unsupported(format!("curve `{crv}` is not supported")));
    }
    let x = member(obj, "x")?;
    <[u8; 32]>::try_from(x.as_slice())
        .map(PublicKey::Ed25519)
        .map_err(|_| Malformed("an Ed25519 key must be 32 bytes".into()))
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
        assert!(set.skipped[0].to_string().contains("use `enc`"), "{:?}", set.skipped);
        assert!(matches!(set.skipped[0].reason, SkipReason::NotForSignatures(_)));
        assert_eq!(set.skipped[0].kid.as_deref(), Some(testkeys::ENC_KID));
        assert!(set.duplicates.is_empty());
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

    /// A JWK of an odd modulus of exactly `bits` bits (not a real key: the policy looks at
    /// size and exponent only) with exponent `e`.
    fn rsa_jwk(kid: &str, bits: usize, e: &[u8]) -> serde_json::Value {
        let mut n = vec![0x5au8; bits.div_ceil(8)];
        let extra = n.len() * 8 - bits;
        n[0] = (0xff >> extra) & !(0x40 >> extra);
        n[0] |= 0x80 >> extra;
        *n.last_mut().unwrap() |= 1;
        let (n, e) = (URL_SAFE_NO_PAD.encode(n), URL_SAFE_NO_PAD.encode(e));
        serde_json::json!({"kty": "RSA", "kid": kid, "n": n, "e": e})
    }

    fn parse_one(jwk: serde_json::Value, policy: &RsaKeyPolicy) -> Result<(), SkipReason> {
        let doc = serde_json::json!({"keys": [jwk, {"kty": "OKP", "crv": "Ed25519", "kid": "ed",
            "x": URL_SAFE_NO_PAD.encode([1u8; 32])}]});
        let set = KeySet::parse_with(doc.to_string().as_bytes(), policy).unwrap();
        match set.skipped.as_slice() {
            [] => Ok(()),
            [one] => Err(one.reason.clone()),
            more => panic!("{more:?}"),
        }
    }

    #[test]
    fn default_rsa_policy_is_2048_to_4096_bits_and_f4() {
        let default = RsaKeyPolicy::default();
        let f4 = [1, 0, 1];
        for bits in [2048, 2049, 3072, 4095, 4096] {
            assert_eq!(parse_one(rsa_jwk("k", bits, &f4), &default), Ok(()), "{bits}");
        }
        use RsaKeyError::*;
        for (bits, e, why) in [
            (2047, &f4[..], ModulusTooShort { bits: 2047 }),
            (1024, &f4[..], ModulusTooShort { bits: 1024 }),
            (4097, &f4[..], ModulusTooLong { bits: 4097 }),
            (8192, &f4[..], ModulusTooLong { bits: 8192 }),
            (2048, &[3][..], ExponentNotAllowed),
            (2048, &[1, 0, 0, 0, 1][..], ExponentNotAllowed),
            (2048, &[1, 0xff, 0xff, 0xff, 0xff][..], ExponentNotAllowed),
            (2048, &[1][..], ExponentOutOfRange),
            (2048, &[1, 0, 0][..], ExponentOutOfRange),
            (2048, &[2, 0, 0, 0, 1][..], ExponentOutOfRange),
            (2048, &[1, 0, 0, 0, 0, 1][..], ExponentOutOfRange),
        ] {
            let got = parse_one(rsa_jwk("k", bits, e), &default);
            assert_eq!(got, Err(SkipReason::RsaKey(why)), "{bits} {e:?}");
            assert_eq!(why.is_policy(), !matches!(why, ExponentOutOfRange), "{why:?}");
        }
        let mut even = rsa_jwk("k", 2048, &f4);
        let mut n = URL_SAFE_NO_PAD.decode(even["n"].as_str().unwrap()).unwrap();
        *n.last_mut().unwrap() &= 0xfe;
        even["n"] = URL_SAFE_NO_PAD.encode(n).into();
        assert_eq!(parse_one(even, &default), Err(SkipReason::RsaKey(EvenModulus)));
    }

    #[test]
    fn a_wider_rsa_policy_takes_what_it_names_and_no_more() {
        let wide = RsaKeyPolicy { min_bits: 3072, max_bits: 8192, allow_any_exponent: true };
        assert_eq!(wide.validate(), Ok(()));
        assert_eq!(parse_one(rsa_jwk("k", 8192, &[3]), &wide), Ok(()));
        assert_eq!(parse_one(rsa_jwk("k", 3072, &[1, 0xff, 0xff, 0xff, 0xff]), &wide), Ok(()));
        assert_eq!(
            parse_one(rsa_jwk("k", 2048, &[1, 0, 1]), &wide),
            Err(SkipReason::RsaKey(RsaKeyError::ModulusTooShort { bits: 2048 }))
        );
        // The verifier's own limits hold whatever the policy says.
        assert_eq!(
            parse_one(rsa_jwk("k", 8193, &[1, 0, 1]), &RsaKeyPolicy::WIDEST),
            Err(SkipReason::RsaKey(RsaKeyError::ModulusTooLong { bits: 8193 }))
        );
        assert_eq!(
            parse_one(rsa_jwk("k", 4096, &[1]), &RsaKeyPolicy::WIDEST),
            Err(SkipReason::RsaKey(RsaKeyError::ExponentOutOfRange))
        );
        use crate::rsa_verify::RsaPolicyError::*;
        let policy =
            |min_bits, max_bits| RsaKeyPolicy { min_bits, max_bits, allow_any_exponent: false };
        assert_eq!(policy(1024, 4096).validate(), Err(MinBelowFloor));
        assert_eq!(policy(2048, 16384).validate(), Err(MaxAboveCeiling));
        assert_eq!(policy(4096, 3072).validate(), Err(MinAboveMax));
        assert_eq!(RsaKeyPolicy::default().validate(), Ok(()));
        assert_eq!(RsaKeyPolicy::WIDEST.validate(), Ok(()));
    }

    #[test]
    fn repeated_kids_are_reported_and_the_first_key_still_wins() {
        let mut doc = testkeys::keycloak_jwks();
        let keys = doc["keys"].as_array_mut().unwrap();
        // The encryption key (skipped) shares no kid; a rotated key under the signing key's kid
        // and an exact repeat of the signing key both follow it.
        let mut shadow = testkeys::rotated_jwk();
        shadow["kid"] = testkeys::RSA_KID.into();
        keys.push(shadow);
        keys.push(keys[1].clone());
        let mut enc_again = keys[0].clone();
        enc_again["kid"] = testkeys::RSA_KID.into();
        keys.push(enc_again);
        let set = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.keys.len(), 3);
        assert_eq!(
            set.duplicates,
            [2, 3].map(|index| DuplicateKid { kid: testkeys::RSA_KID.into(), index, first: 1 })
        );
        assert!(set.duplicates[0]
            .to_string()
            .contains("keys[2]: kid kc-rs256-Xq3 repeats keys[1]"));
        let KeyMatch::Found(jwk) = set.find(Some(testkeys::RSA_KID), Algorithm::RS256) else {
            panic!()
        };
        assert_eq!(jwk.id, set.keys[0].id);
        // A kid longer than 64 characters is reported by its first 64.
        let long = "k".repeat(100);
        let doc = serde_json::json!({"keys": [rsa_jwk(&long, 2048, &[1, 0, 1]), rsa_jwk(&long, 2048, &[1, 0, 1])]});
        let set = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.duplicates[0].kid, "k".repeat(64));
    }

    #[test]
    fn skipped_entries_say_where_and_why() {
        let doc = serde_json::json!({"keys": [
            5, {"kty": "RSA", "kid": 7}, {"kty": "oct", "kid": "hmac"},
            {"kty": "RSA", "kid": "enc", "use": "enc"}, rsa_jwk("small", 1024, &[1, 0, 1]),
            rsa_jwk("ok", 2048, &[1, 0, 1])
        ]});
        let set = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        let lines: Vec<String> = set.skipped.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "keys[0]: (no kid): not an object",
                "keys[1]: (no kid): kid is not a string",
                "keys[2]: hmac: kty `oct` is not supported",
                "keys[3]: enc: use `enc` is not sig",
                "keys[4]: small: RSA modulus of 1024 bits is below the key policy's minimum",
            ]
        );
        assert!(matches!(set.skipped[4].reason, SkipReason::RsaKey(e) if e.is_policy()));
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
