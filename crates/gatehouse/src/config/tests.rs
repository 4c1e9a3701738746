// figment::Jail closures return figment::Error, whose size is not ours to choose.
#![allow(clippy::result_large_err)]

use figment::Jail;
use gatehouse_crypto::Argon2Params;

use super::*;

fn err(r: Result<Config, ConfigError>) -> String {
    match r {
        Ok(_) => panic!("expected a refusal"),
        Err(e) => e.0,
    }
}

const KEY_B64: &str = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="; // 32 bytes

#[test]
fn defaults_are_valid_and_local() {
    Jail::expect_with(|_| {
        let c = Config::load_from(None).map_err(|e| e.0)?;
        assert_eq!(c.server.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            c.database.database,
            Database::Sqlite {
                url: "sqlite://gatehouse-data/gatehouse.db".into()
            }
        );
        assert!(matches!(c.master_key, MasterKey::GeneratedDevelopment(_)));
        assert_eq!(c.password_hashing.argon2, Argon2Params::MINIMUM);
        Ok(())
    });
}

#[test]
fn cors_wildcard_is_refused_from_file_and_env() {
    Jail::expect_with(|jail| {
        jail.create_file("g.toml", "cors_allowed_origins = [\"*\"]")?;
        let msg = err(Config::load_from(Some(Path::new("g.toml"))));
        assert!(
            msg.contains("cors_allowed_origins") && msg.contains("wildcard"),
            "{msg}"
        );
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env(
            "GATEHOUSE_CORS_ALLOWED_ORIGINS",
            "[\"https://*.example.com\"]",
        );
        let msg = err(Config::load_from(None));
        assert!(msg.contains("wildcard"), "{msg}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env(
            "GATEHOUSE_CORS_ALLOWED_ORIGINS",
            "[\"https://app.example.com/path\"]",
        );
        assert!(err(Config::load_from(None)).contains("not an origin"));
        jail.set_env(
            "GATEHOUSE_CORS_ALLOWED_ORIGINS",
            "[\"https://app.example.com\"]",
        );
        let c = Config::load_from(None).map_err(|e| e.0)?;
        assert_eq!(
            c.server.cors_allowed_origins,
            vec!["https://app.example.com".to_owned()]
        );
        Ok(())
    });
}

#[test]
fn production_needs_a_supplied_master_key() {
    Jail::expect_with(|jail| {
        jail.set_env("GATEHOUSE_MODE", "production");
        let msg = err(Config::load_from(None));
        assert!(
            msg.starts_with("master_key:") && msg.contains("GATEHOUSE_MASTER_KEY"),
            "{msg}"
        );
        jail.set_env("GATEHOUSE_MASTER_KEY", "dG9vLXNob3J0");
        assert!(err(Config::load_from(None)).contains("exactly 32"));
        jail.set_env("GATEHOUSE_MASTER_KEY", KEY_B64);
        // With the key supplied, the next refusal is the token issuer.
        assert!(err(Config::load_from(None)).starts_with("identity.issuer:"));
        jail.set_env("GATEHOUSE_IDENTITY__ISSUER", "https://id.example.com");
        // Then mail: links must be https, and the development file transport is refused.
        assert!(err(Config::load_from(None)).starts_with("mail.base_url:"));
        jail.set_env("GATEHOUSE_MAIL__BASE_URL", "https://app.example.com");
        assert!(err(Config::load_from(None)).starts_with("mail.transport:"));
        jail.set_env("GATEHOUSE_MAIL__TRANSPORT", "smtp");
        let c = Config::load_from(None).map_err(|e| e.0)?;
        assert!(matches!(c.master_key, MasterKey::Environment(_)));
        // Unsubscribe links point at mail.public_url: unset, product mail is refused; plain
        // http is refused in production.
        assert_eq!(c.mail.settings.public_url, "");
        jail.set_env("GATEHOUSE_MAIL__PUBLIC_URL", "http://id.example.com");
        assert!(err(Config::load_from(None)).starts_with("mail.public_url:"));
        jail.set_env("GATEHOUSE_MAIL__PUBLIC_URL", "https://id.example.com/");
        let c = Config::load_from(None).map_err(|e| e.0)?;
        assert_eq!(c.mail.settings.public_url, "https://id.example.com");
        Ok(())
    });
}

