//! TLS to the engines: how `database_url`, `database_migration_url` and `redis_url` reach their
//! servers, checked at load.
//!
//! PostgreSQL takes libpq's own URL parameters, `sslmode` and `sslrootcert` (or `PGSSLMODE` and
//! `PGSSLROOTCERT` in the environment, which the driver reads as libpq does), because operators
//! already know them. Redis takes `rediss://` and the `redis_ca_file` setting. Refused here: an
//! sslmode the driver does not know, a CA file that is missing or holds no usable certificate, a
//! CA that nothing would check, Redis's `#insecure`, and in production a connection that is not
//! sure to be encrypted to a host off loopback unless `allow_plaintext_engines = true`.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use super::{ConfigError, RawConfig, RedisUrl, refuse};

/// What production asks of a plain connection, named in every refusal.
const ALLOW: &str = "allow_plaintext_engines";

/// The process environment, as the PostgreSQL driver reads it.
pub(super) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// libpq's sslmode values, as the driver understands them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_lowercase().as_str() {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// Whether the connection is sure to be encrypted (`prefer` and `allow` fall back to plain
    /// text when the server offers no TLS, or someone in the path says so).
    fn encrypts(self) -> bool {
        matches!(self, Self::Require | Self::VerifyCa | Self::VerifyFull)
    }

    fn checks_the_certificate(self) -> bool {
        matches!(self, Self::VerifyCa | Self::VerifyFull)
    }
}

/// Checks one PostgreSQL URL (`setting` names it in refusals); `env` is the environment the
/// driver will read.
pub(super) fn check_postgres(
    setting: &str,
    url: &str,
    production: bool,
    allow_plaintext: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let parsed = url::Url::parse(url).map_err(|e| {
        ConfigError(format!(
            "{setting}: not a URL such as postgres://user@host/db ({e})"
        ))
    })?;
    let mut mode = None;
    let mut root_cert = None;
    let mut host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .map(str::to_owned);
    // Later parameters win, as in the driver.
    for (key, value) in parsed.query_pairs() {
        match &*key {
            "sslmode" | "ssl-mode" => {
                mode = Some(SslMode::parse(&value).ok_or_else(|| unknown_mode(setting, &value))?);
            }
            "sslrootcert" | "ssl-root-cert" | "ssl-ca" => root_cert = Some(value.into_owned()),
            "host" | "hostaddr" => host = Some(value.into_owned()),
            _ => {}
        }
    }
    let mode = match mode {
        Some(m) => m,
        None => match env("PGSSLMODE") {
            Some(v) => SslMode::parse(&v).ok_or_else(|| unknown_mode("PGSSLMODE", &v))?,
            // The driver's default: TLS when the server offers it, unchecked, else plain text.
            None => SslMode::Prefer,
        },
    };
    let (root_cert, root_source) = match root_cert {
        Some(r) => (Some(r), format!("{setting}: sslrootcert")),
        None => (env("PGSSLROOTCERT"), "PGSSLROOTCERT".to_owned()),
    };
    if let Some(path) = root_cert {
        if !mode.checks_the_certificate() {
            return refuse(format!(
                "{root_source}: a CA file is only checked with sslmode=verify-ca or verify-full; \
                 with sslmode={} the server's certificate is not checked at all",
                mode_name(mode)
            ));
        }
        read_ca(&root_source, Path::new(&path))?;
    }
    let host = host.or_else(|| env("PGHOSTADDR")).or_else(|| env("PGHOST"));
    // The driver trusts the public web roots beside sslrootcert, and verify-ca skips the name:
    // any publicly trusted certificate for any name would pass. It looks verified and is not.
    if production
        && !allow_plaintext
        && mode == SslMode::VerifyCa
        && let Some(remote) = host.as_deref().filter(|h| !is_local(h))
    {
        return refuse(format!(
            "{setting}: production refuses sslmode=verify-ca for PostgreSQL at {remote}: the \
             driver also trusts the public web's CAs and verify-ca does not check the host name, \
             so any publicly trusted certificate for any name would be accepted; use \
             sslmode=verify-full (or set {ALLOW} = true if the network path is protected some \
             other way)"
        ));
    }
    if production
        && !allow_plaintext
        && !mode.encrypts()
        && let Some(remote) = host.filter(|h| !is_local(h))
    {
        return refuse(format!(
            "{setting}: production refuses a connection to PostgreSQL at {remote} that is not \
             sure to be encrypted (sslmode={}); add sslmode=verify-full and \
             sslrootcert=/path/to/ca.pem to the URL (or at least sslmode=require), or set \
             {ALLOW} = true if the network path is protected some other way",
            mode_name(mode)
        ));
    }
    Ok(())
}

