//! `[mail]`: what mail says and where it goes. The message defaults are core's
//! `MailSettings::default()`; the transport is read here once (its password and CA files too).

use std::path::{Path, PathBuf};
use std::time::Duration;

use gatehouse_core::mail::MailSettings;
use gatehouse_infra::mail::{SmtpSettings, SmtpTls};
use serde::{Deserialize, Serialize};

use super::mail_auth::{DkimConfig, DomainCheckConfig, MailAuthSetup};
use super::{ConfigError, refuse};
use crate::keyfile;

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
    /// Gatehouse's own public URL, where unsubscribe links in the product's mail point
    /// (`{public_url}/v1/unsubscribe`): https:// in production. Unset, development uses
    /// `http://{listen}` and production refuses product mail until it is set.
    pub public_url: String,
    pub from: String,
    /// How often the delivery loop looks for due mail (it is also woken when mail is queued).
    pub poll_interval_ms: u64,
    pub first_backoff_secs: u64,
    pub max_backoff_secs: u64,
    /// A message that failed this many times is given up (dead, its body erased).
    pub max_attempts: u32,
    /// A message the relay refused for good (5xx) this many times is given up sooner.
    pub max_refusals: u32,
    pub smtp: SmtpConfig,
    /// The product's own message templates, for `POST /internal/v1/messages` with `template`.
    pub templates: Vec<MailTemplateConfig>,
    /// DKIM signing of outgoing mail (F4).
    pub dkim: DkimConfig,
    /// What the sender-domain check compares a domain's records with (F4).
    pub domain_check: DomainCheckConfig,
}

/// One product template: `{{name}}` placeholders are filled from the call's `variables` (and
/// HTML-escaped in `html`); a placeholder without a variable refuses the call.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailTemplateConfig {
    pub name: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

impl Default for MailConfig {
    fn default() -> Self {
        let d = MailSettings::default();
        let secs = |t: time::Duration| u64::try_from(t.whole_seconds()).unwrap_or(0);
        Self {
            transport: MailTransportKind::File,
            product_name: d.product_name,
            base_url: d.base_url,
            public_url: String::new(),
            from: d.from,
            poll_interval_ms: 1_000,
            first_backoff_secs: secs(d.first_backoff),
            max_backoff_secs: secs(d.max_backoff),
            max_attempts: d.max_attempts,
            max_refusals: d.max_refusals,
            smtp: SmtpConfig::default(),
            templates: Vec::new(),
            dkim: DkimConfig::default(),
            domain_check: DomainCheckConfig::default(),
        }
    }
}

/// Where mail goes.
#[derive(Debug, Clone)]
pub enum MailTransportSettings {
    /// Development: each message is written as an `.eml` file into this directory.
    File(PathBuf),
    Smtp(SmtpSettings),
}

/// The mail the kernel queues, how it is delivered, and how often the delivery loop polls.
#[derive(Debug, Clone)]
pub struct MailSetup {
    pub settings: MailSettings,
    pub transport: MailTransportSettings,
    pub poll: Duration,
    /// The DKIM signer and the domain check's settings.
    pub auth: MailAuthSetup,
}

pub(super) fn validate(
    c: &MailConfig,
    production: bool,
    data_dir: &Path,
    listen: &str,
) -> Result<MailSetup, ConfigError> {
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
    let public_ok = c.public_url.is_empty()
        || c.public_url.starts_with("https://")
        || (!production && c.public_url.starts_with("http://"));
    if !public_ok {
        return refuse(format!(
            "mail.public_url: {:?} must be Gatehouse's own https:// URL in production (http:// \
             only in development): unsubscribe links point there",
            c.public_url
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    for t in &c.templates {
        let name_ok = (1..=64).contains(&t.name.len())
            && t.name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
            });
        let parts = [Some(&t.subject), Some(&t.text), t.html.as_ref()];
        let closed = parts
            .iter()
            .flatten()
            .all(|p| p.matches("{{").count() == p.matches("}}").count());
        if !name_ok || !names.insert(t.name.as_str()) || t.subject.trim().is_empty() || !closed {
            return refuse(format!(
                "mail.templates: {:?} needs a unique name of 1 to 64 of a-z, 0-9, '_', '-', '.', \
                 a subject, and every {{{{ closed by }}}}",
                t.name
            ));
        }
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
    if c.max_refusals == 0 || c.max_attempts < c.max_refusals || c.max_attempts > 100 {
        return refuse(
            "mail.max_refusals: at least 1 and at most mail.max_attempts, which is at most 100 \
             (mail is never retried for ever)",
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
    // The SMTP files are checked even while the file transport is in use, so a readable
    // password file is refused before anyone switches to SMTP.
    let smtp = smtp(&c.smtp)?;
    let auth = super::mail_auth::validate(&c.dkim, &c.domain_check, &c.from)?;
    let transport = match c.transport {
        MailTransportKind::File => MailTransportSettings::File(data_dir.join("mail")),
        MailTransportKind::Smtp => MailTransportSettings::Smtp(smtp),
    };
    Ok(MailSetup {
        settings: MailSettings {
            product_name: c.product_name.clone(),
            base_url: c.base_url.trim_end_matches('/').to_owned(),
            public_url: match c.public_url.as_str() {
                "" if production => String::new(),
                "" => format!("http://{listen}"),
                url => url.trim_end_matches('/').to_owned(),
            },
            templates: c
                .templates
                .iter()
                .map(|t| gatehouse_core::mail::MailTemplate {
                    name: t.name.clone(),
                    subject: t.subject.clone(),
                    text: t.text.clone(),
                    html: t.html.clone(),
                })
                .collect(),
            from: c.from.clone(),
            first_backoff: secs(c.first_backoff_secs),
            max_backoff: secs(c.max_backoff_secs),
            max_attempts: c.max_attempts,
            max_refusals: c.max_refusals,
            lease: lease(c),
        },
        transport,
        poll: Duration::from_millis(c.poll_interval_ms),
        auth,
    })
}

/// How long a delivery pass keeps the messages it claimed: every one of a batch may take the
/// relay's timeout, one after another. A file write is local and quick, so a message claimed by
/// an instance that was killed goes out 10 s later rather than minutes later.
fn lease(c: &MailConfig) -> time::Duration {
    match c.transport {
        MailTransportKind::File => time::Duration::seconds(10),
        MailTransportKind::Smtp => {
            let batch = u64::from(gatehouse_core::mail::DELIVERY_BATCH);
            // At most a day, whatever the timeout says.
            let secs = batch
                .saturating_mul(c.smtp.timeout_secs)
                .saturating_add(30)
                .min(86_400);
            time::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))
        }
    }
}

fn smtp(c: &SmtpConfig) -> Result<SmtpSettings, ConfigError> {
    let password = match &c.password_file {
        Some(p) => Some(
            keyfile::secret_text(p)
                .map_err(|e| ConfigError(format!("mail.smtp.password_file: {e}")))?,
        ),
        None => None,
    };
    let ca_pem = match &c.ca_file {
        Some(p) => Some(
            std::fs::read(p)
                .map_err(|e| ConfigError(format!("mail.smtp.ca_file: {}: {e}", p.display())))?,
        ),
        None => None,
    };
    Ok(SmtpSettings {
        host: c.host.clone(),
        port: c.port,
        tls: match c.tls {
            SmtpTlsMode::Starttls => SmtpTls::StartTls,
            SmtpTlsMode::Implicit => SmtpTls::Implicit,
            SmtpTlsMode::None => SmtpTls::None,
        },
        username: c.username.clone(),
        password,
        ca_pem,
        timeout: Duration::from_secs(c.timeout_secs),
    })
}
