//! The kernel: the domain services wired to their dependencies, and the one place that lists
//! them. The HTTP layer holds one `Kernel` and reaches each service through its handle
//! (`kernel.secrets().create(&call, ...)`); tests build one over any `Store` and a `FakeClock`.
//!
//! A handle borrows the kernel and is defined in its service's module, which owns the service's
//! state (the API-key cache, the session cache, the audit batcher, the mail health) as a field
//! here. What every service shares (store, clock, keyring, password pool, and the authorization
//! choke point `authorize`) stays on `Kernel`, which each handle dereferences to.

use std::sync::Arc;

use crate::clock::Clock;
use crate::identity::{Identity, IdentitySettings, LocalOnly};
use crate::keyring::Keyring;
use crate::password_pool::PasswordPool;
use crate::store::Store;
use crate::{
    api_keys::ApiKeys, audit::AuditLog, identity::Apps, identity::Auth, identity::Members,
    identity::Mfa, identity::Operators, identity::Recovery, identity::Sessions, mail::Mail,
    secrets::Secrets, signup::Signup, transit::Transit,
};

/// Lets a service handle (`pub struct Name<'k>(pub(crate) &'k Kernel)`) reach what every service
/// shares through `self`.
macro_rules! service_handle {
    ($name:ident) => {
        impl std::ops::Deref for $name<'_> {
            type Target = $crate::kernel::Kernel;

            fn deref(&self) -> &$crate::kernel::Kernel {
                self.0
            }
        }
    };
}
pub(crate) use service_handle;

/// Where the master key came from; reported by readiness and `config check`, never the key itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Environment,
    File,
    GeneratedDevelopmentFile,
    /// Rebuilt from operators' shares at a sealed start (D2).
    Shares,
    /// An HSM over PKCS#11 (`[master_key_pkcs11]`).
    Pkcs11,
}

impl KeySource {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Environment => "environment",
            Self::File => "file",
            Self::GeneratedDevelopmentFile => "generated-development-file",
            Self::Shares => "shares",
            Self::Pkcs11 => "pkcs11",
        }
    }
}

#[derive(Debug)]
pub struct Kernel {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    passwords: PasswordPool,
    keyring: Arc<Keyring>,
    key_source: KeySource,
    identity: Identity,
    api_keys: crate::api_keys::ApiKeyCache,
    mail: crate::mail::MailSettings,
    mail_health: crate::mail::MailHealth,
    mail_wakeup: tokio::sync::Notify,
    /// Group-commit audit writer for high-volume calls (transit), started on first use.
    audit_batcher: std::sync::OnceLock<crate::audit::AuditBatcher>,
    /// The product's own permissions and record types (C1, C3).
    product: crate::product::ProductCatalogue,
    /// The product's in-process state (runs of check denials).
    product_state: crate::product::ProductState,
    lifecycle: crate::lifecycle::LifecycleSettings,
    share: crate::product::ShareSettings,
    webhooks: crate::webhooks::WebhookSettings,
    webhook_transport: Option<Arc<dyn crate::webhooks::WebhookTransport>>,
    webhook_wakeup: tokio::sync::Notify,
    domain_checker: Option<Arc<crate::mail::DomainChecker>>,
    /// Share-link rows and opens served from memory (`product::share_opens`).
    share_opens: crate::product::share_opens::ShareOpens,
    /// The leased background jobs this process runs, and their state (`jobs`).
    jobs: Arc<crate::jobs::JobBoard>,
    /// Security events counted per source, subject and minute (`audit::security`).
    security_events: crate::audit::SecurityEvents,
    /// Context words and the breached-password range check for new passwords.
    password_policy: crate::identity::PasswordPolicy,
    /// Single sign-on's resolver and provider address rules (`sso`).
    sso: crate::sso::SsoState,
    /// OAuth providers, the client that calls them and their discovery documents (`oauth`).
    oauth: crate::oauth::OAuthRuntime,
    /// Connectors' settings and their sealed-token cache (`connectors`).
    connectors: crate::connectors::ConnectorState,
}

/// One dependency's state in the readiness report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    pub checks: Vec<Check>,
    /// The leased background jobs: never part of `ready` (another instance may run them).
    pub jobs: Vec<crate::jobs::JobStatus>,
}