fn unknown_mode(setting: &str, value: &str) -> ConfigError {
    ConfigError(format!(
        "{setting}: sslmode {value:?} is not one of disable, allow, prefer, require, verify-ca, \
         verify-full"
    ))
}

fn mode_name(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Disable => "disable",
        SslMode::Allow => "allow",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    }
}

/// Loopback names and addresses, and unix sockets (a path, percent-encoded or not).
fn is_local(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.starts_with('/')
        || bare.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("%2f"))
        || bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Reads a CA file and checks it holds at least one certificate usable as a trust anchor.
fn read_ca(setting: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(path)
        .map_err(|e| ConfigError(format!("{setting}: cannot read {}: {e}", path.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let usable = cert.ok().is_some_and(|c| roots.add(c).is_ok());
        if !usable {
            return refuse(format!(
                "{setting}: {} holds a certificate that cannot be read as a CA certificate",
                path.display()
            ));
        }
    }
    if roots.is_empty() {
        return refuse(format!(
            "{setting}: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(pem)
}

/// Validates `redis_url` with `redis_ca_file`: the URL and, for `rediss://`, the CA it trusts.
pub(super) fn redis(raw: &RawConfig, production: bool) -> Result<Option<RedisUrl>, ConfigError> {
    let Some(url) = &raw.redis_url else {
        if raw.redis_ca_file.is_some() {
            return refuse("redis_ca_file: set only together with a rediss:// redis_url");
        }
        return Ok(None);
    };
    let parsed = url::Url::parse(url).map_err(|e| {
        ConfigError(format!(
            "redis_url: not a URL such as rediss://host:6379 ({e})"
        ))
    })?;
    let tls = match parsed.scheme() {
        "rediss" | "valkeys" => true,
        "redis" | "valkey" => false,
        "unix" | "redis+unix" | "valkey+unix" => {
            if raw.redis_ca_file.is_some() {
                return refuse("redis_ca_file: a unix socket has no TLS; remove redis_ca_file");
            }
            return Ok(Some(RedisUrl::new(url.clone(), None)));
        }
        other => {
            return refuse(format!(
                "redis_url: the scheme {other:?} is not one of redis://, rediss:// or unix://"
            ));
        }
    };
    if parsed.fragment().is_some() {
        return refuse(
            "redis_url: #insecure (or any fragment) is refused: it would accept any certificate; \
             give the server's CA with redis_ca_file instead",
        );
    }
    let ca = match (&raw.redis_ca_file, tls) {
        (Some(_), false) => {
            return refuse(
                "redis_ca_file: only used with a rediss:// redis_url; redis:// is plain text",
            );
        }
        (Some(path), true) => Some(Arc::new(read_ca("redis_ca_file", path)?)),
        (None, _) => None,
    };
    let host = parsed.host_str().unwrap_or_default();
    if production && !tls && !raw.allow_plaintext_engines && !is_local(host) {
        return refuse(format!(
            "redis_url: production refuses a plain connection to Redis at {host}: its password, \
             the revocations and the rate-limit keys would cross the network in the clear; use \
             rediss:// (with redis_ca_file for a private CA), or set {ALLOW} = true if the \
             network path is protected some other way"
        ));
    }
    Ok(Some(RedisUrl::new(url.clone(), ca)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn temp() -> PathBuf {
        std::env::temp_dir().join(format!("gh-engines-{}", uuid::Uuid::new_v4()))
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn pg(url: &str, production: bool, allow: bool) -> Result<(), String> {
        check_postgres("database_url", url, production, allow, &no_env).map_err(|e| e.0)
    }

    #[test]
    fn sslmode_and_the_ca_file_are_checked_at_load() {
        let dir = temp();
        let files = crate::dev_cert_cmd::generate(&dir).unwrap();
        let ca = files.ca.display().to_string();
        let msg = pg("postgres://u@db/gh?sslmode=verify-fulll", false, false).unwrap_err();
        assert!(
            msg.starts_with("database_url: sslmode \"verify-fulll\" is not one of"),
            "{msg}"
        );
        let msg = pg(
            &format!("postgres://u@db/gh?sslmode=verify-full&sslrootcert={ca}.missing"),
            false,
            false,
        )
        .unwrap_err();
        assert!(
            msg.starts_with("database_url: sslrootcert: cannot read"),
            "{msg}"
        );
        // A private key is not a certificate.
        let key = files.ca_key.display();
        let msg = pg(
            &format!("postgres://u@db/gh?sslmode=verify-ca&sslrootcert={key}"),
            false,
            false,
        )
        .unwrap_err();
        assert!(msg.contains("holds no PEM certificate"), "{msg}");
        let junk = dir.join("junk.pem");
        std::fs::write(
            &junk,
            "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let msg = pg(
            &format!(
                "postgres://u@db/gh?sslmode=verify-ca&sslrootcert={}",
                junk.display()
            ),
            false,
            false,
        )
        .unwrap_err();
        assert!(msg.contains("cannot be read as a CA certificate"), "{msg}");
        // A CA with a mode that never looks at it would be a false comfort.
        let msg = pg(
            &format!("postgres://u@db/gh?sslmode=require&sslrootcert={ca}"),
            false,
            false,
        )
        .unwrap_err();
        assert!(msg.contains("only checked with sslmode=verify-ca"), "{msg}");
        for (mode, production) in [
            ("verify-full", true),
            ("VERIFY-FULL", true),
            ("verify-ca", false),
        ] {
            pg(
                &format!("postgres://u@db/gh?sslmode={mode}&sslrootcert={ca}"),
                production,
                false,
            )
            .unwrap();
        }
        // The driver reads PGSSLMODE and PGSSLROOTCERT when the URL says nothing; so does this.
        let env = |name: &str| match name {
            "PGSSLMODE" => Some("verify-full".to_owned()),
            "PGSSLROOTCERT" => Some(format!("{ca}.missing")),
            _ => None,
        };
        let msg = check_postgres("database_url", "postgres://u@db/gh", true, false, &env)
            .unwrap_err()
            .0;
        assert!(msg.starts_with("PGSSLROOTCERT: cannot read"), "{msg}");
        let bad = |name: &str| (name == "PGSSLMODE").then(|| "on".to_owned());
        let msg = check_postgres("database_url", "postgres://u@db/gh", false, false, &bad)
            .unwrap_err()
            .0;
        assert!(msg.starts_with("PGSSLMODE: sslmode \"on\""), "{msg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn production_refuses_postgres_off_loopback_without_sure_encryption() {
        for url in [
            "postgres://u:pw@db.internal/gh",
            "postgres://u@db.internal/gh?sslmode=prefer",
            "postgres://u@db.internal/gh?sslmode=allow",
            "postgres://u@10.0.0.5:5432/gh?sslmode=disable",
            "postgres://u@127.0.0.1/gh?host=db.internal",
        ] {
            let msg = pg(url, true, false).unwrap_err();
            assert!(
                msg.starts_with("database_url: production refuses a connection to PostgreSQL at")
                    && msg.contains("allow_plaintext_engines = true")
                    && !msg.contains("pw"),
                "{url}: {msg}"
            );
            pg(url, true, true).unwrap();
            pg(url, false, false).unwrap();
        }
        // verify-ca checks neither the name nor (with the driver's public roots) the CA alone.
        let msg = pg("postgres://u@db.internal/gh?sslmode=verify-ca", true, false).unwrap_err();
        assert!(
            msg.contains("refuses sslmode=verify-ca") && msg.contains("sslmode=verify-full"),
            "{msg}"
        );
        pg("postgres://u@db.internal/gh?sslmode=verify-ca", true, true).unwrap();
        pg(
            "postgres://u@db.internal/gh?sslmode=verify-ca",
            false,
            false,
        )
        .unwrap();
        pg("postgres://u@127.0.0.1/gh?sslmode=verify-ca", true, false).unwrap();
        for url in [
            "postgres://u@db.internal/gh?sslmode=require",
            "postgres://u@db.internal/gh?sslmode=verify-full",
            "postgres://u@127.0.0.1/gh",
            "postgres://u@localhost:5433/gh?sslmode=disable",
            "postgres://u@[::1]/gh",
            "postgres://u@%2Fvar%2Frun%2Fpostgresql/gh",
            "postgres:///gh?host=/var/run/postgresql",
            "postgres:///gh",
        ] {
            pg(url, true, false).unwrap();
        }
        let env = |name: &str| (name == "PGHOST").then(|| "db.internal".to_owned());
        assert!(check_postgres("database_url", "postgres:///gh", true, false, &env).is_err());
    }

    fn redis_raw(url: &str, ca: Option<PathBuf>) -> RawConfig {
        RawConfig {
            redis_url: Some(url.to_owned()),
            redis_ca_file: ca,
            ..RawConfig::default()
        }
    }

    fn redis_msg(raw: &RawConfig, production: bool) -> String {
        redis(raw, production).unwrap_err().0
    }

    #[test]
    fn redis_tls_settings_are_checked_and_production_wants_tls_off_loopback() {
        let dir = temp();
        let files = crate::dev_cert_cmd::generate(&dir).unwrap();
        let with_ca = redis(
            &redis_raw("rediss://cache.internal:6380", Some(files.ca.clone())),
            true,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            with_ca.ca_pem(),
            Some(std::fs::read(&files.ca).unwrap().as_slice())
        );
        with_ca.client().unwrap();
        // The platform's roots without a CA file.
        let public = redis(&redis_raw("rediss://cache.example.com", None), true)
            .unwrap()
            .unwrap();
        assert_eq!(public.ca_pem(), None);

        let msg = redis_msg(&redis_raw("redis://:pw@cache.internal:6379", None), true);
        assert!(
            msg.starts_with(
                "redis_url: production refuses a plain connection to Redis at cache.internal"
            ) && msg.contains("allow_plaintext_engines")
                && !msg.contains("pw"),
            "{msg}"
        );
        let mut allowed = redis_raw("redis://cache.internal:6379", None);
        allowed.allow_plaintext_engines = true;
        redis(&allowed, true).unwrap();
        redis(&redis_raw("redis://cache.internal:6379", None), false).unwrap();
        for local in [
            "redis://127.0.0.1:6379",
            "redis://localhost",
            "redis://[::1]:6379",
            "unix:///run/redis.sock",
        ] {
            redis(&redis_raw(local, None), true).unwrap();
        }

        let msg = redis_msg(
            &redis_raw("redis://cache.internal", Some(files.ca.clone())),
            false,
        );
        assert!(
            msg.starts_with("redis_ca_file: only used with a rediss://"),
            "{msg}"
        );
        let msg = redis_msg(&redis_raw("rediss://cache.internal/#insecure", None), false);
        assert!(msg.starts_with("redis_url: #insecure"), "{msg}");
        let msg = redis_msg(
            &redis_raw("rediss://cache.internal", Some(dir.join("missing.pem"))),
            false,
        );
        assert!(msg.starts_with("redis_ca_file: cannot read"), "{msg}");
        let msg = redis_msg(
            &redis_raw("rediss://cache.internal", Some(files.key.clone())),
            false,
        );
        assert!(msg.contains("holds no PEM certificate"), "{msg}");
        let msg = redis_msg(&redis_raw("http://cache.internal", None), false);
        assert!(msg.starts_with("redis_url: the scheme \"http\""), "{msg}");
        let orphan = RawConfig {
            redis_ca_file: Some(files.ca.clone()),
            ..RawConfig::default()
        };
        assert!(redis_msg(&orphan, false).starts_with("redis_ca_file: set only together"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn config_load_applies_the_rules_to_every_engine_url() {
        let mut raw = RawConfig {
            mode: super::super::Mode::Production,
            database_url: Some(
                "postgres://gatehouse_app@db.internal/gh?sslmode=verify-full".into(),
            ),
            database_migration_url: Some("postgres://owner@db.internal/gh".into()),
            redis_url: Some("redis://cache.internal:6379".into()),
            ..RawConfig::default()
        };
        raw.identity.issuer = "https://id.example.com".into();
        raw.mail.base_url = "https://app.example.com".into();
        raw.mail.transport = crate::config::MailTransportKind::Smtp;
        raw.mail.smtp.host = "mail.example.com".into();
        let key = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=";
        let msg = crate::config::Config::from_raw(raw.clone(), Some(key))
            .unwrap_err()
            .0;
        assert!(
            msg.starts_with("database_migration_url: production refuses"),
            "{msg}"
        );
        raw.database_migration_url = Some("postgres://owner@db.internal/gh?sslmode=require".into());
        let msg = crate::config::Config::from_raw(raw.clone(), Some(key))
            .unwrap_err()
            .0;
        assert!(msg.starts_with("redis_url: production refuses"), "{msg}");
        raw.redis_url = Some("rediss://cache.internal:6380".into());
        let c = crate::config::Config::from_raw(raw.clone(), Some(key)).unwrap();
        assert!(c.redis_url.is_some_and(|r| r.client().unwrap().is_tls()));
        raw.redis_url = Some("redis://cache.internal:6379".into());
        raw.database_url = Some("postgres://gatehouse_app@db.internal/gh".into());
        raw.allow_plaintext_engines = true;
        crate::config::Config::from_raw(raw, Some(key)).unwrap();
    }
}
