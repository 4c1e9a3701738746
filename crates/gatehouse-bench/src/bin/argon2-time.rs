//! One Argon2id verification's time with the default parameters (m=19456 KiB, t=2, p=1), on one
//! thread: the unit of the sign-in throughput bound (CPUs / this time) in bench/run.py.
//!
//! Usage: argon2-time [iterations, default 40]. Prints seconds per verification.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::Instant;

use gatehouse_crypto::{Argon2Params, SecretString, hash_password, verify_password};

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(40);
    let password = SecretString::from("a sufficiently long passphrase".to_owned());
    let hash = hash_password(&password, &Argon2Params::MINIMUM).unwrap();
    // Warm the allocator and caches once.
    verify_password(&password, &hash).unwrap();
    let started = Instant::now();
    for _ in 0..n {
        assert!(verify_password(&password, &hash).unwrap());
    }
    println!("{:.6}", started.elapsed().as_secs_f64() / f64::from(n));
}