#[test]
fn operators_need_a_second_factor_by_default_in_production_only() {
    Jail::expect_with(|jail| {
        let dev = Config::load_from(None).map_err(|e| e.0)?;
        assert!(!dev.identity.operator_totp_required);
        jail.set_env("GATEHOUSE_MODE", "production");
        jail.set_env("GATEHOUSE_MASTER_KEY", KEY_B64);
        jail.set_env("GATEHOUSE_IDENTITY__ISSUER", "https://id.example.com");
        jail.set_env("GATEHOUSE_MAIL__BASE_URL", "https://app.example.com");
        jail.set_env("GATEHOUSE_MAIL__TRANSPORT", "smtp");
        let prod = Config::load_from(None).map_err(|e| e.0)?;
        assert!(prod.identity.operator_totp_required);
        jail.set_env("GATEHOUSE_IDENTITY__OPERATOR_TOTP_REQUIRED", "false");
        let msg = err(Config::load_from(None));
        assert!(
            msg.starts_with("identity.operator_totp_required:") && msg.contains("enrol-totp"),
            "{msg}"
        );
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("GATEHOUSE_IDENTITY__OPERATOR_TOTP_REQUIRED", "true");
        let dev = Config::load_from(None).map_err(|e| e.0)?;
        assert!(dev.identity.operator_totp_required);
        Ok(())
    });
}

#[test]
fn production_refuses_plain_http_off_loopback_unless_behind_a_tls_proxy() {
    Jail::expect_with(|jail| {
        jail.set_env("GATEHOUSE_MODE", "production");
        jail.set_env("GATEHOUSE_MASTER_KEY", KEY_B64);
        jail.set_env("GATEHOUSE_IDENTITY__ISSUER", "https://id.example.com");
        jail.set_env("GATEHOUSE_MAIL__BASE_URL", "https://app.example.com");
        jail.set_env("GATEHOUSE_MAIL__TRANSPORT", "smtp");
        jail.set_env("GATEHOUSE_LISTEN", "0.0.0.0:8080");
        let msg = err(Config::load_from(None));
        assert!(
            msg.starts_with("listen:") && msg.contains("trusted_proxy_tls"),
            "{msg}"
        );
        jail.set_env("GATEHOUSE_TRUSTED_PROXY_TLS", "true");
        Config::load_from(None).map_err(|e| e.0)?;
        Ok(())
    });
}

#[test]
fn unsafe_mail_and_second_factor_settings_are_refused() {
    Jail::expect_with(|jail| {
        jail.set_env("GATEHOUSE_MAIL__TRANSPORT", "smtp");
        jail.set_env("GATEHOUSE_MAIL__SMTP__HOST", "mail.example.com");
        jail.set_env("GATEHOUSE_MAIL__SMTP__TLS", "none");
        let msg = err(Config::load_from(None));
        assert!(
            msg.starts_with("mail.smtp.tls:") && msg.contains("loopback"),
            "{msg}"
        );
        jail.set_env("GATEHOUSE_MAIL__SMTP__HOST", "127.0.0.1");
        Config::load_from(None).map_err(|e| e.0)?;
        jail.set_env("GATEHOUSE_MAIL__SMTP__USERNAME", "gatehouse");
        assert!(err(Config::load_from(None)).contains("password_file"));
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env(
            "GATEHOUSE_IDENTITY__STEP_UP_PERMISSIONS",
            "[\"secrets.reveal\", \"nope\"]",
        );
        let msg = err(Config::load_from(None));
        assert!(
            msg.starts_with("identity.step_up_permissions:") && msg.contains("nope"),
            "{msg}"
        );
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("GATEHOUSE_IDENTITY__PASSWORD_RESET_TTL_SECS", "604800");
        assert!(err(Config::load_from(None)).starts_with("identity.password_reset_ttl_secs:"));
        jail.set_env("GATEHOUSE_IDENTITY__PASSWORD_RESET_TTL_SECS", "1800");
        jail.set_env("GATEHOUSE_IDENTITY__UNVERIFIED_ACCESS", "some");
        assert!(err(Config::load_from(None)).starts_with("identity.unverified_access:"));
        Ok(())
    });
}

