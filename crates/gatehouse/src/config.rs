//! Configuration: embedded defaults, then an optional TOML file (`gatehouse.toml`, or the path in
//! `--config`), then `GATEHOUSE_*` environment variables (nested keys with `__`, for example
//! `GATEHOUSE_PASSWORD_HASHING__WORKERS`). Unknown keys are refused wherever they come from. The
//! raw layers become one typed [`Config`]; an unsafe combination is refused with a sentence that
//! names the setting.
//!
//! The master key is read only from `GATEHOUSE_MASTER_KEY` or `master_key_file`, never from the
//! TOML file: configuration files end up in version control.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use gatehouse_core::identity::IdentitySettings;
use gatehouse_crypto::{Argon2Params, Key32};
use serde::{Deserialize, Serialize};

use crate::keyfile;

pub const CONFIG_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordHashing {
    /// Hashing threads; defaults to the number of CPUs.
    pub workers: Option<usize>,
    /// Jobs that may wait for a thread; beyond this, sign-in answers 503 at once.
    pub queue: usize,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// A file holding a pepper (base64 of 32 random bytes, mode 0600): mixed into every new
    /// hash as Argon2's secret input. Hashes made with it need it for ever; keep it with the
    /// master key, not the database.
    pub pepper_file: Option<PathBuf>,
}

