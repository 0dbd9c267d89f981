//! Compact JWS decoding (RFC 7515): split, base64url, a strict JSON header, the algorithm.
//!
//! Only what the signature check needs is read from the header: `alg`, `kid` and `crit`.
//! Key-carrying members (`jku`, `x5u`, `jwk`, `x5c`) are never looked at: keys come only from
//! the configured key set.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::TokenError;

/// The asymmetric JWS algorithms the filter verifies. `none` and HMAC have no variant on
/// purpose: a shared-secret algorithm can never be satisfied by a public key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl Algorithm {
    pub const ALL: [Algorithm; 9] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }
}

/// The parts of a compact JWS the checks need. Borrowed from the token where possible.
#[derive(Debug)]
pub struct CompactJws<'a> {
    pub alg: Algorithm,
    pub kid: Option<String>,
    /// The header's `typ` (RFC 7515 4.1.9), when present.
    pub typ: Option<String>,
    /// `base64url(header) . base64url(payload)`: the bytes the signature covers.
    pub signing_input: &'a str,
    pub payload_b64: &'a str,
    pub signature: Vec<u8>,
}

/// Splits and decodes the header and signature. The payload is decoded only after the
/// signature verified (see [`decode_payload`]), so unauthenticated claims are never parsed.
pub fn decode(token: &str) -> Result<CompactJws<'_>, TokenError> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("not a compact JWS with three parts"));
    };
    // An empty signature is left to the algorithm and signature checks: `alg: none` tokens
    // have one, and must be refused as an unsupported algorithm, not as a malformed token.
    if header_b64.is_empty() || payload_b64.is_empty() {
        return Err(TokenError::Malformed("empty JWS part"));
    }
    let header_json = b64(header_b64, "header is not base64url")?;
    // Checked now so that a bad payload encoding is reported as such, not as a bad signature.
    if !payload_b64.bytes().all(is_b64url_byte) {
        return Err(TokenError::Malformed("payload is not base64url"));
    }
    let signature = b64(signature_b64, "signature is not base64url")?;
    let header = parse_object(&header_json)
        .map_err(|_| TokenError::Malformed("header is not a JSON object"))?;

    if header.contains_key("crit") {
        // No extension is understood, so any critical one must be refused (RFC 7515 4.1.11).
        return Err(TokenError::UnsupportedCrit);
    }
    let alg = match header.get("alg") {
        Some(Value::String(name)) => {
            Algorithm::from_name(name).ok_or(TokenError::UnsupportedAlg)?
        }
        Some(_) => return Err(TokenError::Malformed("alg is not a string")),
        None => return Err(TokenError::Malformed("header has no alg")),
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(TokenError::Malformed("kid is not a string")),
    };
    let typ = match header.get("typ") {
        None => None,
        Some(Value::String(typ)) => Some(typ.clone()),
        Some(_) => return Err(TokenError::Malformed("typ is not a string")),
    };
    let signing_input_len = header_b64.len() + 1 + payload_b64.len();
    let signing_input =
        token.get(..signing_input_len).ok_or(TokenError::Malformed("not a compact JWS"))?;
    Ok(CompactJws { alg, kid, typ, signing_input, payload_b64, signature })
}

/// Decodes the (already authenticated) payload into a JSON object of claims.
pub fn decode_payload(payload_b64: &str) -> Result<Map<String, Value>, TokenError> {
    let json = b64(payload_b64, "payload is not base64url")?;
    parse_object(&json).map_err(|_| TokenError::Malformed("payload is not a JSON object"))
}

fn b64(part: &str, what: &'static str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed(what))
}

fn is_b64url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Parses a JSON object, refusing duplicate top-level members: two `alg`s or two `exp`s
/// could be read differently by different parsers, so neither reading is trusted.
pub fn parse_object(json: &[u8]) -> Result<Map<String, Value>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let object = StrictObject::deserialize(&mut de)?;
    de.end()?;
    Ok(object.0)
}

