//! Mail transports: SMTP (lettre; STARTTLS, implicit TLS, or plain only towards loopback, which
//! configuration enforces) and the development default that writes each message as an `.eml`
//! file. Both build the same MIME message: plain text and HTML alternatives, DKIM-signed when a
//! key is configured.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_core::mail::{MailTransport, Message, SendError};
use gatehouse_crypto::SecretString;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::dkim::DkimSigner;

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS; refused if the server does not offer it.
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS: only for a relay on loopback (configuration refuses anything else).
    None,
}

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// PEM of an extra CA to trust (a private relay); the system roots are trusted too.
    pub ca_pem: Option<Vec<u8>>,
    pub timeout: Duration,
}

fn unsendable(detail: String) -> SendError {
    SendError {
        summary: "the message could not be built",
        detail,
        permanent: true,
    }
}

/// A category for health and metrics; the relay's own words stay in the log.
fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    let summary = if e.is_permanent() {
        "the relay refused the message (5xx)"
    } else if e.is_transient() {
        "the relay deferred the message (4xx)"
    } else if e.is_timeout() {
        "the relay timed out"
    } else if e.is_tls() {
        "TLS with the relay failed"
    } else {
        "the relay could not be reached"
    };
    SendError {
        summary,
        detail: e.to_string(),
        permanent: e.is_permanent(),
    }
}

fn mime(message: &Message) -> Result<lettre::Message, SendError> {
    let from: Mailbox = message
        .from
        .parse()
        .map_err(|e| unsendable(format!("the From address is malformed: {e}")))?;
    let to: Mailbox = message
        .to
        .parse()
        .map_err(|e| unsendable(format!("the recipient address is malformed: {e}")))?;
    lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(message.subject.clone())
        .message_id(Some(format!("<{}@gatehouse>", message.id)))
        .multipart(MultiPart::alternative_plain_html(
            message.text.clone(),
            message.html.clone(),
        ))
        .map_err(|e| unsendable(format!("the message could not be built: {e}")))
        .and_then(|mut built| {
            for (name, value) in &message.headers {
                // lettre checks the name (ASCII, no colon or space) and encodes the value.
                let name = HeaderName::new_from_ascii(name.clone())
                    .map_err(|e| unsendable(format!("header {name:?}: {e}")))?;
                if value.chars().any(char::is_control) {
                    return Err(unsendable(format!("header {name}: a control character")));
                }
                built
                    .headers_mut()
                    .insert_raw(HeaderValue::new(name, value.clone()));
            }
            Ok(built)
        })
}

/// The domain of an address such as `Acme <no-reply@acme.example>`, lower-cased.
#[must_use]
pub fn address_domain(address: &str) -> Option<String> {
    let mailbox: Mailbox = address.parse().ok()?;
    Some(mailbox.email.domain().to_ascii_lowercase())
}

/// The bytes that go out: the formatted message, with a DKIM signature in front when a key is
/// configured.
fn wire_bytes(m: &lettre::Message, dkim: Option<&DkimSigner>) -> Result<Vec<u8>, SendError> {
    let bytes = m.formatted();
    match dkim {
        Some(signer) => signer.sign(&bytes).map_err(unsendable),
        None => Ok(bytes),
    }
}

/// Delivers over SMTP. Each message opens its own connection: mail is rare and a pooled
/// connection would only hide a relay that went away.
#[derive(Debug)]
pub struct SmtpTransport {
    inner: AsyncSmtpTransport<Tokio1Executor>,
    dkim: Option<Arc<DkimSigner>>,
}

impl SmtpTransport {
    pub fn new(s: &SmtpSettings, dkim: Option<Arc<DkimSigner>>) -> Result<Self, String> {
        let tls_params = || -> Result<TlsParameters, String> {
            let mut b = TlsParameters::builder(s.host.clone());
            if let Some(pem) = &s.ca_pem {
                let cert =
                    Certificate::from_pem(pem).map_err(|e| format!("mail.smtp.ca_file: {e}"))?;
                b = b.add_root_certificate(cert);
            }
            b.build_rustls().map_err(|e| format!("mail.smtp TLS: {e}"))
        };
        let tls = match s.tls {
            SmtpTls::StartTls => Tls::Required(tls_params()?),
            SmtpTls::Implicit => Tls::Wrapper(tls_params()?),
            SmtpTls::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
            .port(s.port)
            .tls(tls)
            .timeout(Some(s.timeout));
        if let (Some(user), Some(pass)) = (&s.username, &s.password) {
            builder = builder.credentials(Credentials::new(user.clone(), pass.expose().to_owned()));
        }
        Ok(Self {
            inner: builder.build(),
            dkim,
        })
    }
}

#[async_trait]
impl MailTransport for SmtpTransport {
    fn kind(&self) -> &'static str {
        "smtp"
    }

    async fn send(&self, message: &Message) -> Result<(), SendError> {
        let m = mime(message)?;
        let bytes = wire_bytes(&m, self.dkim.as_deref())?;
        self.inner
            .send_raw(m.envelope(), &bytes)
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }
}

/// The development default: each message becomes `{dir}/{id}.eml`, and one log line says so.
#[derive(Debug)]
pub struct FileTransport {
    dir: PathBuf,
    dkim: Option<Arc<DkimSigner>>,
}

impl FileTransport {
    #[must_use]
    pub fn new(dir: PathBuf, dkim: Option<Arc<DkimSigner>>) -> Self {
        Self { dir, dkim }
    }
}

#[async_trait]
impl MailTransport for FileTransport {
    fn kind(&self) -> &'static str {
        "file"
    }

    async fn send(&self, message: &Message) -> Result<(), SendError> {
        let failed = |detail: String| SendError {
            summary: "the mail directory could not be written",
            detail,
            permanent: false,
        };
        let m = mime(message)?;
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| failed(format!("{}: {e}", self.dir.display())))?;
        let path = self.dir.join(format!("{}.eml", message.id));
        let tmp = self.dir.join(format!("{}.eml.tmp", message.id));
        // The files hold live one-time links: readable by the owner only.
        let bytes = wire_bytes(&m, self.dkim.as_deref())?;
        let at = tmp.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&at)?;
            file.write_all(&bytes)?;
            file.sync_all()
        })
        .await
        .map_err(|e| failed(e.to_string()))?
        .map_err(|e| failed(format!("{}: {e}", tmp.display())))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| failed(format!("{}: {e}", path.display())))?;
        tracing::info!(
            mail_id = %message.id,
            path = %path.display(),
            "development mail written to a file (configure [mail] transport = \"smtp\" to send it)"
        );
        Ok(())
    }
}
