//! Structure-aware token input: JSON-ish header and payload members chosen by the fuzzer,
//! rendered to `base64url(header).base64url(payload).base64url(signature)`, where the
//! signature is either fuzzed bytes or a real one by a fixed key (so the claim checks behind
//! the signature are reached too).
//!
//! The first variant of each choice is the "good" one, so the empty input (arbitrary reads
//! zeros past the end of the data) is a valid, accepted token that the fuzzer mutates away from.

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use mcp_auth_filter::jws::Algorithm;
use serde_json::{Number, Value};

use crate::{
    b64, AUDIENCE, EC256_KID, EC384_KID, ED_KID, ENC_KID, ISSUER, NOW, ROTATED_KID, RSA_KID,
};

/// Strings the checks compare against, so the fuzzer need not guess them.
const KNOWN: &[&str] = &[
    ISSUER,
    AUDIENCE,
    "account",
    RSA_KID,
    ENC_KID,
    ROTATED_KID,
    EC256_KID,
    EC384_KID,
    ED_KID,
    "RS256",
    "PS256",
    "ES256",
    "EdDSA",
    "none",
    "HS256",
    "JWT",
    "mcp:tools",
    "openid mcp:tools",
    "",
    "http://localhost:8080/realms/my-realm/",
    "echo-mcp-server ",
    "a\r\nb",
    // Explicit typing: the member's name, and header and payload values it accepts or refuses.
    "typ",
    "at+jwt",
    "application/AT+JWT",
    "Bearer",
    "ID",
];

#[derive(Arbitrary, Debug, Clone)]
pub enum FStr {
    Known(u8),
    Any(String),
}

impl FStr {
    pub fn render(&self) -> String {
        match self {
            FStr::Known(i) => KNOWN[*i as usize % KNOWN.len()].to_string(),
            FStr::Any(s) => s.clone(),
        }
    }
}

/// A JSON value. Nesting is bounded by the input length.
#[derive(Arbitrary, Debug, Clone)]
pub enum FJson {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    /// A time near one of the checks' boundaries.
    Time(Anchor, Delta),
    Str(FStr),
    Arr(Vec<FJson>),
    Obj(Vec<(FStr, FJson)>),
}

impl FJson {
    pub fn render(&self) -> Value {
        match self {
            FJson::Null => Value::Null,
            FJson::Bool(b) => Value::Bool(*b),
            FJson::Int(i) => Value::from(*i),
            FJson::UInt(u) => Value::from(*u),
            FJson::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            FJson::Time(anchor, d) => time_value(*anchor, *d),
            FJson::Str(s) => Value::String(s.render()),
            FJson::Arr(items) => Value::Array(items.iter().map(FJson::render).collect()),
            FJson::Obj(members) => {
                Value::Object(members.iter().map(|(k, v)| (k.render(), v.render())).collect())
            }
        }
    }
}

/// Where a time sits: the exp/nbf/iat comparisons are at NOW - skew and NOW + skew, the
/// NumericDate range ends at MAX_NUMERIC_DATE; a small offset from these reaches each edge.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Anchor {
    Now,
    Expiry,
    Future,
    MaxDate,
    Zero,
}

/// The offset from an anchor: exactly on it first, so that the boundary is the default.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Delta {
    Zero,
    Before,
    After,
    By(i8),
}

