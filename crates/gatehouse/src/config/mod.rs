//! Configuration: embedded defaults, then an optional TOML file (`gatehouse.toml`, or the path in
//! `--config`), then `GATEHOUSE_*` environment variables (nested keys with `__`, for example
//! `GATEHOUSE_PASSWORD_HASHING__WORKERS`). Unknown keys are refused wherever they come from. The
//! raw layers become one typed [`Config`]; an unsafe combination is refused with a sentence that
//! names the setting.
//!
//! The master key is read only from `GATEHOUSE_MASTER_KEY` or `master_key_file`, never from the
//! TOML file: configuration files end up in version control.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use gatehouse_core::identity::IdentitySettings;
use serde::{Deserialize, Serialize};

mod audit;
pub mod backup;
pub mod connections;
mod database;
mod engines;
mod identity;
mod keyring;
pub mod lifecycle;
mod mail;
mod mail_auth;
mod master_key;
pub mod metrics;
pub mod oauth;
pub mod otlp;
mod password_hashing;
pub mod passwords;
pub mod pkcs11;
pub mod posture;
pub mod product;
mod rate_limits;
pub mod security_txt;
mod server;
mod service_auth;
pub mod share;
pub mod sso;
pub mod tls;
mod transit;
pub mod trust_page;
pub mod webhooks;

pub use audit::AuditConfig;
pub(crate) use database::database_url_text;
pub use database::{Database, DatabaseSettings, redact_url};
pub use identity::IdentityConfig;
pub use keyring::{KeyringConfig, KeyringJobSettings};
pub use mail::{
    MailConfig, MailSetup, MailTemplateConfig, MailTransportKind, MailTransportSettings,
    SmtpConfig, SmtpTlsMode,
};
pub use mail_auth::{DkimConfig, DomainCheckConfig, MailAuthSetup};
pub use master_key::MasterKey;
pub use password_hashing::{PasswordHashing, PasswordHashingSettings};
pub use rate_limits::{LimitStore, LockoutConfig, PerIpQuotas, RateLimitConfig, RateLimitSettings};
pub use server::ServerSettings;
pub use service_auth::{ServiceAuthConfig, ServiceSecret};
pub use transit::TransitConfig;

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

/// The file and environment layers, before validation. `Debug` redacts database passwords.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub version: u32,
    pub mode: Mode,
    pub listen: String,
    /// Redis, for the scale-out path: revocations fan out through it (instances drop revoked
    /// sessions and keys at once), and with `rate_limits.store = "redis"` limits are shared.
    /// `rediss://` for TLS.
    pub redis_url: Option<String>,
    /// PEM: the CA that vouches for a `rediss://` server (else the platform's roots).
    pub redis_ca_file: Option<PathBuf>,
    /// Production refuses a connection to PostgreSQL or Redis off loopback that is not sure to be
    /// encrypted; this allows it, for a network path protected some other way.
    pub allow_plaintext_engines: bool,
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
    /// `"shares"`: start sealed and rebuild the master key from operators' shares (D2). No other
    /// value: the key itself never goes in this file.
    pub master_key: Option<String>,
    /// The master key inside an HSM, over PKCS#11 (D1); the PIN comes from `GATEHOUSE_PKCS11_PIN`
    /// or `pin_file`.
    pub master_key_pkcs11: pkcs11::Pkcs11Config,
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
    /// Bounds on each TCP connection (H1).
    pub connections: connections::ConnectionsConfig,
    /// Prometheus metrics (E3).
    pub metrics: metrics::MetricsConfig,
    /// OpenTelemetry span export over OTLP/HTTP (E2); needs the `otlp` cargo feature.
    pub otlp: otlp::OtlpConfig,
    /// TLS served by Gatehouse itself (D4); plain HTTP while unset.
    pub tls: tls::TlsConfig,
    /// The product's own permissions and record types (C1, C3).
    pub product: product::ProductConfig,
    /// Purge of expired data and pruning of spent rows (G3).
    pub lifecycle: lifecycle::LifecycleConfig,
    /// Share links (F1).
    pub share: share::ShareConfig,
    /// Webhooks (F3).
    pub webhooks: webhooks::WebhooksConfig,
    /// Single sign-on per organisation (issue 24).
    pub sso: sso::SsoConfig,
    /// The OAuth client: connectors (B3) and sign-in through providers.
    pub oauth: oauth::OAuthConfig,
    /// Who can open backups (D3).
    pub backup: backup::BackupConfig,
    /// Each posture self-check's deadline (H3).
    pub posture: posture::PostureConfig,
    /// The public trust page (H3); off by default.
    pub trust_page: trust_page::TrustPageConfig,
    /// New passwords' breached-password range check (A1); off by default.
    pub passwords: passwords::PasswordsConfig,
    /// The bound on aggregated security events (E1).
    pub security_events: passwords::SecurityEventsConfig,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            version: CONFIG_VERSION,
            mode: Mode::Development,
            listen: "127.0.0.1:8080".into(),
            admin_listen: None,
            redis_url: None,
            redis_ca_file: None,
            allow_plaintext_engines: false,
            data_dir: PathBuf::from("gatehouse-data"),
            database_url: None,
            database_migration_url: None,
            database_max_connections: 8,
            migrate_on_start: true,
            master_key_file: None,
            master_key: None,
            master_key_pkcs11: pkcs11::Pkcs11Config::default(),
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
            connections: connections::ConnectionsConfig::default(),
            metrics: metrics::MetricsConfig::default(),
            otlp: otlp::OtlpConfig::default(),
            tls: tls::TlsConfig::default(),
            product: product::ProductConfig::default(),
            lifecycle: lifecycle::LifecycleConfig::default(),
            share: share::ShareConfig::default(),
            backup: backup::BackupConfig::default(),
            webhooks: webhooks::WebhooksConfig::default(),
            sso: sso::SsoConfig::default(),
            oauth: oauth::OAuthConfig::default(),
            posture: posture::PostureConfig::default(),
            trust_page: trust_page::TrustPageConfig::default(),
            passwords: passwords::PasswordsConfig::default(),
            security_events: passwords::SecurityEventsConfig::default(),
        }
    }
}

