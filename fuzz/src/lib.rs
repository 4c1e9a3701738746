//! What the fuzz targets share: writing seed inputs made by Gatehouse's own encoders.
//!
//! The targets themselves cannot carry `#![forbid(unsafe_code)]`: libfuzzer-sys's `fuzz_target!`
//! expands to a `#[no_mangle]` entry point (`rust_fuzzer_test_input`), which the `unsafe_code`
//! lint counts as unsafe. This library has no such entry point, so it forbids `unsafe` as every
//! crate of the workspace does.
#![forbid(unsafe_code)]

use std::path::PathBuf;

/// The variable that asks a target to write its seeds: a corpus root, under which the target
/// writes `<root>/<target>/seed-<n>`. Used once to make `fuzz/corpus/`:
/// `GH_FUZZ_WRITE_SEEDS=fuzz/corpus cargo +nightly fuzz run TARGET -- -runs=0`.
pub const WRITE_SEEDS_VAR: &str = "GH_FUZZ_WRITE_SEEDS";

/// Writes `seeds` as `seed-<n>` files when [`WRITE_SEEDS_VAR`] is set; does nothing otherwise.
/// Called from a target's `init`, once per process.
///
/// # Panics
/// When the variable is set and a file cannot be written: the run was asked for seeds and must
/// not carry on as if it had written them.
#[allow(clippy::panic)]
pub fn write_seeds(target: &str, seeds: &[Vec<u8>]) {
    let Some(root) = std::env::var_os(WRITE_SEEDS_VAR) else {
        return;
    };
    let dir = PathBuf::from(root).join(target);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot create {}: {e}", dir.display());
    }
    for (n, seed) in seeds.iter().enumerate() {
        let path = dir.join(format!("seed-{n}"));
        if let Err(e) = std::fs::write(&path, seed) {
            panic!("cannot write {}: {e}", path.display());
        }
    }
}

/// Splits off the first byte as a selector (0 when the input is empty).
#[must_use]
pub fn split_selector(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((first, rest)) => (*first, rest),
        None => (0, data),
    }
}
