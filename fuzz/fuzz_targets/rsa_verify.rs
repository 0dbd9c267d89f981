//! The filter's own RSA verifier (`rsa_verify`: Montgomery arithmetic in 28-bit limbs,
//! EMSA-PKCS1-v1_5 and EMSA-PSS checks), differentially:
//!
//! - `public_op` against `BigUint::modpow` for any odd modulus of 2048..=8192 bits and any
//!   exponent, and for the fixed keys;
//! - `verify_pkcs1v15` / `verify_pss` against a plain reading of RFC 8017 (9.2 and 9.1.2)
//!   and against the `rsa` crate, on encoded messages that the fuzzer builds and edits and
//!   that are then raised to the private exponent of a fixed key, so the checks behind the
//!   modular exponentiation see near-valid encodings, not just noise.
//!
//! The fixed keys include a 2057-bit modulus (emLen = k - 1 in PSS), e = 3 and e = 2^32 - 1.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use mcp_auth_filter::rsa_verify::{self, Hash, RsaPublic};
use rsa::traits::PublicKeyParts;
use rsa::BigUint;
use sha2::{Digest, Sha256, Sha384, Sha512};

const PEMS: [&str; 5] = [
    include_str!("../../src/testdata/rsa-test-key.pem"),
    include_str!("../../src/testdata/rsa-test-key2.pem"),
    include_str!("../../src/testdata/rsa-2057-e65537.pem"),
    include_str!("../../src/testdata/rsa-3073-e3.pem"),
    include_str!("../../src/testdata/rsa-4096-emax.pem"),
];

/// Names an RNG type for `rsa_decrypt(None, ..)`; never called.
struct NoRng;
impl rsa::rand_core::RngCore for NoRng {
    fn next_u32(&mut self) -> u32 {
        unreachable!()
    }
    fn next_u64(&mut self) -> u64 {
        unreachable!()
    }
    fn fill_bytes(&mut self, _: &mut [u8]) {
        unreachable!()
    }
    fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        unreachable!()
    }
}
impl rsa::rand_core::CryptoRng for NoRng {}

struct Fixed {
    private: rsa::RsaPrivateKey,
    public: RsaPublic,
}

fn fixed() -> &'static [Fixed] {
    static KEYS: OnceLock<Vec<Fixed>> = OnceLock::new();
    KEYS.get_or_init(|| {
        use rsa::pkcs8::DecodePrivateKey;
        PEMS.iter()
            .map(|pem| {
                let private = rsa::RsaPrivateKey::from_pkcs8_pem(pem).expect("fixed key");
                let public = RsaPublic::new(&private.n().to_bytes_be(), &private.e().to_bytes_be())
                    .expect("fixed key fits");
                Fixed { private, public }
            })
            .collect()
    })
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum H {
    S256,
    S384,
    S512,
}