impl std::fmt::Debug for RawConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = self.clone();
        shown.database_url = shown.database_url.as_deref().map(redact_url);
        shown.database_migration_url = shown.database_migration_url.as_deref().map(redact_url);
        shown.redis_url = shown.redis_url.as_deref().map(redact_url);
        write!(
            f,
            "RawConfig {}",
            toml::to_string(&shown)
                .unwrap_or_default()
                .replace('\n', "; ")
        )
    }
}

/// The validated configuration: one typed value per section, each what its consumer takes.
#[derive(Debug, Clone)]
pub struct Config {
    /// The layers as loaded. Read only by `to_redacted_toml` (`config check`): everything that
    /// runs reads the typed settings below.
    raw: RawConfig,
    pub mode: Mode,
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    pub log_level: String,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub master_key: MasterKey,
    pub password_hashing: PasswordHashingSettings,
    pub keyring: KeyringJobSettings,
    /// How often `serve` signs an audit checkpoint.
    pub checkpoint_every: Duration,
    pub identity: IdentitySettings,
    /// The product's declared permissions and record types.
    pub product: gatehouse_core::product::ProductCatalogue,
    pub mail: MailSetup,
    pub lifecycle: lifecycle::LifecycleSetup,
    pub share: gatehouse_core::product::ShareSettings,
    pub webhooks: webhooks::WebhookSetup,
    pub sso: sso::SsoSetup,
    pub oauth: oauth::OAuthSetup,
    pub backup: backup::BackupConfig,
    /// `None` when rate limits (and sign-in lockouts) are off.
    pub rate_limits: Option<RateLimitSettings>,
    /// Redis, for revocation fan-out and (with `rate_limits.store = "redis"`) shared limits.
    pub redis_url: Option<RedisUrl>,
    /// Every key Gatehouse writes in Redis starts with this (`rate_limits.redis_key_prefix`; the
    /// revocation channel uses it too, with or without rate limits).
    pub redis_key_prefix: String,
    /// The service secrets, read once from their files; empty disables `/internal/v1`.
    pub service_secrets: Vec<ServiceSecret>,
    pub transit_max_batch: usize,
    /// The rendered `/.well-known/security.txt`, when configured.
    pub security_txt: Option<String>,
    /// The trust page's declarations and cache period, when `[trust_page]` turns it on.
    pub trust_page: Option<gatehouse_http::TrustPageSettings>,
    /// Each posture self-check's deadline (`[posture] check_deadline_ms`).
    pub posture_check_deadline: Duration,
    /// The breached-password range check, when `[passwords] breach_range_url` is set.
    pub breach_check: Option<passwords::BreachSettings>,
    /// `[security_events] max_per_minute`.
    pub security_events_per_minute: usize,
    pub metrics: metrics::MetricsSettings,
    pub connections: connections::ConnectionSettings,
    /// Set when `[otlp]` export is on.
    pub otlp: Option<otlp::OtlpSettings>,
    /// Set when `[tls]` is configured: both listeners serve HTTPS.
    pub tls: Option<tls::TlsSettings>,
    /// Where the file layer came from, if any.
    pub source_file: Option<PathBuf>,
}

