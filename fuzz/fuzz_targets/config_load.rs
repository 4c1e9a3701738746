//! The configuration loader (`gatehouse::Config`), on arbitrary text as the config file: the same
//! layering (defaults, the file, `GATEHOUSE_*` variables) and validation the binary runs at start
//! (`Config::load_from` after reading the file).
//!
//! Asserts:
//! - the loader answers, never panics: a configuration, or a refusal whose message is not empty;
//! - what `gatehouse config check` prints for an accepted configuration (the effective settings,
//!   secrets redacted) is TOML holding every top-level setting, and loading it as a config file
//!   again is accepted and prints the same.
//!
//! Inputs naming a special file (a device, a FIFO, anything under /proc or /sys) are skipped: the
//! loader reads the key, certificate and secret files a configuration names, and reading
//! `/dev/zero` would hang the fuzzer, not find a bug. Run it with no `GATEHOUSE_*` variable set
//! (`fuzz/run.sh` clears them): they are layers of the configuration too.
//!
//! No `#![forbid(unsafe_code)]`: `fuzz_target!` emits a `#[no_mangle]` function (see src/lib.rs).
#![no_main]

use std::path::Path;

use gatehouse::Config;
use libfuzzer_sys::fuzz_target;

const FILE: &str = "gatehouse-fuzz.toml";

/// Whether any string in the TOML names an existing file that is not a regular file or a
/// directory, or one under /proc or /sys.
fn names_a_special_file(value: &toml::Value) -> bool {
    match value {
        toml::Value::String(s) => std::fs::canonicalize(s).is_ok_and(|real| {
            real.starts_with("/proc")
                || real.starts_with("/sys")
                || std::fs::metadata(&real).is_ok_and(|m| !m.is_file() && !m.is_dir())
        }),
        toml::Value::Array(items) => items.iter().any(names_a_special_file),
        toml::Value::Table(t) => t.values().any(names_a_special_file),
        _ => false,
    }
}

fn printout(c: &Config) -> String {
    c.to_redacted_toml()
}

fuzz_target!(
    init: {
        let defaults = match Config::load_from_text(Path::new(FILE), "") {
            Ok(c) => printout(&c),
            Err(e) => panic!("the defaults are refused: {e}"),
        };
        let seeds = [
            defaults.clone(),
            String::new(),
            "version = 1\nmode = \"development\"\nlisten = \"127.0.0.1:9090\"\n\n[identity]\naccess_token_ttl_secs = 600\n".to_owned(),
            "mode = \"production\"\ncors_allowed_origins = [\"https://app.example.com\"]\n[rate_limits]\nstore = \"memory\"\n".to_owned(),
            "[tls]\nmin_version = \"1.2\"\n[mail]\ntransport = \"file\"\n".to_owned(),
        ];
        let bytes: Vec<Vec<u8>> = seeds.into_iter().map(String::into_bytes).collect();
        gatehouse_fuzz::write_seeds("config_load", &bytes);
    },
    |data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if let Ok(table) = text.parse::<toml::Table>()
            && table.values().any(names_a_special_file)
        {
            return;
        }
        match Config::load_from_text(Path::new(FILE), text) {
            Err(e) => assert!(!e.0.trim().is_empty(), "a refusal without a message"),
            Ok(c) => {
                let printed = printout(&c);
                let table = match printed.parse::<toml::Table>() {
                    Ok(t) => t,
                    Err(e) => panic!("`config check` printed invalid TOML ({e}):\n{printed}"),
                };
                for key in ["version", "mode", "listen", "data_dir", "identity", "tls"] {
                    assert!(table.contains_key(key), "`config check` lost {key}:\n{printed}");
                }
                match Config::load_from_text(Path::new(FILE), &printed) {
                    Ok(again) => assert_eq!(printout(&again), printed, "the printout drifts"),
                    Err(e) => panic!("the printout of an accepted config is refused: {e}\n{printed}"),
                }
            }
        }
    }
);
