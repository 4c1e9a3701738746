//! The outbound clients the kernel is handed at start (OAuth providers, webhook receivers, DNS,
//! mail, the breached-password range), each built from the typed configuration.

use std::sync::Arc;

use gatehouse_core::mail::MailTransport;

use crate::app::StartError;
use crate::config::Config;

pub(crate) fn oauth_client(
    config: &Config,
) -> Result<Arc<dyn gatehouse_core::oauth::OAuthClient>, StartError> {
    gatehouse_infra::oauth_client::HttpOAuthClient::new(&config.oauth.client)
        .map(|c| Arc::new(c) as Arc<dyn gatehouse_core::oauth::OAuthClient>)
        .map_err(StartError)
}

pub(crate) fn webhook_client(
    config: &Config,
) -> Result<Arc<dyn gatehouse_core::webhooks::WebhookTransport>, StartError> {
    gatehouse_infra::webhooks::WebhookClient::new(&config.webhooks.client)
        .map(|c| Arc::new(c) as Arc<dyn gatehouse_core::webhooks::WebhookTransport>)
        .map_err(StartError)
}

/// The sender-domain check's settings and resolver (also used by `gatehouse mail check-domain`).
pub(crate) fn domain_checker(
    config: &Config,
) -> Result<gatehouse_core::mail::DomainChecker, StartError> {
    let lookups =
        gatehouse_infra::dns::TxtLookups::new(&config.mail.auth.dns_servers).map_err(StartError)?;
    Ok(gatehouse_core::mail::DomainChecker::new(
        config.mail.auth.domain_check.clone(),
        Arc::new(lookups),
    ))
}

pub(crate) fn mail_transport(config: &Config) -> Result<Arc<dyn MailTransport>, StartError> {
    use crate::config::MailTransportSettings;
    use gatehouse_infra::mail::{FileTransport, SmtpTransport};
    Ok(match &config.mail.transport {
        MailTransportSettings::File(dir) => {
            tracing::warn!(
                dir = %dir.display(),
                "mail is written to .eml files, not sent; configure [mail] transport = \"smtp\" to send it"
            );
            Arc::new(FileTransport::new(
                dir.clone(),
                config.mail.auth.dkim.clone(),
            ))
        }
        MailTransportSettings::Smtp(settings) => {
            if config.mail.auth.dkim.is_none() {
                tracing::warn!(
                    "outgoing mail is not DKIM-signed: set [mail.dkim] (receivers offer RFC 8058 \
                     one-click unsubscribe only on signed mail, and DMARC needs a signature or SPF)"
                );
            }
            Arc::new(
                SmtpTransport::new(settings, config.mail.auth.dkim.clone()).map_err(StartError)?,
            )
        }
    })
}

/// The new-password checks beyond the shipped list: the breached-password range client when
/// `[passwords] breach_range_url` is set.
pub(crate) fn password_policy(
    config: &Config,
) -> Result<gatehouse_core::identity::PasswordPolicy, StartError> {
    let breach = match &config.breach_check {
        Some(b) => Some(gatehouse_core::identity::BreachCheck {
            range: Arc::new(
                gatehouse_infra::breach::HttpBreachRange::new(&b.url, b.timeout)
                    .map_err(StartError)?,
            ),
            on_error: b.on_error,
        }),
        None => None,
    };
    Ok(gatehouse_core::identity::PasswordPolicy { breach })
}