#[test]
fn unknown_keys_are_refused_everywhere() {
    Jail::expect_with(|jail| {
        jail.create_file("g.toml", "version = 1\nlisten_adress = \"127.0.0.1:1\"")?;
        let msg = err(Config::load_from(Some(Path::new("g.toml"))));
        assert!(msg.contains("listen_adress"), "{msg}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("GATEHOUSE_LISTEN_ADRESS", "127.0.0.1:1");
        assert!(err(Config::load_from(None)).contains("listen_adress"));
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.create_file("g.toml", "[password_hashing]\nmemroy_kib = 1")?;
        assert!(err(Config::load_from(Some(Path::new("g.toml")))).contains("memroy_kib"));
        Ok(())
    });
}

#[test]
fn master_key_in_the_file_is_refused() {
    Jail::expect_with(|jail| {
        jail.create_file("g.toml", &format!("master_key = \"{KEY_B64}\""))?;
        let msg = err(Config::load_from(Some(Path::new("g.toml"))));
        assert!(
            msg.starts_with("master_key:") && msg.contains("version control"),
            "{msg}"
        );
        assert!(!msg.contains(KEY_B64));
        Ok(())
    });
}

#[test]
fn other_refusals_name_their_setting() {
    let cases: &[(&str, &str, &str)] = &[
        ("GATEHOUSE_VERSION", "2", "version:"),
        ("GATEHOUSE_LISTEN", "localhost", "listen:"),
        (
            "GATEHOUSE_PASSWORD_HASHING__MEMORY_KIB",
            "4096",
            "password_hashing:",
        ),
        (
            "GATEHOUSE_PASSWORD_HASHING__WORKERS",
            "0",
            "password_hashing.workers:",
        ),
        ("GATEHOUSE_BODY_LIMIT_BYTES", "0", "body_limit_bytes:"),
        ("GATEHOUSE_DATABASE_URL", "mysql://x", "database_url:"),
        ("GATEHOUSE_MODE", "staging", "mode"),
        (
            "GATEHOUSE_KEYRING__MAX_ENCRYPTIONS_PER_KEY",
            "4294967296",
            "keyring.max_encryptions_per_key:",
        ),
    ];
    for (var, value, expected) in cases {
        Jail::expect_with(|jail| {
            jail.set_env(var, value);
            let msg = err(Config::load_from(None));
            assert!(
                msg.to_lowercase().contains(expected),
                "{var}={value}: {msg}"
            );
            Ok(())
        });
    }
}

#[test]
fn redacted_output_hides_secrets() {
    Jail::expect_with(|jail| {
        jail.set_env("GATEHOUSE_MASTER_KEY", KEY_B64);
        jail.set_env(
            "GATEHOUSE_DATABASE_URL",
            "postgres://app:s3cr3t-pw@db.internal/gh",
        );
        let c = Config::load_from(None).map_err(|e| e.0)?;
        let out = c.to_redacted_toml();
        assert!(!out.contains("s3cr3t-pw"), "{out}");
        assert!(!out.contains(KEY_B64), "{out}");
        assert!(
            out.contains("postgres://app:[redacted]@db.internal/gh"),
            "{out}"
        );
        let debug = format!("{c:?}");
        assert!(
            debug.contains("redacted") && !debug.contains(KEY_B64),
            "{debug}"
        );
        assert!(
            !debug.contains("s3cr3t-pw"),
            "Debug leaks the database password: {debug}"
        );
        Ok(())
    });
}

#[test]
fn identity_lifetimes_are_bounded() {
    Jail::expect_with(|jail| {
        jail.set_env("GATEHOUSE_IDENTITY__ACCESS_TOKEN_TTL_SECS", "86400");
        assert!(err(Config::load_from(None)).starts_with("identity.access_token_ttl_secs:"));
        jail.set_env("GATEHOUSE_IDENTITY__ACCESS_TOKEN_TTL_SECS", "600");
        jail.set_env("GATEHOUSE_IDENTITY__OPERATOR_SESSION_TTL_SECS", "604800");
        assert!(err(Config::load_from(None)).starts_with("identity.operator_session_ttl_secs:"));
        jail.set_env("GATEHOUSE_IDENTITY__OPERATOR_SESSION_TTL_SECS", "43200");
        let c = Config::load_from(None).map_err(|e| e.0)?;
        assert_eq!(c.identity.access_token_ttl, time::Duration::minutes(10));
        Ok(())
    });
}

#[test]
fn session_policy_is_validated_at_load() {
    Jail::expect_with(|jail| {
        let c = Config::load_from(None).map_err(|e| e.0)?;
        assert_eq!(c.identity.idle_timeout, time::Duration::minutes(30));
        assert_eq!(c.identity.max_sessions_per_account, None);
        // Shorter than an access token's life: the token would outlive the limit.
        jail.set_env("GATEHOUSE_IDENTITY__IDLE_TIMEOUT_SECS", "600");
        let msg = err(Config::load_from(None));
        assert!(
            msg.starts_with("identity.idle_timeout_secs:") && msg.contains("(930)"),
            "{msg}"
        );
        // Nor may the leeway after a token's expiry (30 s by default) outlast it.
        jail.set_env("GATEHOUSE_IDENTITY__IDLE_TIMEOUT_SECS", "900");
        let msg = err(Config::load_from(None));
        assert!(
            msg.starts_with("identity.idle_timeout_secs:") && msg.contains("(930)"),
            "{msg}"
        );
        jail.set_env("GATEHOUSE_IDENTITY__LEEWAY_SECS", "0");
        Config::load_from(None).map_err(|e| e.0)?;
        jail.set_env("GATEHOUSE_IDENTITY__IDLE_TIMEOUT_SECS", "700000");
        assert!(err(Config::load_from(None)).starts_with("identity.idle_timeout_secs:"));
        jail.set_env("GATEHOUSE_IDENTITY__IDLE_TIMEOUT_SECS", "3600");
        jail.set_env("GATEHOUSE_IDENTITY__MAX_SESSIONS_PER_ACCOUNT", "0");
        assert!(err(Config::load_from(None)).starts_with("identity.max_sessions_per_account:"));
        // Past what the count reads (500 live sessions).
        jail.set_env("GATEHOUSE_IDENTITY__MAX_SESSIONS_PER_ACCOUNT", "501");
        assert!(err(Config::load_from(None)).starts_with("identity.max_sessions_per_account:"));
        jail.set_env("GATEHOUSE_IDENTITY__MAX_SESSIONS_PER_ACCOUNT", "500");
        Config::load_from(None).map_err(|e| e.0)?;
        jail.set_env("GATEHOUSE_IDENTITY__MAX_SESSIONS_PER_ACCOUNT", "3");
        jail.set_env("GATEHOUSE_IDENTITY__SESSION_LIMIT_ACTION", "end_newest");
        let msg = err(Config::load_from(None));
        assert!(
            msg.starts_with("identity.session_limit_action:") && msg.contains("end_oldest"),
            "{msg}"
        );
        jail.set_env("GATEHOUSE_IDENTITY__SESSION_LIMIT_ACTION", "refuse");
        let c = Config::load_from(None).map_err(|e| e.0)?;
        assert_eq!(c.identity.idle_timeout, time::Duration::hours(1));
        assert_eq!(c.identity.max_sessions_per_account, Some(3));
        assert_eq!(
            c.identity.session_limit_action,
            gatehouse_core::identity::SessionLimitAction::Refuse
        );
        Ok(())
    });
}

#[test]
fn redis_url_password_never_reaches_the_printout_or_debug() {
    Jail::expect_with(|jail| {
        jail.set_env(
            "GATEHOUSE_REDIS_URL",
            "redis://:hunter2-pw@cache.internal:6379",
        );
        let c = Config::load_from(None).map_err(|e| e.0)?;
        let out = c.to_redacted_toml();
        assert!(!out.contains("hunter2-pw"), "{out}");
        assert!(
            out.contains("redis://:[redacted]@cache.internal:6379"),
            "{out}"
        );
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2-pw"), "{debug}");
        Ok(())
    });
}

#[test]
fn smtp_password_file_is_checked_even_with_the_file_transport() {
    Jail::expect_with(|jail| {
        // Created with the default mode (readable by others): refused whatever the transport.
        jail.create_file("smtp.pw", "secret")?;
        jail.set_env("GATEHOUSE_MAIL__SMTP__PASSWORD_FILE", "smtp.pw");
        let msg = err(Config::load_from(None));
        assert!(msg.starts_with("mail.smtp.password_file:"), "{msg}");
        Ok(())
    });
}

#[test]
fn product_permissions_and_record_types_are_checked_at_load() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "g.toml",
            r#"
[[product.permissions]]
name = "report.read"
description = "read reports"
roles = ["owner", "member"]

[[product.permissions]]
name = "report.export"
description = "export a report"
step_up = true
roles = ["owner"]

[[product.record_types]]
name = "report"
read = "report.read"
write = "report.export"
"#,
        )?;
        let c = Config::load_from(Some(Path::new("g.toml"))).map_err(|e| e.0)?;
        assert_eq!(c.product.permissions.len(), 2);
        assert!(c.product.needs_step_up("report.export"));
        assert_eq!(c.product.record_types[0].read, "report.read");
        Ok(())
    });
    for (toml, says) in [
        (
            "[[product.permissions]]\nname = \"report.read\"\ndescription = \"r\"\nroles = [\"auditors\"]",
            "only the built-in roles",
        ),
        (
            "[[product.permissions]]\nname = \"secrets.reveal\"\ndescription = \"r\"",
            "Gatehouse's own",
        ),
        (
            "[[product.record_types]]\nname = \"report\"\nread = \"report.read\"\nwrite = \"report.read\"",
            "not a declared product permission",
        ),
    ] {
        Jail::expect_with(|jail| {
            jail.create_file("g.toml", toml)?;
            let msg = err(Config::load_from(Some(Path::new("g.toml"))));
            assert!(msg.starts_with("product"), "{msg}");
            assert!(msg.contains(says), "{msg}");
            Ok(())
        });
    }
}