struct StrictObject(Map<String, Value>);

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = StrictObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<StrictObject, A::Error> {
                let mut map = Map::new();
                while let Some(key) = access.next_key::<String>()? {
                    let value: Value = access.next_value()?;
                    if map.insert(key, value).is_some() {
                        return Err(serde::de::Error::custom("duplicate member"));
                    }
                }
                Ok(StrictObject(map))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", enc(header), enc(payload), enc("sig"))
    }

    #[test]
    fn decodes_header_and_signing_input() {
        let t = token(r#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#, r#"{"sub":"a"}"#);
        let jws = decode(&t).unwrap();
        assert_eq!(jws.alg, Algorithm::RS256);
        assert_eq!(jws.kid.as_deref(), Some("k1"));
        assert_eq!(jws.signature, b"sig");
        assert_eq!(jws.signing_input, t.rsplit_once('.').unwrap().0);
        assert_eq!(decode_payload(jws.payload_b64).unwrap()["sub"], "a");
    }

    #[test]
    fn part_counts() {
        assert!(matches!(decode("a.b"), Err(TokenError::Malformed(_))));
        assert!(matches!(decode("a.b.c.d"), Err(TokenError::Malformed(_))));
        assert!(matches!(decode("a.b.c.d.e"), Err(TokenError::Malformed(_))));
        assert!(matches!(decode(".."), Err(TokenError::Malformed(_))));
        assert!(matches!(decode(""), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn refuses_none_and_hmac_and_unknown() {
        for alg in ["none", "HS256", "HS384", "HS512", "rs256", "RSA-OAEP", ""] {
            let t = token(&format!(r#"{{"alg":"{alg}"}}"#), "{}");
            assert_eq!(decode(&t).unwrap_err(), TokenError::UnsupportedAlg, "{alg}");
        }
    }

    #[test]
    fn refuses_crit_even_if_empty() {
        let t = token(r#"{"alg":"RS256","crit":["exp"],"exp":1}"#, "{}");
        assert_eq!(decode(&t).unwrap_err(), TokenError::UnsupportedCrit);
        let t = token(r#"{"alg":"RS256","crit":[]}"#, "{}");
        assert_eq!(decode(&t).unwrap_err(), TokenError::UnsupportedCrit);
    }

    #[test]
    fn refuses_bad_encodings() {
        let good = token(r#"{"alg":"RS256"}"#, "{}");
        let (h, rest) = good.split_once('.').unwrap();
        for bad in [
            format!("{h}=.{rest}"),
            format!("{h} .{rest}"),
            format!("{h}.e30=.{}", enc("sig")),
            format!("{h}.e30.c2ln="),
            format!("{h}.é.{}", enc("sig")),
            format!("{h}.e30.+/+/"),
        ] {
            assert!(matches!(decode(&bad), Err(TokenError::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn header_must_be_a_strict_object() {
        for header in [
            r#"["RS256"]"#,
            r#""RS256""#,
            r#"{"alg":"RS256","alg":"none"}"#,
            r#"{"alg":"RS256"} x"#,
            r#"{"alg":256}"#,
            r#"{"typ":"JWT"}"#,
            r#"{"alg":"RS256","kid":7}"#,
        ] {
            let t = token(header, "{}");
            assert!(matches!(decode(&t), Err(TokenError::Malformed(_))), "{header}");
        }
    }

    #[test]
    fn payload_must_be_a_strict_object() {
        for payload in ["[]", "1", "null", r#"{"exp":1,"exp":2}"#, "{", ""] {
            assert!(decode_payload(&enc(payload)).is_err(), "{payload}");
        }
    }

    #[test]
    fn key_headers_are_ignored() {
        let t = token(
            r#"{"alg":"ES256","jku":"https://evil/jwks","x5u":"https://evil/c","jwk":{"kty":"EC"},"x5c":["AAAA"]}"#,
            "{}",
        );
        let jws = decode(&t).unwrap();
        assert_eq!(jws.alg, Algorithm::ES256);
        assert_eq!(jws.kid, None);
    }
}