impl Default for PasswordHashing {
    fn default() -> Self {
        Self {
            workers: None,
            queue: 64,
            memory_kib: Argon2Params::MINIMUM.memory_kib,
            iterations: Argon2Params::MINIMUM.iterations,
            parallelism: Argon2Params::MINIMUM.parallelism,
            pepper_file: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyringConfig {
    /// Encryptions per data-key version before a new version is added (random 96-bit nonces:
    /// must stay well below 2^32).
    pub max_encryptions_per_key: u64,
    /// How often the background job moves sealed values to the newest data key.
    pub reencrypt_interval_secs: u64,
    /// Values re-encrypted per transaction.
    pub reencrypt_batch: u32,
}

impl Default for KeyringConfig {
    fn default() -> Self {
        Self {
            max_encryptions_per_key: 1 << 30,
            reencrypt_interval_secs: 60,
            reencrypt_batch: 500,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// How often `serve` signs a checkpoint over every audit chain head that moved.
    pub checkpoint_interval_secs: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            checkpoint_interval_secs: 300,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// The `iss` claim of access tokens: this Gatehouse's public base URL.
    pub issuer: String,
    /// The `aud` claim of tenant tokens; operator tokens use `{audience}-operators`.
    pub audience: String,
    pub access_token_ttl_secs: u64,
    pub customer_session_ttl_secs: u64,
    pub operator_session_ttl_secs: u64,
    pub impersonation_ttl_secs: u64,
    pub invitation_ttl_secs: u64,
    /// Clock skew tolerated on `exp`.
    pub leeway_secs: u64,
    /// Permissions that need a recent second factor (step-up).
    pub step_up_permissions: Vec<String>,
    pub step_up_window_secs: u64,
    /// An account without a second factor steps up with its password (otherwise it must enrol).
    pub step_up_password_fallback: bool,
    /// How long the second step of a sign-in may follow the password.
    pub mfa_challenge_ttl_secs: u64,
    pub password_reset_ttl_secs: u64,
    pub email_verification_ttl_secs: u64,
    /// `full` or `read_only`: what an account whose email is not verified may do.
    pub unverified_access: String,
    /// The label authenticator apps show (default: `mail.product_name`).
    pub totp_issuer: Option<String>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:8080".into(),
            audience: "gatehouse".into(),
            access_token_ttl_secs: 15 * 60,
            customer_session_ttl_secs: 7 * 86_400,
            operator_session_ttl_secs: 12 * 3_600,
            impersonation_ttl_secs: 30 * 60,
            invitation_ttl_secs: 7 * 86_400,
            leeway_secs: 30,
            step_up_permissions: [
                "secrets.reveal",
                "data.export",
                "data.delete",
                "members.manage",
                "transit.manage",
            ]
            .map(str::to_owned)
            .to_vec(),
            step_up_window_secs: 300,
            step_up_password_fallback: true,
            mfa_challenge_ttl_secs: 300,
            password_reset_ttl_secs: 1_800,
            email_verification_ttl_secs: 86_400,
            unverified_access: "full".into(),
            totp_issuer: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransportKind {
    /// Development: each message is written to `{data_dir}/mail/{id}.eml`.
    File,
    Smtp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTlsMode {
    Starttls,
    Implicit,
    /// Only towards a relay on loopback.
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTlsMode,
    pub username: Option<String>,
    /// A file holding the SMTP password (mode 0600).
    pub password_file: Option<PathBuf>,
    /// PEM of an extra CA to trust (a private relay).
    pub ca_file: Option<PathBuf>,
    pub timeout_secs: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 587,
            tls: SmtpTlsMode::Starttls,
            username: None,
            password_file: None,
            ca_file: None,
            timeout_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    pub transport: MailTransportKind,
    /// Shown in mail subjects and bodies.
    pub product_name: String,
    /// Links in mail point here (your app's public URL).
    pub base_url: String,
    pub from: String,
    /// How often the delivery loop looks for due mail (it is also woken when mail is queued).
    pub poll_interval_ms: u64,
    pub first_backoff_secs: u64,
    pub max_backoff_secs: u64,
    pub smtp: SmtpConfig,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            transport: MailTransportKind::File,
            product_name: "Gatehouse".into(),
            base_url: "http://127.0.0.1:8080".into(),
            from: "Gatehouse <no-reply@localhost>".into(),
            poll_interval_ms: 1_000,
            first_backoff_secs: 5,
            max_backoff_secs: 900,
            smtp: SmtpConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransitConfig {
    /// The most items one transit batch may hold.
    pub max_batch_items: usize,
}

impl Default for TransitConfig {
    fn default() -> Self {
        Self {
            max_batch_items: 100,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceAuthConfig {
    /// Files each holding a service secret (base64 of 32 random bytes, mode 0600), sent by your
    /// services as `X-Service-Auth` on `/internal/v1`. Two during a rotation; none disables the
    /// service API.
    pub secret_files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitStore {
    /// In this process: each instance limits on its own.
    Memory,
    /// Shared by every instance through Redis (the top-level `redis_url`); in-process while
    /// Redis is away.
    Redis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PerIpQuotas {
    pub auth: u32,
    pub read: u32,
    pub write: u32,
    pub admin: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConfig {
    /// Failed sign-ins per account (known or not) before it is locked.
    pub account_threshold: u32,
    /// Failed sign-ins per client address before it is locked.
    pub ip_threshold: u32,
    /// The first lock; each further failure doubles it, up to `max_lock_secs`.
    pub first_lock_secs: u64,
    pub max_lock_secs: u64,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        Self {
            account_threshold: 5,
            ip_threshold: 20,
            first_lock_secs: 2,
            max_lock_secs: 900,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Off: no rate limits and no sign-in lockouts (for load tests; refused in production).
    pub enabled: bool,
    pub store: LimitStore,
    /// Prefix of every key Gatehouse writes in Redis (several deployments can share one).
    pub redis_key_prefix: String,
    /// Requests per minute per client address, by endpoint class.
    pub per_ip: PerIpQuotas,
    /// Requests per minute per signed-in user.
    pub per_user: u32,
    /// Requests per minute per API key, by plan.
    pub plans: std::collections::BTreeMap<String, u32>,
    pub default_plan: String,
    /// Organisation id -> plan name.
    pub organization_plans: std::collections::BTreeMap<String, String>,
    pub lockout: LockoutConfig,
}

impl Default for PerIpQuotas {
    fn default() -> Self {
        Self {
            auth: 30,
            read: 1200,
            write: 300,
            admin: 120,
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            store: LimitStore::Memory,
            redis_key_prefix: "gatehouse:rl:".to_owned(),
            per_ip: PerIpQuotas::default(),
            per_user: 600,
            plans: [("free".to_owned(), 60), ("pro".to_owned(), 600)].into(),
            default_plan: "free".to_owned(),
            organization_plans: std::collections::BTreeMap::new(),
            lockout: LockoutConfig::default(),
        }
    }
}

/// The file and environment layers, before validation. `Debug` redacts database passwords.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub version: u32,
    pub mode: Mode,
    pub listen: String,
    /// Redis, for the scale-out path: revocations fan out through it (instances drop revoked
    /// sessions and keys at once), and with `rate_limits.store = "redis"` limits are shared.
    pub redis_url: Option<String>,
    /// Optional: a separate address for the operator API (`/admin/v1`); when set, the main
    /// listener no longer serves it.
    pub admin_listen: Option<String>,
    pub data_dir: PathBuf,
    /// `sqlite://path` (default: `sqlite://{data_dir}/gatehouse.db`) or `postgres://...`.
    pub database_url: Option<String>,
    /// PostgreSQL only: the owning role's URL, used by `migrate` (and by `serve` when set).
    pub database_migration_url: Option<String>,
    pub database_max_connections: u32,
    pub migrate_on_start: bool,
    pub master_key_file: Option<PathBuf>,
    pub cors_allowed_origins: Vec<String>,
    /// Plain HTTP on a non-loopback address is allowed in production only behind a TLS proxy.
    pub trusted_proxy_tls: bool,
    /// Addresses of your reverse proxies: only from these peers is `X-Forwarded-For` believed.
    pub trusted_proxies: Vec<String>,
    pub body_limit_bytes: usize,
    pub request_timeout_secs: u64,
    pub shutdown_grace_secs: u64,
    pub log_format: LogFormat,
    pub log_level: String,
    pub password_hashing: PasswordHashing,
    pub keyring: KeyringConfig,
    pub audit: AuditConfig,
    pub identity: IdentityConfig,
    pub service_auth: ServiceAuthConfig,
    pub rate_limits: RateLimitConfig,
    pub mail: MailConfig,
    pub transit: TransitConfig,
    /// `/.well-known/security.txt` (RFC 9116); off while empty.
    pub security_txt: security_txt::SecurityTxtConfig,
    /// Prometheus metrics (E3).
    pub metrics: metrics::MetricsConfig,
    /// OpenTelemetry span export over OTLP/HTTP (E2); needs the `otlp` cargo feature.
    pub otlp: otlp::OtlpConfig,
    /// TLS served by Gatehouse itself (D4); plain HTTP while unset.
    pub tls: tls::TlsConfig,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            version: CONFIG_VERSION,
            mode: Mode::Development,
            listen: "127.0.0.1:8080".into(),
            admin_listen: None,
            redis_url: None,
            data_dir: PathBuf::from("gatehouse-data"),
            database_url: None,
            database_migration_url: None,
            database_max_connections: 8,
            migrate_on_start: true,
            master_key_file: None,
            cors_allowed_origins: Vec::new(),
            trusted_proxy_tls: false,
            trusted_proxies: Vec::new(),
            body_limit_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            shutdown_grace_secs: 30,
            log_format: LogFormat::Json,
            log_level: "info".into(),
            password_hashing: PasswordHashing::default(),
            keyring: KeyringConfig::default(),
            audit: AuditConfig::default(),
            identity: IdentityConfig::default(),
            service_auth: ServiceAuthConfig::default(),
            rate_limits: RateLimitConfig::default(),
            mail: MailConfig::default(),
            transit: TransitConfig::default(),
            security_txt: security_txt::SecurityTxtConfig::default(),
            metrics: metrics::MetricsConfig::default(),
            otlp: otlp::OtlpConfig::default(),
            tls: tls::TlsConfig::default(),
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite {
        url: String,
    },
    Postgres {
        url: String,
        migration_url: Option<String>,
    },
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite { url } => f.debug_struct("Sqlite").field("url", url).finish(),
            Self::Postgres { url, migration_url } => f
                .debug_struct("Postgres")
                .field("url", &redact_url(url))
                .field("migration_url", &migration_url.as_deref().map(redact_url))
                .finish(),
        }
    }
}

impl std::fmt::Debug for RawConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = self.clone();
        shown.database_url = shown.database_url.as_deref().map(redact_url);
        shown.database_migration_url = shown.database_migration_url.as_deref().map(redact_url);
        write!(
            f,
            "RawConfig {}",
            toml::to_string(&shown)
                .unwrap_or_default()
                .replace('\n', "; ")
        )
    }
}

/// Where the master key comes from. The key itself is read when the app is built.
#[derive(Debug, Clone)]
pub enum MasterKey {
    Environment(Key32),
    File(PathBuf, Key32),
    /// Development only: generated on first start into the data directory.
    GeneratedDevelopment(PathBuf),
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub raw: RawConfig,
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// `None` when rate limits are off.
    pub rate_policy: Option<gatehouse_core::limits::RatePolicy>,
    pub database: Database,
    pub master_key: MasterKey,
    pub argon2: Argon2Params,
    pub identity: IdentitySettings,
    pub mail: gatehouse_core::mail::MailSettings,
    /// The rendered `/.well-known/security.txt`, when configured.
    pub security_txt: Option<String>,
    pub metrics: metrics::MetricsSettings,
    /// Set when `[otlp]` export is on.
    pub otlp: Option<otlp::OtlpSettings>,
    /// Set when `[tls]` is configured: both listeners serve HTTPS.
    pub tls: Option<tls::TlsSettings>,
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
    /// Where the file layer came from, if any.
    pub source_file: Option<PathBuf>,
}

/// A refusal: one sentence naming the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn refuse<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

impl Config {
    /// Loads from the default file (`./gatehouse.toml` when present) or `file`, then the process
    /// environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let default = Path::new("gatehouse.toml");
        let file = match file {
            Some(f) => Some(f.to_path_buf()),
            None => std::env::var_os("GATEHOUSE_CONFIG")
                .map(PathBuf::from)
                .or_else(|| default.exists().then(|| default.to_path_buf())),
        };
        Self::load_from(file.as_deref())
    }

    /// Loads from `file` (if any) and the process environment.
    pub fn load_from(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError(format!(
                    "config file {}: cannot read it: {e}",
                    path.display()
                ))
            })?;
            refuse_secrets_in_file(path, &text)?;
            figment = figment.merge(Toml::string(&text));
        }
        figment = figment.merge(
            Env::prefixed("GATEHOUSE_")
                .ignore(&["master_key", "config"])
                .split("__"),
        );
        let raw: RawConfig = figment.extract().map_err(|e| {
            ConfigError(format!(
                "configuration{}: {e}",
                file.map(|p| format!(" ({})", p.display()))
                    .unwrap_or_default()
            ))
        })?;
        let master_key_env = zeroize::Zeroizing::new(std::env::var("GATEHOUSE_MASTER_KEY").ok());
        validate(raw, master_key_env.as_deref(), file.map(Path::to_path_buf))
    }

    /// Validates raw settings directly (no file, no environment): for embedding and tests.
    pub fn from_raw(raw: RawConfig, master_key_base64: Option<&str>) -> Result<Self, ConfigError> {
        validate(raw, master_key_base64, None)
    }

    /// The effective configuration as TOML, secrets redacted.
    #[must_use]
    pub fn to_redacted_toml(&self) -> String {
        let mut raw = self.raw.clone();
        raw.database_url = Some(redact_url(&database_url_text(&self.database)));
        raw.database_migration_url = raw.database_migration_url.as_deref().map(redact_url);
        let mut out = toml::to_string(&raw).unwrap_or_default();
        let key = match &self.master_key {
            MasterKey::Environment(_) => "supplied by GATEHOUSE_MASTER_KEY [redacted]".to_owned(),
            MasterKey::File(p, _) => format!("read from {} [redacted]", p.display()),
            MasterKey::GeneratedDevelopment(p) => {
                format!(
                    "development key generated at {} (not for production)",
                    p.display()
                )
            }
        };
        let _ = writeln!(out, "\n# master key: {key}");
        out
    }
}

fn database_url_text(db: &Database) -> String {
    match db {
        Database::Sqlite { url } | Database::Postgres { url, .. } => url.clone(),
    }
}

/// Replaces the password in `scheme://user:password@host/...`.
#[must_use]
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:[redacted]@{host}"),
        None => url.to_owned(),
    }
}

fn refuse_secrets_in_file(path: &Path, text: &str) -> Result<(), ConfigError> {
    let table: toml::Table = text.parse().map_err(|e| {
        ConfigError(format!(
            "config file {}: not valid TOML: {e}",
            path.display()
        ))
    })?;
    if table.contains_key("master_key") {
        return refuse(format!(
            "master_key: refused in the config file {} because config files end up in version \
             control; supply the key with GATEHOUSE_MASTER_KEY or master_key_file",
            path.display()
        ));
    }
    Ok(())
}

fn mail(
    c: &MailConfig,
    production: bool,
) -> Result<gatehouse_core::mail::MailSettings, ConfigError> {
    let secs = |v: u64| time::Duration::seconds(i64::try_from(v).unwrap_or(i64::MAX));
    if c.product_name.trim().is_empty() {
        return refuse("mail.product_name: must not be empty");
    }
    let scheme_ok =
        c.base_url.starts_with("https://") || (!production && c.base_url.starts_with("http://"));
    if !scheme_ok {
        return refuse(format!(
            "mail.base_url: {:?} must be an https:// URL in production (http:// only in \
             development): reset and verification links carry one-time tokens",
            c.base_url
        ));
    }
    if !c.from.contains('@') {
        return refuse("mail.from: must be an address such as \"Acme <no-reply@acme.com>\"");
    }
    if c.poll_interval_ms < 100
        || c.first_backoff_secs == 0
        || c.max_backoff_secs < c.first_backoff_secs
    {
        return refuse(
            "mail.poll_interval_ms: at least 100; mail.first_backoff_secs: at least 1 and at most \
             mail.max_backoff_secs",
        );
    }
    match c.transport {
        MailTransportKind::File if production => {
            return refuse(
                "mail.transport: production needs transport = \"smtp\"; the file transport only \
                 writes .eml files for development",
            );
        }
        MailTransportKind::File => {}
        MailTransportKind::Smtp => {
            let loopback = c.smtp.host == "localhost"
                || c.smtp
                    .host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|a| a.is_loopback());
            if c.smtp.tls == SmtpTlsMode::None && !loopback {
                return refuse(format!(
                    "mail.smtp.tls: \"none\" sends mail (with reset links) in the clear; it is \
                     allowed only towards a relay on loopback, not {:?}; use starttls or implicit",
                    c.smtp.host
                ));
            }
            if c.smtp.host.trim().is_empty() || c.smtp.port == 0 || c.smtp.timeout_secs == 0 {
                return refuse("mail.smtp.host, port and timeout_secs: must be set");
            }
            if c.smtp.username.is_some() != c.smtp.password_file.is_some() {
                return refuse(
                    "mail.smtp.username and mail.smtp.password_file: set both or neither",
                );
            }
        }
    }
    Ok(gatehouse_core::mail::MailSettings {
        product_name: c.product_name.clone(),
        base_url: c.base_url.trim_end_matches('/').to_owned(),
        from: c.from.clone(),
        first_backoff: secs(c.first_backoff_secs),
        max_backoff: secs(c.max_backoff_secs),
    })
}

fn identity(
    c: &IdentityConfig,
    product_name: &str,
    production: bool,
) -> Result<IdentitySettings, ConfigError> {
    let secs = |v: u64| time::Duration::seconds(i64::try_from(v).unwrap_or(i64::MAX));
    if c.issuer.trim().is_empty() || c.audience.trim().is_empty() {
        return refuse("identity.issuer and identity.audience: must not be empty");
    }
    if production && !c.issuer.starts_with("https://") {
        return refuse(format!(
            "identity.issuer: production tokens must name an https:// issuer, not {:?}",
            c.issuer
        ));
    }
    if !(60..=3_600).contains(&c.access_token_ttl_secs) {
        return refuse(
            "identity.access_token_ttl_secs: must be between 60 and 3600; access tokens are meant \
             to be short-lived (sessions carry the long lifetime)",
        );
    }
    if c.impersonation_ttl_secs == 0 || c.impersonation_ttl_secs > 3_600 {
        return refuse("identity.impersonation_ttl_secs: must be between 1 and 3600");
    }
    if c.customer_session_ttl_secs < c.access_token_ttl_secs
        || c.operator_session_ttl_secs < c.access_token_ttl_secs
    {
        return refuse(
            "identity.customer_session_ttl_secs and identity.operator_session_ttl_secs: must be at \
             least the access-token lifetime",
        );
    }
    if c.operator_session_ttl_secs > 86_400 {
        return refuse(
            "identity.operator_session_ttl_secs: operator sessions last at most 24 hours",
        );
    }
    if c.leeway_secs > 300 || c.invitation_ttl_secs == 0 {
        return refuse(
            "identity.leeway_secs: at most 300; identity.invitation_ttl_secs: at least 1",
        );
    }
    for p in &c.step_up_permissions {
        if gatehouse_core::identity::Permission::parse(p).is_none() {
            return refuse(format!(
                "identity.step_up_permissions: {p:?} is not a permission (see docs/API.md)"
            ));
        }
    }
    if !(30..=86_400).contains(&c.step_up_window_secs) {
        return refuse("identity.step_up_window_secs: must be between 30 and 86400");
    }
    if !(30..=900).contains(&c.mfa_challenge_ttl_secs) {
        return refuse("identity.mfa_challenge_ttl_secs: must be between 30 and 900");
    }
    if !(300..=86_400).contains(&c.password_reset_ttl_secs) {
        return refuse(
            "identity.password_reset_ttl_secs: must be between 300 and 86400; a reset link is a \
             password until it expires",
        );
    }
    if !(3_600..=30 * 86_400).contains(&c.email_verification_ttl_secs) {
        return refuse("identity.email_verification_ttl_secs: must be between 3600 and 2592000");
    }
    let unverified_access = gatehouse_core::identity::UnverifiedAccess::parse(&c.unverified_access)
        .ok_or_else(|| {
            ConfigError(format!(
                "identity.unverified_access: {:?} is not one of \"full\", \"read_only\"",
                c.unverified_access
            ))
        })?;
    Ok(IdentitySettings {
        issuer: c.issuer.clone(),
        audience: c.audience.clone(),
        access_token_ttl: secs(c.access_token_ttl_secs),
        customer_session_ttl: secs(c.customer_session_ttl_secs),
        operator_session_ttl: secs(c.operator_session_ttl_secs),
        impersonation_ttl: secs(c.impersonation_ttl_secs),
        invitation_ttl: secs(c.invitation_ttl_secs),
        leeway_secs: c.leeway_secs,
        step_up_permissions: c.step_up_permissions.clone(),
        step_up_window: secs(c.step_up_window_secs),
        step_up_password_fallback: c.step_up_password_fallback,
        mfa_challenge_ttl: secs(c.mfa_challenge_ttl_secs),
        password_reset_ttl: secs(c.password_reset_ttl_secs),
        email_verification_ttl: secs(c.email_verification_ttl_secs),
        unverified_access,
        totp_issuer: c
            .totp_issuer
            .clone()
            .unwrap_or_else(|| product_name.to_owned()),
    })
}

fn rate_policy(
    c: &RateLimitConfig,
    production: bool,
) -> Result<Option<gatehouse_core::limits::RatePolicy>, ConfigError> {
    use gatehouse_core::limits::EndpointClass;
    if !c.enabled {
        if production {
            return refuse(
                "rate_limits.enabled: production refuses to run without rate limits and sign-in lockouts",
            );
        }
        return Ok(None);
    }
    let quotas = [
        c.per_ip.auth,
        c.per_ip.read,
        c.per_ip.write,
        c.per_ip.admin,
        c.per_user,
    ];
    if quotas.contains(&0) || c.plans.values().any(|&q| q == 0) {
        return refuse("rate_limits: every quota must be at least 1 request per minute");
    }
    if !c.plans.contains_key(&c.default_plan) {
        return refuse(format!(
            "rate_limits.default_plan: {:?} is not one of rate_limits.plans",
            c.default_plan
        ));
    }
    let mut organization_plans = std::collections::HashMap::new();
    for (org, plan) in &c.organization_plans {
        let id = gatehouse_core::OrgId::parse(org).ok_or_else(|| {
            ConfigError(format!(
                "rate_limits.organization_plans: {org:?} is not an organisation id"
            ))
        })?;
        if !c.plans.contains_key(plan) {
            return refuse(format!(
                "rate_limits.organization_plans: {plan:?} is not one of rate_limits.plans"
            ));
        }
        organization_plans.insert(id, plan.clone());
    }
    let l = &c.lockout;
    if l.account_threshold == 0
        || l.ip_threshold == 0
        || l.first_lock_secs == 0
        || l.max_lock_secs < l.first_lock_secs
    {
        return refuse(
            "rate_limits.lockout: thresholds and first_lock_secs must be at least 1, and max_lock_secs at least first_lock_secs",
        );
    }
    Ok(Some(gatehouse_core::limits::RatePolicy {
        per_ip: [
            (EndpointClass::Auth, c.per_ip.auth),
            (EndpointClass::Read, c.per_ip.read),
            (EndpointClass::Write, c.per_ip.write),
            (EndpointClass::Admin, c.per_ip.admin),
        ]
        .into(),
        per_user: c.per_user,
        plans: c.plans.clone().into_iter().collect(),
        default_plan: c.default_plan.clone(),
        organization_plans,
    }))
}

fn validate(
    raw: RawConfig,
    master_key_env: Option<&str>,
    source_file: Option<PathBuf>,
) -> Result<Config, ConfigError> {
    if raw.version != CONFIG_VERSION {
        return refuse(format!(
            "version: this build reads configuration version {CONFIG_VERSION}, not {}",
            raw.version
        ));
    }
    let listen: SocketAddr = raw.listen.parse().map_err(|_| {
        ConfigError(format!(
            "listen: {:?} is not an address and port such as 127.0.0.1:8080",
            raw.listen
        ))
    })?;
    let production = raw.mode == Mode::Production;
    let tls = tls::validate(&raw.tls)?;
    let admin_listen: Option<SocketAddr> = match &raw.admin_listen {
        None => None,
        Some(a) => Some(a.parse().map_err(|_| {
            ConfigError(format!(
                "admin_listen: {a:?} is not an address and port such as 127.0.0.1:8081"
            ))
        })?),
    };
    if admin_listen == Some(listen) {
        return refuse("admin_listen: must differ from listen");
    }
    if let Some(a) = admin_listen
        && production
        && !a.ip().is_loopback()
        && !raw.trusted_proxy_tls
        && tls.is_none()
    {
        return refuse(format!(
            "admin_listen: production mode refuses plain HTTP on the non-loopback address {a}; \
             configure [tls] (tls.cert_file, tls.key_file) or terminate TLS in a proxy and set \
             trusted_proxy_tls = true"
        ));
    }
    if production && !listen.ip().is_loopback() && !raw.trusted_proxy_tls && tls.is_none() {
        return refuse(format!(
            "listen: production mode refuses plain HTTP on the non-loopback address {listen}; \
             configure [tls] (tls.cert_file, tls.key_file) or terminate TLS in a proxy in front \
             of Gatehouse and set trusted_proxy_tls = true"
        ));
    }
    for origin in &raw.cors_allowed_origins {
        check_origin(origin)?;
    }
    let database = database(&raw)?;
    let master_key = master_key(&raw, master_key_env, production)?;
    let argon2 = Argon2Params::new(
        raw.password_hashing.memory_kib,
        raw.password_hashing.iterations,
        raw.password_hashing.parallelism,
    )
    .map_err(|e| ConfigError(format!("password_hashing: {e}")))?;
    if let Some(path) = &raw.password_hashing.pepper_file {
        keyfile::read(path)
            .map_err(|e| ConfigError(format!("password_hashing.pepper_file: {e}")))?;
    }
    if raw.password_hashing.workers == Some(0) {
        return refuse("password_hashing.workers: must be at least 1");
    }
    if raw.body_limit_bytes == 0 || raw.body_limit_bytes > 64 * 1024 * 1024 {
        return refuse("body_limit_bytes: must be between 1 and 67108864 (64 MiB)");
    }
    if raw.request_timeout_secs == 0 {
        return refuse("request_timeout_secs: must be at least 1");
    }
    if raw.keyring.max_encryptions_per_key == 0 || raw.keyring.max_encryptions_per_key > 1 << 31 {
        return refuse(
            "keyring.max_encryptions_per_key: must be between 1 and 2147483648 (2^31), well below \
             the 2^32 bound for random 96-bit nonces",
        );
    }
    if raw.keyring.reencrypt_interval_secs == 0 || raw.keyring.reencrypt_batch == 0 {
        return refuse(
            "keyring.reencrypt_interval_secs and keyring.reencrypt_batch: must be at least 1",
        );
    }
    if raw.audit.checkpoint_interval_secs == 0 {
        return refuse("audit.checkpoint_interval_secs: must be at least 1");
    }
    if !(1..=1_000).contains(&raw.transit.max_batch_items) {
        return refuse("transit.max_batch_items: must be between 1 and 1000");
    }
    if raw.database_max_connections == 0 {
        return refuse("database_max_connections: must be at least 1");
    }
    let identity = identity(&raw.identity, &raw.mail.product_name, production)?;
    let mail = mail(&raw.mail, production)?;
    let rate_policy = rate_policy(&raw.rate_limits, production)?;
    if raw.rate_limits.enabled
        && raw.rate_limits.store == LimitStore::Redis
        && raw.redis_url.is_none()
    {
        return refuse("redis_url: required when rate_limits.store = \"redis\"");
    }
    let mut trusted_proxies = Vec::new();
    for p in &raw.trusted_proxies {
        trusted_proxies.push(p.parse().map_err(|_| {
            ConfigError(format!(
                "trusted_proxies: {p:?} is not an IP address (list each proxy's address)"
            ))
        })?);
    }
    if raw.service_auth.secret_files.len() > 2 {
        return refuse(
            "service_auth.secret_files: at most two (the current secret and, while rotating, the next)",
        );
    }
    for path in &raw.service_auth.secret_files {
        keyfile::read(path).map_err(|e| ConfigError(format!("service_auth.secret_files: {e}")))?;
    }
    if let Some(path) = &raw.mail.smtp.password_file {
        keyfile::secret_text(path)
            .map_err(|e| ConfigError(format!("mail.smtp.password_file: {e}")))?;
    }
    if let Some(path) = &raw.mail.smtp.ca_file {
        std::fs::read(path)
            .map_err(|e| ConfigError(format!("mail.smtp.ca_file: {}: {e}", path.display())))?;
    }
    let security_txt = security_txt::render(
        &raw.security_txt,
        gatehouse_core::Clock::now(&gatehouse_core::SystemClock),
    )?;
    let taken: Vec<SocketAddr> = std::iter::once(listen).chain(admin_listen).collect();
    let metrics = metrics::validate(&raw.metrics, production, &taken)?;
    let otlp = otlp::validate(&raw.otlp, production)?;
    Ok(Config {
        identity,
        mail,
        security_txt,
        metrics,
        otlp,
        tls,
        listen,
        admin_listen,
        trusted_proxies,
        rate_policy,
        database,
        master_key,
        argon2,
        request_timeout: Duration::from_secs(raw.request_timeout_secs),
        shutdown_grace: Duration::from_secs(raw.shutdown_grace_secs),
        source_file,
        raw,
    })
}

fn check_origin(origin: &str) -> Result<(), ConfigError> {
    if origin.contains('*') {
        return refuse(format!(
            "cors_allowed_origins: the wildcard {origin:?} is refused; list each allowed origin \
             exactly, such as \"https://app.example.com\""
        ));
    }
    let well_formed = origin.split_once("://").is_some_and(|(scheme, host)| {
        matches!(scheme, "http" | "https")
            && !host.is_empty()
            && !host.contains('/')
            && !host.contains('@')
            && host.bytes().all(|b| b.is_ascii_graphic())
    });
    if !well_formed {
        return refuse(format!(
            "cors_allowed_origins: {origin:?} is not an origin; write scheme://host[:port] with \
             no path, such as \"https://app.example.com\""
        ));
    }
    Ok(())
}

fn database(raw: &RawConfig) -> Result<Database, ConfigError> {
    let url = raw
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", raw.data_dir.join("gatehouse.db").display()));
    if url.starts_with("sqlite:") {
        if raw.database_migration_url.is_some() {
            return refuse(
                "database_migration_url: only PostgreSQL uses a separate migration role; \
                 remove it for SQLite",
            );
        }
        return Ok(Database::Sqlite { url });
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Database::Postgres {
            url,
            migration_url: raw.database_migration_url.clone(),
        });
    }
    refuse("database_url: must start with sqlite:// or postgres://")
}

fn master_key(
    raw: &RawConfig,
    env: Option<&str>,
    production: bool,
) -> Result<MasterKey, ConfigError> {
    if let Some(text) = env {
        if raw.master_key_file.is_some() {
            return refuse(
                "master_key_file: set together with GATEHOUSE_MASTER_KEY; supply the master key \
                 one way only",
            );
        }
        let key = Key32::from_base64(text)
            .map_err(|e| ConfigError(format!("GATEHOUSE_MASTER_KEY: {e}")))?;
        return Ok(MasterKey::Environment(key));
    }
    if let Some(path) = &raw.master_key_file {
        let key = keyfile::read(path).map_err(|e| ConfigError(format!("master_key_file: {e}")))?;
        return Ok(MasterKey::File(path.clone(), key));
    }
    if production {
        return refuse(
            "master_key: production mode needs a master key supplied with GATEHOUSE_MASTER_KEY \
             (base64 of 32 random bytes) or master_key_file; the generated development key is \
             refused",
        );
    }
    Ok(MasterKey::GeneratedDevelopment(
        raw.data_dir.join("master.key"),
    ))
}

pub mod metrics;
pub mod otlp;
pub mod security_txt;
pub mod tls;

#[cfg(test)]
mod tests;