#[test]
fn lifecycle_settings_that_break_the_minute_or_retry_for_ever_are_refused() {
    for (file, names) in [
        (
            "[lifecycle]\npurge_interval_secs = 16",
            "lifecycle.purge_interval_secs",
        ),
        (
            "[lifecycle]\npurge_interval_secs = 0",
            "lifecycle.purge_interval_secs",
        ),
        ("[lifecycle]\nbatch = 5", "lifecycle.batch"),
        (
            "[lifecycle]\nprune_interval_secs = 1",
            "lifecycle.prune_interval_secs",
        ),
        (
            "[lifecycle]\nsessions_retention_hours = 900000",
            "lifecycle.sessions_retention_hours",
        ),
        ("[lifecycle]\npause_ms = 5000", "lifecycle.pause_ms"),
        ("[mail]\nmax_refusals = 0", "mail.max_refusals"),
        ("[mail]\nmax_attempts = 1000", "mail.max_refusals"),
        (
            "[mail]\nmax_attempts = 2\nmax_refusals = 3",
            "mail.max_refusals",
        ),
    ] {
        Jail::expect_with(|jail| {
            jail.create_file("g.toml", file)?;
            let msg = err(Config::load_from(Some(Path::new("g.toml"))));
            assert!(msg.contains(names), "{file}: {msg}");
            Ok(())
        });
    }
    Jail::expect_with(|jail| {
        jail.create_file(
            "g.toml",
            "[lifecycle]\npurge_interval_secs = 5\nrecovery_codes_retention_hours = 2",
        )?;
        let c = Config::load_from(Some(Path::new("g.toml"))).map_err(|e| e.0)?;
        assert_eq!(c.lifecycle.purge_every, std::time::Duration::from_secs(5));
        assert_eq!(c.lifecycle.settings.lease, time::Duration::seconds(10));
        assert_eq!(
            c.lifecycle.settings.retention[&gatehouse_core::store::PruneJob::RecoveryCodes],
            time::Duration::hours(2)
        );
        Ok(())
    });
}