impl H {
    fn hash(self) -> Hash {
        match self {
            H::S256 => Hash::Sha256,
            H::S384 => Hash::Sha384,
            H::S512 => Hash::Sha512,
        }
    }
    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            H::S256 => Sha256::digest(data).to_vec(),
            H::S384 => Sha384::digest(data).to_vec(),
            H::S512 => Sha512::digest(data).to_vec(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Encoding {
    /// EMSA-PKCS1-v1_5 of the digest under this hash.
    Pkcs1(H),
    /// EMSA-PSS with this salt (its length is the fuzzer's: JWA wants the hash length).
    Pss(H, Vec<u8>),
    /// Fuzzed bytes as the whole encoded message.
    Raw(Vec<u8>),
}

/// How the modulus of a raw exponentiation is made: patterns that stress carries and the
/// limb-column bounds, not just random bits.
#[derive(Arbitrary, Debug)]
enum NShape {
    Random,
    /// 2^bits - 1.
    AllOnes,
    /// 2^(bits-1) + 1.
    TopAndBottom,
    /// Ones in the top `n` bits, random below.
    HighOnes(u16),
    /// Random bytes with every byte forced to 0x00 or 0xff by the seed's bits.
    Extremes,
    Bytes(Vec<u8>),
}

/// The base (signature) of a raw exponentiation, relative to the modulus.
#[derive(Arbitrary, Debug)]
enum SShape {
    Random,
    /// n - 1 - small.
    NMinus(u16),
    Small(u64),
    /// The largest value with all limbs full that is below n.
    AllOnesBelowN,
    PowerOfTwo(u16),
    Bytes(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Exp {
    F4,
    Three,
    SmallOdd(u8),
    Any(u64),
}

#[derive(Arbitrary, Debug)]
enum Input {
    /// A modulus of 2048..=8192 bits and a base made from small inputs: only the
    /// exponentiation (and the key checks) are compared.
    RawOp { n: NShape, bits: u16, seed: u64, e: Exp, s: SShape, s_seed: u64 },
    /// Arbitrary signature bytes against a fixed key.
    Noise { key: u8, hash: H, message: Vec<u8>, sig: Vec<u8> },
    /// An encoded message, edited, then signed with a fixed key's private exponent (the
    /// 2048- and 2057-bit keys: private operations on the larger ones are too slow here).
    Encoded {
        key: u8,
        /// The hash the verifier is asked about (may differ from the encoding's).
        hash: H,
        message: Vec<u8>,
        encoding: Encoding,
        edits: Vec<(u16, u8)>,
        /// Verify against another digest than the one encoded.
        other_digest: Option<Vec<u8>>,
    },
}

/// xorshift64*: expands a seed into bytes.
fn expand(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_be_bytes());
    }
    out.truncate(len);
    out
}

fn make_modulus(shape: &NShape, bits: u16, seed: u64) -> Vec<u8> {
    let bits = 2048 + usize::from(bits) % (8192 - 2048 + 1);
    let len = bits.div_ceil(8);
    let mut n = match shape {
        NShape::Random => expand(seed, len),
        NShape::AllOnes => vec![0xff; len],
        NShape::TopAndBottom => {
            let mut v = vec![0u8; len];
            v[len - 1] = 1;
            v
        }
        NShape::HighOnes(k) => {
            let mut v = expand(seed, len);
            let k = usize::from(*k) % bits;
            for i in 0..k {
                let bit = bits - 1 - i;
                v[len - 1 - bit / 8] |= 1 << (bit % 8);
            }
            v
        }
        NShape::Extremes => {
            expand(seed, len).iter().map(|b| if b & 1 == 1 { 0xff } else { 0 }).collect()
        }
        NShape::Bytes(b) => {
            let mut v = b.clone();
            v.resize(len, 0xff);
            v
        }
    };
    // Exactly `bits` bits, odd.
    let top_bits = bits - 8 * (len - 1);
    n[0] &= (((1u16 << top_bits) - 1) & 0xff) as u8;
    n[0] |= 1 << (top_bits - 1);
    n[len - 1] |= 1;
    n
}

fn make_base(shape: &SShape, n: &BigUint, k: usize, seed: u64) -> Vec<u8> {
    let one = BigUint::from(1u32);
    let v = match shape {
        SShape::Random => BigUint::from_bytes_be(&expand(seed, k)) % n,
        SShape::NMinus(d) => {
            let d = BigUint::from(*d) + &one;
            if &d < n {
                n - d
            } else {
                BigUint::from(0u32)
            }
        }
        SShape::Small(v) => BigUint::from(*v) % n,
        SShape::AllOnesBelowN => {
            let mut v = (BigUint::from(1u32) << (n.bits() - 1)) - &one;
            if &v >= n {
                v = n - &one;
            }
            v
        }
        SShape::PowerOfTwo(p) => (BigUint::from(1u32) << (usize::from(*p) % n.bits())) % n,
        SShape::Bytes(b) => {
            let mut b = b.clone();
            b.resize(k, 0x5a);
            // Not reduced: values at or above n must be refused.
            return b;
        }
    };
    let bytes = v.to_bytes_be();
    let mut out = vec![0u8; k.saturating_sub(bytes.len())];
    out.extend_from_slice(&bytes);
    out
}

fn modpow_bytes(s: &[u8], e: &BigUint, n: &BigUint, k: usize) -> Vec<u8> {
    let m = BigUint::from_bytes_be(s).modpow(e, n).to_bytes_be();
    let mut out = vec![0u8; k - m.len()];
    out.extend_from_slice(&m);
    out
}

const PREFIXES: [(H, &[u8]); 3] = [
    (
        H::S256,
        &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
    ),
    (
        H::S384,
        &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
    ),
    (
        H::S512,
        &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
    ),
];

fn prefix(h: H) -> &'static [u8] {
    PREFIXES.iter().find(|(x, _)| *x as u8 == h as u8).map(|(_, p)| *p).unwrap_or(&[])
}

/// EMSA-PKCS1-v1_5-ENCODE (RFC 8017 9.2), `k` bytes; None when k is too short.
fn pkcs1_encode(h: H, digest: &[u8], k: usize) -> Option<Vec<u8>> {
    let t: Vec<u8> = prefix(h).iter().chain(digest).copied().collect();
    if k < t.len() + 11 {
        return None;
    }
    let mut em = vec![0x00, 0x01];
    em.resize(k - t.len() - 1, 0xff);
    em.push(0x00);
    em.extend_from_slice(&t);
    Some(em)
}

fn mgf1(h: H, seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut counter = 0u32;
    while out.len() < len {
        let mut block = seed.to_vec();
        block.extend_from_slice(&counter.to_be_bytes());
        out.extend_from_slice(&h.digest(&block));
        counter += 1;
    }
    out.truncate(len);
    out
}

/// EMSA-PSS-ENCODE (RFC 8017 9.1.1) into `k` bytes (a leading zero byte when emLen < k).
fn pss_encode(h: H, digest: &[u8], salt: &[u8], mod_bits: usize, k: usize) -> Option<Vec<u8>> {
    let h_len = h.digest(b"").len();
    let em_bits = mod_bits - 1;
    let em_len = em_bits.div_ceil(8);
    if em_len < h_len + salt.len() + 2 {
        return None;
    }
    let mut m_prime = vec![0u8; 8];
    m_prime.extend_from_slice(digest);
    m_prime.extend_from_slice(salt);
    let hh = h.digest(&m_prime);
    let mut db = vec![0u8; em_len - salt.len() - h_len - 2];
    db.push(0x01);
    db.extend_from_slice(salt);
    let mask = mgf1(h, &hh, db.len());
    for (d, m) in db.iter_mut().zip(mask) {
        *d ^= m;
    }
    db[0] &= 0xff >> (8 * em_len - em_bits);
    let mut em = vec![0u8; k - em_len];
    em.extend_from_slice(&db);
    em.extend_from_slice(&hh);
    em.push(0xbc);
    Some(em)
}

/// EMSA-PSS-VERIFY (RFC 8017 9.1.2) with sLen = hLen, on the `k`-byte RSAVP1 output.
fn pss_verify(h: H, digest: &[u8], em_k: &[u8], mod_bits: usize) -> bool {
    let h_len = h.digest(b"").len();
    let s_len = h_len;
    let em_bits = mod_bits - 1;
    let em_len = em_bits.div_ceil(8);
    let (top, em) = em_k.split_at(em_k.len() - em_len);
    if top.iter().any(|b| *b != 0) || digest.len() != h_len || em_len < h_len + s_len + 2 {
        return false;
    }
    if em[em_len - 1] != 0xbc {
        return false;
    }
    let masked_db = &em[..em_len - h_len - 1];
    let hh = &em[em_len - h_len - 1..em_len - 1];
    let zero_bits = 8 * em_len - em_bits;
    if zero_bits > 0 && masked_db[0] >> (8 - zero_bits) != 0 {
        return false;
    }
    let mask = mgf1(h, hh, masked_db.len());
    let mut db: Vec<u8> = masked_db.iter().zip(mask).map(|(a, b)| a ^ b).collect();
    db[0] &= 0xff >> zero_bits;
    let ps_len = em_len - h_len - s_len - 2;
    if db[..ps_len].iter().any(|b| *b != 0) || db[ps_len] != 0x01 {
        return false;
    }
    let salt = &db[db.len() - s_len..];
    let mut m_prime = vec![0u8; 8];
    m_prime.extend_from_slice(digest);
    m_prime.extend_from_slice(salt);
    h.digest(&m_prime) == hh
}

/// The `rsa` crate's verdicts, as a second opinion.
fn rsa_crate(key: &rsa::RsaPublicKey, h: H, digest: &[u8], sig: &[u8]) -> (bool, bool) {
    let (p, s) = match h {
        H::S256 => (rsa::Pkcs1v15Sign::new::<Sha256>(), rsa::Pss::new::<Sha256>()),
        H::S384 => (rsa::Pkcs1v15Sign::new::<Sha384>(), rsa::Pss::new::<Sha384>()),
        H::S512 => (rsa::Pkcs1v15Sign::new::<Sha512>(), rsa::Pss::new::<Sha512>()),
    };
    (key.verify(p, digest, sig).is_ok(), key.verify(s, digest, sig).is_ok())
}

fn check_fixed(f: &Fixed, h: H, digest: &[u8], sig: &[u8], what: &str) {
    let n = f.private.n();
    let k = f.public.modulus_len();
    let bits = f.public.bits();
    assert_eq!((bits, k), (n.bits(), n.to_bytes_be().len()));
    // RSAVP1 by the book.
    let valid_rep = sig.len() == k && BigUint::from_bytes_be(sig) < *n;
    let mut out = vec![0u8; k];
    assert_eq!(f.public.public_op(sig, &mut out), valid_rep, "{what}: public_op range check");
    let em = if valid_rep {
        let em = modpow_bytes(sig, f.private.e(), n, k);
        assert_eq!(out, em, "{what}: public_op differs from modpow");
        Some(em)
    } else {
        None
    };
    let want_pkcs1 = em.as_ref().is_some_and(|em| {
        digest.len() == h.digest(b"").len() && pkcs1_encode(h, digest, k).as_ref() == Some(em)
    });
    let want_pss = em.as_ref().is_some_and(|em| pss_verify(h, digest, em, bits));
    let got_pkcs1 = f.public.verify_pkcs1v15(h.hash(), digest, sig);
    let got_pss = f.public.verify_pss(h.hash(), digest, sig);
    assert_eq!(got_pkcs1, want_pkcs1, "{what}: PKCS#1 v1.5 verdict (RFC 8017 9.2)");
    assert_eq!(got_pss, want_pss, "{what}: PSS verdict (RFC 8017 9.1.2)");
    let (crate_pkcs1, crate_pss) = rsa_crate(&f.private.to_public_key(), h, digest, sig);
    assert_eq!(got_pkcs1, crate_pkcs1, "{what}: PKCS#1 v1.5 verdict differs from the rsa crate");
    assert_eq!(got_pss, crate_pss, "{what}: PSS verdict differs from the rsa crate");
}

fuzz_target!(|input: Input| {
    match input {
        Input::RawOp { n, bits, seed, e, s, s_seed } => {
            let n_be = make_modulus(&n, bits, seed);
            let e_val: u64 = match e {
                Exp::F4 => 65537,
                Exp::Three => 3,
                Exp::SmallOdd(v) => u64::from(v) | 1,
                Exp::Any(v) => v,
            };
            let e_be = e_val.to_be_bytes();
            let key = match RsaPublic::new(&n_be, &e_be) {
                Ok(key) => key,
                Err(why) => {
                    // Refused only for the documented reasons.
                    assert!(
                        e_val < 3 || e_val.is_multiple_of(2) || e_val > rsa_verify::MAX_EXPONENT,
                        "refused {why}: e={e_val}"
                    );
                    return;
                }
            };
            let n = BigUint::from_bytes_be(&n_be);
            let e_int = BigUint::from(e_val);
            assert_eq!(key.bits(), n.bits());
            assert_eq!(key.exponent(), e_val);
            let k = key.modulus_len();
            assert_eq!(k, n_be.len());
            let s = make_base(&s, &n, k, s_seed);
            let mut out = vec![0u8; k];
            let ok = key.public_op(&s, &mut out);
            let below = BigUint::from_bytes_be(&s) < n;
            assert_eq!(ok, below, "public_op range check");
            if ok {
                assert_eq!(
                    out,
                    modpow_bytes(&s, &e_int, &n, k),
                    "public_op differs from modpow: n={} bits, e={e_val}",
                    n.bits()
                );
            }
        }
        Input::Noise { key, hash, message, sig } => {
            let f = &fixed()[key as usize % PEMS.len()];
            check_fixed(f, hash, &hash.digest(&message), &sig, "noise");
        }
        Input::Encoded { key, hash, message, encoding, edits, other_digest } => {
            let f = &fixed()[key as usize % 3];
            let k = f.public.modulus_len();
            let digest = hash.digest(&message);
            let em = match &encoding {
                Encoding::Pkcs1(h) => pkcs1_encode(*h, &h.digest(&message), k),
                Encoding::Pss(h, salt) => {
                    pss_encode(*h, &h.digest(&message), salt, f.public.bits(), k)
                }
                Encoding::Raw(bytes) => {
                    let mut em = bytes.clone();
                    em.resize(k, 0);
                    Some(em)
                }
            };
            let Some(mut em) = em else { return };
            for (pos, x) in edits.iter().take(4) {
                let i = *pos as usize % k;
                em[i] ^= x;
            }
            let m = BigUint::from_bytes_be(&em);
            if m >= *f.private.n() {
                return;
            }
            // s = m^d mod n (CRT, no blinding): the signature whose RSAVP1 output is em.
            let s = rsa::hazmat::rsa_decrypt::<NoRng>(None, &f.private, &m).expect("m < n");
            let mut sig = s.to_bytes_be();
            while sig.len() < k {
                sig.insert(0, 0);
            }
            let verify_digest = other_digest.unwrap_or(digest);
            check_fixed(
                f,
                hash,
                &verify_digest,
                &sig,
                &format!("{encoding:?} with edits {edits:?}"),
            );
        }
    }
});