fn time_value(anchor: Anchor, delta: Delta) -> Value {
    let skew = crate::config().clock_skew_s as i64;
    let base = match anchor {
        Anchor::Now => NOW as i64,
        Anchor::Expiry => NOW as i64 - skew,
        Anchor::Future => NOW as i64 + skew,
        Anchor::MaxDate => crate::MAX_NUMERIC_DATE as i64,
        Anchor::Zero => 0,
    };
    let d = match delta {
        Delta::Zero => 0,
        Delta::Before => -1,
        Delta::After => 1,
        Delta::By(d) => i64::from(d),
    };
    Value::from(base + d)
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Alg {
    Known(u8),
}

impl Alg {
    pub fn get(self) -> Algorithm {
        let Alg::Known(i) = self;
        Algorithm::ALL[i as usize % Algorithm::ALL.len()]
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum AlgMember {
    /// The name of the algorithm the signature is made with.
    Signing,
    Absent,
    Name(Alg),
    Other(FJson),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum KidMember {
    /// The kid of the signing key in the chosen set.
    Signing,
    Absent,
    Other(FJson),
}

#[derive(Arbitrary, Debug, Clone)]
pub struct Header {
    pub alg: AlgMember,
    pub kid: KidMember,
    pub typ: bool,
    pub crit: Option<FJson>,
    pub extra: Vec<(FStr, FJson)>,
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Member {
    /// The value the policy wants (issuer, audience, a time that is valid now).
    Good,
    /// A time at or next to one of the checks' boundaries.
    At(Anchor, Delta),
    Absent,
    Value(FJson),
}

#[derive(Arbitrary, Debug, Clone)]
pub struct Payload {
    pub iss: Member,
    pub aud: Member,
    pub exp: Member,
    pub nbf: Member,
    pub iat: Member,
    pub scope: Member,
    pub extra: Vec<(FStr, FJson)>,
    /// Repeat the member at this index (duplicate names must be refused).
    pub duplicate: Option<u8>,
    /// Move members around (order must not matter).
    pub rotate: u8,
}

/// A part: structured members, or raw bytes taken as the JSON text.
#[derive(Arbitrary, Debug, Clone)]
pub enum Part<T> {
    Structured(T),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Signature {
    /// A real signature by the fixed key for this algorithm.
    Real(Alg),
    /// Fuzzed bytes: never a valid signature.
    Fuzzed(Vec<u8>),
    /// A real signature with one byte changed.
    Flipped(Alg, u16, u8),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Mangle {
    None,
    /// Insert a byte into the finished token.
    Insert(u16, u8),
    /// Remove a byte.
    Remove(u16),
    /// Append padding to the payload part.
    PadPayload,
    /// Swap to the standard base64 alphabet in the signature.
    StdAlphabet,
}

#[derive(Arbitrary, Debug, Clone)]
pub struct TokenInput {
    pub header: Part<Header>,
    pub payload: Part<Payload>,
    pub signature: Signature,
    pub mangle: Mangle,
    /// Use the Keycloak key set (one RS256 key) instead of the one-of-each-type set.
    pub keycloak_set: bool,
}

/// A rendered token and what is known about it.
pub struct Built {
    pub token: String,
    /// The token as signed, when the signature is a real one (before mangling).
    pub genuine: Option<String>,
    /// The payload members as rendered, when structured.
    pub payload_members: Option<Vec<(String, Value)>>,
    /// The header's `typ` as the filter would read it (absent when the header is no object).
    pub header_typ: Option<Value>,
    /// Header, key and signature must all pass: the verdict is the claims model's.
    pub clean: bool,
}

fn render_object(members: &[(String, Value)]) -> String {
    let parts: Vec<String> =
        members.iter().map(|(k, v)| format!("{}:{}", Value::String(k.clone()), v)).collect();
    format!("{{{}}}", parts.join(","))
}

/// The algorithm the signature is made with, and the key set that holds its key.
fn signing_alg(sig: &Signature, keycloak_set: bool) -> Algorithm {
    let alg = match sig {
        Signature::Fuzzed(_) => Algorithm::RS256,
        Signature::Real(a) | Signature::Flipped(a, _, _) => a.get(),
    };
    if keycloak_set {
        return Algorithm::RS256;
    }
    alg
}

fn kid_for(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => EC256_KID,
        Algorithm::ES384 => EC384_KID,
        Algorithm::EdDSA => ED_KID,
        _ => RSA_KID,
    }
}

impl TokenInput {
    pub fn build(&self) -> Built {
        let alg = signing_alg(&self.signature, self.keycloak_set);

        let mut clean = true;
        let header_typ: Option<Value>;
        let header_json = match &self.header {
            Part::Raw(bytes) => {
                clean = false;
                header_typ =
                    serde_json::from_slice::<Value>(bytes).ok().and_then(|h| h.get("typ").cloned());
                bytes.clone()
            }
            Part::Structured(h) => {
                let mut m: Vec<(String, Value)> = Vec::new();
                match &h.alg {
                    AlgMember::Absent => clean = false,
                    AlgMember::Signing => m.push(("alg".into(), alg.name().into())),
                    AlgMember::Name(a) => {
                        clean &= a.get() == alg;
                        m.push(("alg".into(), a.get().name().into()))
                    }
                    AlgMember::Other(v) => {
                        let v = v.render();
                        clean &= v.as_str() == Some(alg.name());
                        m.push(("alg".into(), v))
                    }
                }
                match &h.kid {
                    // Each set has exactly one key per algorithm, so no kid is fine.
                    KidMember::Absent => {}
                    KidMember::Signing => m.push(("kid".into(), kid_for(alg).into())),
                    KidMember::Other(v) => {
                        let v = v.render();
                        clean &= v.as_str() == Some(kid_for(alg));
                        m.push(("kid".into(), v))
                    }
                }
                if h.typ {
                    m.push(("typ".into(), "JWT".into()));
                }
                if let Some(c) = &h.crit {
                    clean = false;
                    m.push(("crit".into(), c.render()));
                }
                for (k, v) in &h.extra {
                    let k = k.render();
                    // A repeated name makes the header invalid; these three change the verdict.
                    clean &= !m.iter().any(|(e, _)| *e == k)
                        && !matches!(k.as_str(), "alg" | "kid" | "crit");
                    m.push((k, v.render()));
                }
                let typ = m.iter().find(|(k, _)| k == "typ").map(|(_, v)| v.clone());
                // A typ that is no string makes the header malformed, before the signature.
                clean &= typ.as_ref().is_none_or(Value::is_string);
                header_typ = typ;
                render_object(&m).into_bytes()
            }
        };

        let (payload_json, payload_members) = match &self.payload {
            Part::Raw(bytes) => (bytes.clone(), None),
            Part::Structured(p) => {
                let mut m: Vec<(String, Value)> = Vec::new();
                let mut put = |name: &str, member: &Member, good: Value| match member {
                    Member::Absent => {}
                    Member::Good => m.push((name.into(), good)),
                    Member::At(anchor, delta) => m.push((name.into(), time_value(*anchor, *delta))),
                    Member::Value(v) => m.push((name.into(), v.render())),
                };
                put("iss", &p.iss, ISSUER.into());
                put("aud", &p.aud, serde_json::json!([AUDIENCE, "account"]));
                put("exp", &p.exp, (NOW + 300).into());
                put("nbf", &p.nbf, (NOW - 10).into());
                put("iat", &p.iat, (NOW - 10).into());
                put("scope", &p.scope, "openid mcp:tools".into());
                for (k, v) in &p.extra {
                    m.push((k.render(), v.render()));
                }
                if let Some(i) = p.duplicate {
                    if !m.is_empty() {
                        let dup = m[i as usize % m.len()].clone();
                        m.push(dup);
                    }
                }
                if !m.is_empty() {
                    let r = p.rotate as usize % m.len();
                    m.rotate_left(r);
                }
                (render_object(&m).into_bytes(), Some(m))
            }
        };

        let input = format!("{}.{}", b64(&header_json), b64(&payload_json));
        let (sig, genuine) = match &self.signature {
            Signature::Fuzzed(bytes) => {
                clean = false;
                (bytes.clone(), None)
            }
            Signature::Real(_) => {
                let sig = crate::sign_any(alg, input.as_bytes());
                let genuine = format!("{input}.{}", b64(&sig));
                (sig, Some(genuine))
            }
            Signature::Flipped(_, pos, x) => {
                let mut sig = crate::sign_any(alg, input.as_bytes());
                let genuine = if *x == 0 {
                    Some(format!("{input}.{}", b64(&sig)))
                } else {
                    clean = false;
                    None
                };
                let i = *pos as usize % sig.len();
                sig[i] ^= x;
                (sig, genuine)
            }
        };
        let mut token = format!("{input}.{}", b64(&sig));
        match &self.mangle {
            Mangle::None => {}
            Mangle::Insert(pos, byte) => {
                let i = *pos as usize % (token.len() + 1);
                if token.is_char_boundary(i) {
                    token.insert(i, char::from(*byte & 0x7f));
                }
            }
            Mangle::Remove(pos) => {
                let i = *pos as usize % token.len();
                token.remove(i);
            }
            Mangle::PadPayload => {
                let dot = token.rfind('.').unwrap_or(token.len());
                token.insert(dot, '=');
            }
            Mangle::StdAlphabet => {
                let dot = token.rfind('.').unwrap_or(0);
                let (head, tail) = token.split_at(dot);
                token = format!("{head}{}", tail.replace('-', "+").replace('_', "/"));
            }
        }
        Built { token, genuine, payload_members, header_typ, clean }
    }
}
