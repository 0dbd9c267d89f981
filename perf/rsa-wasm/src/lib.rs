//! The filter's RSA module, compiled on its own so it can be benchmarked in wasm without the
//! proxy-wasm glue.
#[path = "../../../src/rsa_verify.rs"]
pub mod rsa_verify;