impl Kernel {
    #[must_use]
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        passwords: PasswordPool,
        keyring: Arc<Keyring>,
        key_source: KeySource,
    ) -> Self {
        Self {
            store,
            clock,
            passwords,
            keyring,
            key_source,
            identity: Identity::new(IdentitySettings::default(), Arc::new(LocalOnly)),
            api_keys: crate::api_keys::ApiKeyCache::default(),
            mail: crate::mail::MailSettings::default(),
            mail_health: crate::mail::MailHealth::default(),
            mail_wakeup: tokio::sync::Notify::new(),
            audit_batcher: std::sync::OnceLock::new(),
            product: crate::product::ProductCatalogue::default(),
            product_state: crate::product::ProductState::default(),
            lifecycle: crate::lifecycle::LifecycleSettings::default(),
            share: crate::product::ShareSettings::default(),
            webhooks: crate::webhooks::WebhookSettings::default(),
            webhook_transport: None,
            webhook_wakeup: tokio::sync::Notify::new(),
            domain_checker: None,
            share_opens: crate::product::share_opens::ShareOpens::default(),
            jobs: Arc::default(),
            security_events: crate::audit::SecurityEvents::default(),
            password_policy: crate::identity::PasswordPolicy::default(),
            sso: crate::sso::SsoState::default(),
            oauth: crate::oauth::OAuthRuntime::default(),
            connectors: crate::connectors::ConnectorState::default(),
        }
    }

    /// Replaces single sign-on's domain resolver and provider address rules (start-up only).
    #[must_use]
    pub fn with_sso(mut self, sso: crate::sso::SsoState) -> Self {
        self.sso = sso;
        self
    }

    pub(crate) fn sso_state(&self) -> &crate::sso::SsoState {
        &self.sso
    }

    /// Replaces the security-event bound (start-up only).
    #[must_use]
    pub fn with_security_events(mut self, max_per_minute: usize) -> Self {
        self.security_events = crate::audit::SecurityEvents::new(max_per_minute);
        self
    }

    pub(crate) fn security_event_tallies(&self) -> &crate::audit::SecurityEvents {
        &self.security_events
    }

    /// Replaces the new-password checks beyond the shipped list (start-up only).
    #[must_use]
    pub fn with_password_policy(mut self, policy: crate::identity::PasswordPolicy) -> Self {
        self.password_policy = policy;
        self
    }

    pub(crate) fn password_policy(&self) -> &crate::identity::PasswordPolicy {
        &self.password_policy
    }

    /// Replaces the lifecycle jobs' batch size, retention and lease (start-up only).
    #[must_use]
    pub fn with_lifecycle(mut self, lifecycle: crate::lifecycle::LifecycleSettings) -> Self {
        self.lifecycle = lifecycle;
        self
    }

    /// Replaces the share links' bounds (start-up only).
    #[must_use]
    pub fn with_share(mut self, share: crate::product::ShareSettings) -> Self {
        self.share = share;
        self
    }

    /// Replaces the webhook settings and the HTTP client that sends them (start-up only).
    #[must_use]
    pub fn with_webhooks(
        mut self,
        settings: crate::webhooks::WebhookSettings,
        transport: Arc<dyn crate::webhooks::WebhookTransport>,
    ) -> Self {
        self.webhooks = settings;
        self.webhook_transport = Some(transport);
        self
    }

    /// Replaces the OAuth settings and the client that calls providers (start-up only).
    #[must_use]
    pub fn with_oauth(mut self, oauth: crate::oauth::OAuthRuntime) -> Self {
        self.oauth = oauth;
        self
    }

    pub(crate) fn oauth_runtime(&self) -> &crate::oauth::OAuthRuntime {
        &self.oauth
    }

    /// Replaces the connectors' settings (start-up only).
    #[must_use]
    pub fn with_connectors(mut self, settings: crate::connectors::ConnectorSettings) -> Self {
        self.connectors = crate::connectors::ConnectorState::new(settings);
        self
    }

    pub(crate) fn connector_state(&self) -> &crate::connectors::ConnectorState {
        &self.connectors
    }

    /// Replaces what sender domains are checked against and the resolver that reads them
    /// (start-up only).
    #[must_use]
    pub fn with_domain_check(mut self, checker: crate::mail::DomainChecker) -> Self {
        self.domain_checker = Some(Arc::new(checker));
        self
    }

    pub(crate) fn domain_checker(&self) -> Option<&crate::mail::DomainChecker> {
        self.domain_checker.as_deref()
    }

    pub(crate) fn webhook_settings(&self) -> &crate::webhooks::WebhookSettings {
        &self.webhooks
    }

    pub(crate) fn webhook_transport(&self) -> Option<&dyn crate::webhooks::WebhookTransport> {
        self.webhook_transport.as_deref()
    }

    /// The HTTP client webhooks go through, for the delivery job.
    #[must_use]
    pub fn webhook_client(&self) -> Option<Arc<dyn crate::webhooks::WebhookTransport>> {
        self.webhook_transport.clone()
    }

    /// Notified when deliveries were queued by a call; the delivery job waits on it.
    #[must_use]
    pub fn webhook_wakeup(&self) -> &tokio::sync::Notify {
        &self.webhook_wakeup
    }

    pub(crate) fn webhooks_queued(&self) {
        self.webhook_wakeup.notify_one();
    }

    pub(crate) fn share_opens(&self) -> &crate::product::share_opens::ShareOpens {
        &self.share_opens
    }

    pub(crate) fn share_settings(&self) -> crate::product::ShareSettings {
        self.share
    }

    pub(crate) fn lifecycle_settings(&self) -> &crate::lifecycle::LifecycleSettings {
        &self.lifecycle
    }

    /// Replaces the product's declared permissions and record types (start-up only; validated
    /// by the configuration loader).
    #[must_use]
    pub fn with_product(mut self, product: crate::product::ProductCatalogue) -> Self {
        self.product = product;
        self
    }

    /// The product's declared permissions and record types.
    #[must_use]
    pub fn product(&self) -> &crate::product::ProductCatalogue {
        &self.product
    }

    #[must_use]
    pub(crate) fn product_state(&self) -> &crate::product::ProductState {
        &self.product_state
    }

    /// The group-commit audit writer: concurrent callers' events share one transaction per
    /// chain, and each caller returns once its event is committed.
    pub(crate) fn audit_batcher(&self) -> &crate::audit::AuditBatcher {
        self.audit_batcher.get_or_init(|| {
            crate::audit::AuditBatcher::start_with_keyring(
                Arc::clone(&self.store),
                Arc::clone(&self.clock),
                Arc::clone(&self.keyring),
                256,
            )
        })
    }

    /// Replaces the mail settings (start-up only).
    #[must_use]
    pub fn with_mail(mut self, mail: crate::mail::MailSettings) -> Self {
        self.mail = mail;
        self
    }

    #[must_use]
    pub(crate) fn mail_settings(&self) -> &crate::mail::MailSettings {
        &self.mail
    }

    #[must_use]
    pub(crate) fn mail_health(&self) -> &crate::mail::MailHealth {
        &self.mail_health
    }

    /// Notified when mail was queued; the delivery loop waits on it between polls.
    #[must_use]
    pub(crate) fn mail_wakeup(&self) -> &tokio::sync::Notify {
        &self.mail_wakeup
    }

    /// Replaces the identity settings and revocation fanout (start-up only).
    #[must_use]
    pub fn with_identity(mut self, identity: Identity) -> Self {
        self.identity = identity;
        self
    }

    #[must_use]
    pub(crate) fn api_key_cache(&self) -> &crate::api_keys::ApiKeyCache {
        &self.api_keys
    }

    #[must_use]
    pub(crate) fn identity(&self) -> &Identity {
        &self.identity
    }

    // The services. Each handle is defined in the module named beside it.

    /// Tokens and API keys on each request, the organisation header, token-signing keys
    /// (`identity`).
    #[must_use]
    pub fn auth(&self) -> Auth<'_> {
        Auth(self)
    }

    /// Self-service sign-up (`signup`).
    #[must_use]
    pub fn signup(&self) -> Signup<'_> {
        Signup(self)
    }

    /// Sign-in and per-device sessions (`identity::sessions`).
    #[must_use]
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions(self)
    }

    /// Second factors and step-up (`identity::mfa`).
    #[must_use]
    pub fn mfa(&self) -> Mfa<'_> {
        Mfa(self)
    }

    /// Password reset and change, email verification (`identity::recovery`).
    #[must_use]
    pub fn recovery(&self) -> Recovery<'_> {
        Recovery(self)
    }

    /// Members, roles and invitations (`identity::members`).
    #[must_use]
    pub fn members(&self) -> Members<'_> {
        Members(self)
    }

    /// Platform operators (`identity::operators`).
    #[must_use]
    pub fn operators(&self) -> Operators<'_> {
        Operators(self)
    }

    /// The app registry (`identity::apps`).
    #[must_use]
    pub fn apps(&self) -> Apps<'_> {
        Apps(self)
    }

    /// API keys (`api_keys`).
    #[must_use]
    pub fn api_keys(&self) -> ApiKeys<'_> {
        ApiKeys(self)
    }

    /// The shared-secrets vault (`secrets`).
    #[must_use]
    pub fn secrets(&self) -> Secrets<'_> {
        Secrets(self)
    }

    /// Transit encryption (`transit`).
    #[must_use]
    pub fn transit(&self) -> Transit<'_> {
        Transit(self)
    }

    /// Reading the audit log (`audit`).
    #[must_use]
    pub fn audit(&self) -> AuditLog<'_> {
        AuditLog(self)
    }

    /// Export and erasure of a person's or an organisation's data (`data_rights`).
    #[must_use]
    pub fn data_rights(&self) -> crate::data_rights::DataRights<'_> {
        crate::data_rights::DataRights(self)
    }

    /// The purge of expired data and the pruning of spent rows (`lifecycle`).
    #[must_use]
    pub fn lifecycle(&self) -> crate::lifecycle::Lifecycle<'_> {
        crate::lifecycle::Lifecycle(self)
    }

    /// Single sign-on: an organisation's provider, domains and enforcement (`sso`).
    #[must_use]
    pub fn sso(&self) -> crate::sso::Sso<'_> {
        crate::sso::Sso(self)
    }

    /// The mail outbox's delivery (`mail`).
    #[must_use]
    pub fn mail(&self) -> Mail<'_> {
        Mail(self)
    }

    // What every service shares.

    #[must_use]
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    #[must_use]
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    #[must_use]
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// A runner for `job` under its lease in this kernel's store, on behalf of the instance
    /// `holder`, reporting to this kernel's readiness.
    #[must_use]
    pub fn lease_runner(
        &self,
        job: crate::jobs::LeasedJob,
        holder: &str,
    ) -> crate::jobs::LeaseRunner {
        crate::jobs::LeaseRunner::new(
            job,
            holder.to_owned(),
            Arc::clone(&self.store) as Arc<dyn crate::store::Housekeeping>,
            Arc::clone(&self.clock),
            Arc::clone(&self.jobs),
        )
    }

    /// Gives up the leases `holder` holds (at shutdown, once its jobs stopped).
    pub async fn release_leases(&self, holder: &str) {
        crate::jobs::release_all(self.store.as_ref(), &self.jobs, holder).await;
    }

    /// The leased background jobs as this instance sees them (no store read).
    #[must_use]
    pub fn jobs_status(&self) -> Vec<crate::jobs::JobStatus> {
        self.jobs.snapshot()
    }

    /// Where the master key came from.
    #[must_use]
    pub fn key_source(&self) -> KeySource {
        self.key_source
    }

    #[must_use]
    pub fn passwords(&self) -> &PasswordPool {
        &self.passwords
    }

    /// Checks what serving needs: the store answers and the master key is loaded.
    pub async fn readiness(&self) -> Readiness {
        let store = match self.store.ping().await {
            Ok(()) => Check {
                name: "store",
                ok: true,
                detail: self.store.backend().to_owned(),
            },
            Err(e) => Check {
                name: "store",
                ok: false,
                detail: format!("{}: {e}", self.store.backend()),
            },
        };
        let keys = Check {
            name: "keys",
            ok: true,
            detail: format!(
                "master key version {} loaded from {}",
                self.keyring.kek_version(),
                self.key_source.as_str()
            ),
        };
        let hashing = Check {
            name: "password_hashing",
            ok: true,
            detail: format!(
                "{} workers, {} jobs pending",
                self.passwords.workers(),
                self.passwords.pending()
            ),
        };
        let store_ok = store.ok;
        let mut checks = vec![store, keys, hashing];
        let ready = checks.iter().all(|c| c.ok);
        // Mail never makes serving impossible: a backlog or a failing server is reported only.
        // With the store down the outbox cannot be read either, and asking would hold the probe
        // for a second pool timeout (10 s in all, past many load balancers' probe timeouts).
        checks.push(if store_ok {
            self.mail_check().await
        } else {
            Check {
                name: "mail",
                ok: false,
                detail: "the outbox cannot be read: the store is unavailable".to_owned(),
            }
        });
        Readiness {
            ready,
            checks,
            jobs: self.jobs.snapshot(),
        }
    }

    async fn mail_check(&self) -> Check {
        let backlog = match self.store.mail_backlog().await {
            Ok(b) => b,
            Err(e) => {
                return Check {
                    name: "mail",
                    ok: false,
                    detail: format!("the outbox cannot be read: {e}"),
                };
            }
        };
        let failing = self.mail_health.last_error();
        Check {
            name: "mail",
            ok: backlog.failing == 0 && failing.is_none(),
            detail: match (failing.or(backlog.last_error), backlog.pending) {
                (Some(e), n) => format!("{n} messages waiting; last delivery failed: {e}"),
                (None, n) => format!("{n} messages waiting"),
            },
        }
    }
}
