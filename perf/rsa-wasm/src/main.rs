//! Times RSA-2048 (e = 65537) RS256 verification three ways in one run: the `rsa` crate (key
//! built once), `ring` 0.17 (`RsaPublicKeyComponents::verify`) and `src/rsa_verify.rs`. Each
//! verify includes hashing the ~700-byte signing input, as in the filter. Rounds alternate
//! between the three so machine noise hits them alike; the best round of each is reported,
//! with ratios.
//!
//! Usage: `rsa-wasm-bench [iterations-per-round] [rounds]` (native), or in wasm through
//! `node ../../scripts/wasi_test.mjs rsa-wasm-bench.wasm [iterations] [rounds]`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)] // a benchmark harness

use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa_wasm_bench::rsa_verify::{Hash, RsaPublic};
use sha2::{Digest, Sha256};
use std::time::Instant;

const PEM: &str = include_str!("../../../src/testdata/rsa-test-key.pem");

fn main() {
    let mut args = std::env::args().skip(1);
    let iters: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let rounds: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);

    let private = rsa::RsaPrivateKey::from_pkcs8_pem(PEM).expect("test key");
    let n = private.n().to_bytes_be();
    let e = private.e().to_bytes_be();
    // A JWS signing input of typical size.
    let msg: Vec<u8> =
        (0..700u32).map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789-_"[(i % 38) as usize]).collect();
    let sig =
        private.sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(&msg)).expect("sign");

    let rsa_key = rsa::RsaPublicKey::new(private.n().clone(), private.e().clone()).expect("key");
    let ring_key = ring::signature::RsaPublicKeyComponents { n: &n, e: &e };
    let ours = RsaPublic::new(&n, &e).expect("key");
    println!(
        "RSA-{} e={} RS256: {} verifies per round, best of {} rounds",
        ours.bits(),
        ours.exponent(),
        iters,
        rounds,
    );

    // Warm-up, so that V8 has tiered every hot function up to its optimizing compiler.
    let mut out = vec![0u8; ours.modulus_len()];
    for _ in 0..iters {
        assert!(ours.public_op(&sig, &mut out));
        assert!(RsaPublic::new(&n, &e).is_ok());
    }

    let mut best = [f64::INFINITY; 3];
    let names = ["rsa 0.9", "ring 0.17", "rsa_verify"];
    for _ in 0..rounds {
        for (slot, best) in best.iter_mut().enumerate() {
            let t = Instant::now();
            let mut ok = 0u32;
            for _ in 0..iters {
                let good = match slot {
                    0 => rsa_key
                        .verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(&msg), &sig)
                        .is_ok(),
                    1 => ring_key
                        .verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, &msg, &sig)
                        .is_ok(),
                    _ => {
                        ours.verify_pkcs1v15(Hash::Sha256, Hash::Sha256.digest(&msg).as_ref(), &sig)
                    }
                };
                ok += u32::from(good);
            }
            assert_eq!(ok, iters, "{} refused a good signature", names[slot]);
            let us = t.elapsed().as_secs_f64() * 1e6 / f64::from(iters);
            *best = best.min(us);
        }
    }
    // Raw s^e mod n for e = 3 (2 multiplications, 1 squaring) and e = 65537 (2 and 16): their
    // difference gives the cost of one Montgomery squaring.
    let mut raw = [f64::INFINITY; 2];
    for _ in 0..rounds {
        for (slot, e) in [[3u8].as_slice(), &[1, 0, 1]].iter().enumerate() {
            let key = RsaPublic::new(&n, e).expect("key");
            let t = Instant::now();
            for _ in 0..iters {
                assert!(key.public_op(&sig, &mut out));
            }
            raw[slot] = raw[slot].min(t.elapsed().as_secs_f64() * 1e6 / f64::from(iters));
        }
    }
    // Per-key setup (RsaPublic::new: limbs, -n^-1, R^2 mod n), per modulus size, and the raw
    // s^65537 mod n for other sizes, on fixed pseudo-random moduli.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for bits in [2048usize, 3072, 4096] {
        let mut modulus: Vec<u8> = (0..bits / 8)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        modulus[0] |= 0x80;
        if let Some(last) = modulus.last_mut() {
            *last |= 1;
        }
        let mut value = modulus.clone();
        value[0] &= 0x7f;
        let (mut setup, mut op) = (f64::INFINITY, f64::INFINITY);
        let mut out = vec![0u8; modulus.len()];
        for _ in 0..rounds {
            let t = Instant::now();
            for _ in 0..iters / 4 + 1 {
                std::hint::black_box(RsaPublic::new(&modulus, &e).expect("key"));
            }
            setup = setup.min(t.elapsed().as_secs_f64() * 1e6 / f64::from(iters / 4 + 1));
            let key = RsaPublic::new(&modulus, &e).expect("key");
            let t = Instant::now();
            for _ in 0..iters / 4 + 1 {
                assert!(key.public_op(&value, &mut out));
            }
            op = op.min(t.elapsed().as_secs_f64() * 1e6 / f64::from(iters / 4 + 1));
        }
        println!("RSA-{bits}: RsaPublic::new {setup:.1} us, s^65537 mod n {op:.1} us");
    }

    let sqr = (raw[1] - raw[0]) / 15.0;
    println!(
        "raw s^3: {:.1} us, s^65537: {:.1} us => Montgomery squaring {:.2} us, multiplication {:.2} us",
        raw[0],
        raw[1],
        sqr,
        (raw[0] - sqr) / 2.0
    );
    for (name, us) in names.iter().zip(best) {
        println!(
            "{name:>12}: {us:8.1} us/verify   rsa/this {:5.2}x   this/rsa_verify {:5.2}x",
            best[0] / us,
            us / best[2]
        );
    }
}