/// The Redis URL, which may carry a password (`Debug` shows it redacted), with the CA that
/// vouches for a `rediss://` server when `redis_ca_file` is set.
#[derive(Clone)]
pub struct RedisUrl {
    url: String,
    ca_pem: Option<std::sync::Arc<Vec<u8>>>,
}

impl RedisUrl {
    fn new(url: String, ca_pem: Option<std::sync::Arc<Vec<u8>>>) -> Self {
        Self { url, ca_pem }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The CA certificates read from `redis_ca_file` at load.
    #[must_use]
    pub fn ca_pem(&self) -> Option<&[u8]> {
        self.ca_pem.as_deref().map(Vec::as_slice)
    }

    /// A client with these TLS settings: what every Redis user in the process is built from.
    pub fn client(&self) -> Result<gatehouse_infra::RedisClient, gatehouse_core::Error> {
        gatehouse_infra::redis_client(&self.url, self.ca_pem())
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisUrl")
            .field("url", &redact_url(&self.url))
            .field("ca", &self.ca_pem.is_some())
            .finish()
    }
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
        let Some(path) = file else {
            return Self::load_layers(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "config file {}: cannot read it: {e}",
                path.display()
            ))
        })?;
        Self::load_layers(Some((path, &text)))
    }

    /// What [`Self::load_from`] does once it has read the file: `text` is the contents of the
    /// config file at `path`, layered over the defaults and under the process environment, then
    /// validated. The fuzz target (`fuzz/`) feeds it arbitrary text.
    #[doc(hidden)]
    pub fn load_from_text(path: &Path, text: &str) -> Result<Self, ConfigError> {
        Self::load_layers(Some((path, text)))
    }

    fn load_layers(file: Option<(&Path, &str)>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
        if let Some((path, text)) = file {
            refuse_secrets_in_file(path, text)?;
            figment = figment.merge(Toml::string(text));
        }
        let file = file.map(|(path, _)| path);
        figment = figment.merge(
            Env::prefixed("GATEHOUSE_")
                .ignore(&["master_key", "config", "pkcs11_pin"])
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
        let pin_env = zeroize::Zeroizing::new(std::env::var(pkcs11::PIN_ENV).ok());
        validate(
            raw,
            master_key_env.as_deref(),
            pin_env.as_deref(),
            file.map(Path::to_path_buf),
        )
    }

    /// Validates raw settings directly (no file, no environment): for embedding and tests.
    pub fn from_raw(raw: RawConfig, master_key_base64: Option<&str>) -> Result<Self, ConfigError> {
        validate(raw, master_key_base64, None, None)
    }

    /// The `[master_key_pkcs11]` section as written (`keys rotate-master` fills in what its flags
    /// leave out from it).
    #[must_use]
    pub fn raw_pkcs11(&self) -> &pkcs11::Pkcs11Config {
        &self.raw.master_key_pkcs11
    }

    /// The effective configuration as TOML, secrets redacted.
    #[must_use]
    pub fn to_redacted_toml(&self) -> String {
        let mut raw = self.raw.clone();
        raw.database_url = Some(redact_url(&database_url_text(&self.database.database)));
        raw.database_migration_url = raw.database_migration_url.as_deref().map(redact_url);
        raw.redis_url = raw.redis_url.as_deref().map(redact_url);
        let mut out = toml::to_string(&raw).unwrap_or_default();
        let key = match &self.master_key {
            MasterKey::Environment(_) => "supplied by GATEHOUSE_MASTER_KEY [redacted]".to_owned(),
            MasterKey::File(p, _) => format!("read from {} [redacted]", p.display()),
            MasterKey::Shares => {
                "rebuilt from operators' shares at start (sealed until then)".to_owned()
            }
            MasterKey::Pkcs11(p) => format!(
                "key {:?} on HSM token {:?} through {} (PIN [redacted])",
                p.key_label,
                p.token_label,
                p.module.display()
            ),
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

/// Each section validates into its typed settings; what spans sections is checked here.
fn validate(
    raw: RawConfig,
    master_key_env: Option<&str>,
    pin_env: Option<&str>,
    source_file: Option<PathBuf>,
) -> Result<Config, ConfigError> {
    if raw.version != CONFIG_VERSION {
        return refuse(format!(
            "version: this build reads configuration version {CONFIG_VERSION}, not {}",
            raw.version
        ));
    }
    let production = raw.mode == Mode::Production;
    let tls = tls::validate(&raw.tls)?;
    let server = server::validate(&raw, production, tls.is_some())?;
    let database = database::validate(&raw, production, &engines::process_env)?;
    let redis_url = engines::redis(&raw, production)?;
    let master_key = master_key::validate(&raw, master_key_env, pin_env, production)?;
    let password_hashing = password_hashing::validate(&raw.password_hashing)?;
    let keyring = keyring::validate(&raw.keyring)?;
    let checkpoint_every = audit::validate(&raw.audit)?;
    let transit_max_batch = transit::validate(&raw.transit)?;
    let identity = identity::validate(&raw.identity, &raw.mail.product_name, production)?;
    let mail = mail::validate(&raw.mail, production, &raw.data_dir, &raw.listen)?;
    let rate_limits = rate_limits::validate(&raw.rate_limits, production)?;
    if rate_limits
        .as_ref()
        .is_some_and(|r| r.store == LimitStore::Redis)
        && raw.redis_url.is_none()
    {
        return refuse("redis_url: required when rate_limits.store = \"redis\"");
    }
    let service_secrets = service_auth::validate(&raw.service_auth, &identity)?;
    let security_txt = security_txt::render(
        &raw.security_txt,
        gatehouse_core::Clock::now(&gatehouse_core::SystemClock),
    )?;
    let taken: Vec<_> = std::iter::once(server.listen)
        .chain(server.admin_listen)
        .collect();
    let metrics = metrics::validate(&raw.metrics, production, &taken)?;
    let connections = connections::validate(&raw.connections)?;
    let otlp = otlp::validate(&raw.otlp, production)?;
    let product = product::validate(&raw.product)?;
    let lifecycle = lifecycle::validate(&raw.lifecycle)?;
    let share = share::validate(&raw.share)?;
    let webhooks = webhooks::validate(&raw.webhooks, production)?;
    let oauth = oauth::validate(&raw.oauth, production)?;
    let sso = sso::validate(&raw.sso, &oauth.settings, production)?;
    let backup = backup::validate(&raw.backup)?;
    let trust_page = trust_page::validate(&raw.trust_page)?;
    let posture_check_deadline = posture::validate(&raw.posture)?;
    let breach_check = passwords::validate(&raw.passwords, production)?;
    let security_events_per_minute = passwords::validate_security_events(&raw.security_events)?;
    Ok(Config {
        mode: raw.mode,
        data_dir: raw.data_dir.clone(),
        log_format: raw.log_format,
        log_level: raw.log_level.clone(),
        redis_url,
        redis_key_prefix: raw.rate_limits.redis_key_prefix.clone(),
        server,
        database,
        master_key,
        password_hashing,
        keyring,
        checkpoint_every,
        identity,
        product,
        mail,
        lifecycle,
        share,
        webhooks,
        sso,
        oauth,
        backup,
        rate_limits,
        service_secrets,
        transit_max_batch,
        security_txt,
        trust_page,
        posture_check_deadline,
        breach_check,
        security_events_per_minute,
        metrics,
        connections,
        otlp,
        tls,
        source_file,
        raw,
    })
}

fn refuse_secrets_in_file(path: &Path, text: &str) -> Result<(), ConfigError> {
    let table: toml::Table = text.parse().map_err(|e| {
        ConfigError(format!(
            "config file {}: not valid TOML: {e}",
            path.display()
        ))
    })?;
    // `master_key = "shares"` names where the key comes from, not the key.
    if table
        .get("master_key")
        .is_some_and(|v| v.as_str() != Some(master_key::SHARES))
    {
        return refuse(format!(
            "master_key: refused in the config file {} because config files end up in version \
             control; supply the key with GATEHOUSE_MASTER_KEY or master_key_file",
            path.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