#[test]
fn pkcs11_master_key_settings_are_checked_at_load() {
    use std::os::unix::fs::PermissionsExt as _;
    Jail::expect_with(|jail| {
        jail.set_env("GATEHOUSE_MASTER_KEY_PKCS11__MODULE", "libsofthsm2.so");
        jail.set_env("GATEHOUSE_MASTER_KEY_PKCS11__TOKEN_LABEL", "gatehouse");
        jail.set_env("GATEHOUSE_MASTER_KEY_PKCS11__KEY_LABEL", "kek-1");
        let msg = err(Config::load_from(None));
        assert!(
            msg.starts_with("master_key_pkcs11.module:") && msg.contains("absolute"),
            "{msg}"
        );
        // Any existing file passes load; the library itself is loaded at start.
        jail.set_env("GATEHOUSE_MASTER_KEY_PKCS11__MODULE", "/bin/sh");
        let msg = err(Config::load_from(None));
        assert!(msg.contains("GATEHOUSE_PKCS11_PIN"), "{msg}");
        jail.create_file("hsm-pin", "4711\n")?;
        jail.set_env("GATEHOUSE_MASTER_KEY_PKCS11__PIN_FILE", "hsm-pin");
        std::fs::set_permissions("hsm-pin", std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(err(Config::load_from(None)).contains("chmod 600"));
        std::fs::set_permissions("hsm-pin", std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = Config::load_from(None).map_err(|e| e.0)?;
        let MasterKey::Pkcs11(s) = &c.master_key else {
            panic!("expected the HSM source");
        };
        assert_eq!(s.pin.expose(), "4711");
        let shown = format!("{}{c:?}", c.to_redacted_toml());
        assert!(
            !shown.contains("4711") && shown.contains("kek-1"),
            "{shown}"
        );
        jail.set_env("GATEHOUSE_PKCS11_PIN", "4711");
        assert!(err(Config::load_from(None)).contains("one way only"));
        jail.set_env("GATEHOUSE_PKCS11_PIN", "");
        jail.set_env("GATEHOUSE_MASTER_KEY", KEY_B64);
        let msg = err(Config::load_from(None));
        assert!(
            msg.starts_with("master_key_pkcs11:") && msg.contains("one way only"),
            "{msg}"
        );
        Ok(())
    });
}

#[test]
fn the_mail_lease_covers_a_batch_of_relay_timeouts_and_is_short_for_files() {
    Jail::expect_with(|jail| {
        // The file transport writes locally: a killed instance's claim runs out in 10 s.
        let c = Config::load_from(None).map_err(|e| e.0)?;
        assert_eq!(c.mail.settings.lease, time::Duration::seconds(10));
        // SMTP: the 20 messages of a pass sent in turn, each within the relay's timeout.
        jail.set_env("GATEHOUSE_MAIL__TRANSPORT", "smtp");
        let c = Config::load_from(None).map_err(|e| e.0)?;
        assert_eq!(c.mail.settings.lease, time::Duration::seconds(20 * 10 + 30));
        jail.set_env("GATEHOUSE_MAIL__SMTP__TIMEOUT_SECS", "100000");
        let c = Config::load_from(None).map_err(|e| e.0)?;
        assert_eq!(c.mail.settings.lease, time::Duration::days(1));
        Ok(())
    });
}

#[test]
fn the_trust_page_section_reads_its_declarations_from_toml_and_refuses_unknown_statuses() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "g.toml",
            r#"
[trust_page]
enabled = true
cache_seconds = 30
service_name = "Acme CRM"
contact = "mailto:security@acme.example"
data_residency = "EU (Frankfurt)"
last_penetration_test = "2026-03, by Example Security GmbH"

[[trust_page.certifications]]
name = "SOC 2 Type II"
status = "in_progress"
note = "audit period ends 2026-09"

[[trust_page.certifications]]
name = "ISO/IEC 27001"
status = "not_claimed"

[[trust_page.sub_processors]]
name = "Hetzner Online GmbH"
purpose = "hosting"
location = "Germany"
"#,
        )?;
        let c = Config::load_from(Some(Path::new("g.toml"))).map_err(|e| e.0)?;
        let t = c.trust_page.expect("enabled");
        assert_eq!(t.cache, Duration::from_secs(30));
        let d = &t.declarations;
        assert_eq!(d.contact.as_deref(), Some("mailto:security@acme.example"));
        assert_eq!(d.certifications.len(), 2);
        assert_eq!(
            d.certifications[0].status,
            gatehouse_core::posture::CertificationStatus::InProgress
        );
        assert_eq!(d.sub_processors[0].location.as_deref(), Some("Germany"));
        // The environment turns it off like any other key.
        jail.set_env("GATEHOUSE_TRUST_PAGE__ENABLED", "false");
        let off = Config::load_from(Some(Path::new("g.toml"))).map_err(|e| e.0)?;
        assert!(off.trust_page.is_none());
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.create_file(
            "g.toml",
            "[[trust_page.certifications]]\nname = \"SOC 2\"\nstatus = \"certified\"\n",
        )?;
        let msg = err(Config::load_from(Some(Path::new("g.toml"))));
        assert!(
            msg.contains("certified") && msg.contains("in_progress"),
            "{msg}"
        );
        Ok(())
    });
    Jail::expect_with(|_| {
        assert!(
            Config::load_from(None)
                .map_err(|e| e.0)?
                .trust_page
                .is_none()
        );
        Ok(())
    });
}
