use std::sync::Arc;

use gatehouse_core::Kernel;
use gatehouse_crypto::SecretString;

/// The service secrets `/internal/v1` accepts in `X-Service-Auth` (B2): one, or two while
/// rotating. Kept as SHA-256 digests so every comparison has the same length.
#[derive(Default)]
pub struct ServiceSecrets {
    /// Compared as they are, in constant time for a given length: hashing both sides first
    /// (which also hides the length) cost a SHA-256 per internal call, and the length of a
    /// generated secret is no secret.
    secrets: Vec<SecretString>,
    /// Each secret's name (its file's stem): what the audit trail records as the service.
    names: Vec<Arc<str>>,
    /// The registered app's audience each named service is bound to (`service_auth.apps`).
    apps: Vec<(Arc<str>, Arc<str>)>,
}

impl std::fmt::Debug for ServiceSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServiceSecrets({:?})", self.names)
    }
}

impl ServiceSecrets {
    /// Secrets with their names.
    #[must_use]
    pub fn new(secrets: &[(String, SecretString)]) -> Self {
        Self {
            secrets: secrets
                .iter()
                .map(|(_, s)| SecretString::from(s.expose().to_owned()))
                .collect(),
            names: secrets.iter().map(|(n, _)| Arc::from(n.as_str())).collect(),
            apps: Vec::new(),
        }
    }

    /// Binds services (by secret name) to registered apps' audiences: a person's token such a
    /// service presents must be for its app.
    #[must_use]
    pub fn with_apps(mut self, apps: &[(String, String)]) -> Self {
        self.apps = apps
            .iter()
            .map(|(name, aud)| (Arc::from(name.as_str()), Arc::from(aud.as_str())))
            .collect();
        self
    }

    /// The app audience `service` is bound to, if any.
    #[must_use]
    pub fn app_of(&self, service: &str) -> Option<Arc<str>> {
        self.apps
            .iter()
            .find(|(name, _)| &**name == service)
            .map(|(_, aud)| Arc::clone(aud))
    }

    #[must_use]
    pub fn is_configured(&self) -> bool {
        !self.secrets.is_empty()
    }

    /// The name of the configured secret `presented` matches. Compared against every secret
    /// with no early exit, each comparison constant-time in the content (so which one matched,
    /// or whether any did, does not show in the time taken; only a length mismatch returns
    /// sooner).
    #[must_use]
    pub fn matching(&self, presented: &str) -> Option<Arc<str>> {
        let mut found = None;
        for (i, s) in self.secrets.iter().enumerate() {
            let hit = gatehouse_crypto::ct_eq(s.expose().as_bytes(), presented.as_bytes());
            if hit && found.is_none() {
                found = Some(i);
            }
        }
        found.and_then(|i| self.names.get(i).cloned())
    }
}

/// What every handler reads. Cloned for every request (axum hands each handler its own copy), so
/// it is one `Arc`: a clone is one counter increment however many parts it holds.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
#[derive(Debug, Clone)]
pub struct Shared {
    pub kernel: Arc<Kernel>,
    pub service: Arc<ServiceSecrets>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<Vec<std::net::IpAddr>>,
    /// `None`: no rate limits.
    pub rate_limits: Option<Arc<crate::middleware::rate_limit::RateLimiting>>,
    /// The most items a transit batch may hold.
    pub transit_max_batch: usize,
    /// `/.well-known/security.txt`, when configured.
    pub security_txt: Option<Arc<str>>,
    /// Permits for work a request starts and does not wait for (password reset requests).
    pub background: Arc<tokio::sync::Semaphore>,
    /// Revocations fan out through Redis (readiness reports the subscription).
    pub revocation_fanout: bool,
    /// Spans are exported over OTLP (readiness reports the collector).
    pub otlp: bool,
    /// The posture registry (H3), set once the routers exist: one of its probes sends a request
    /// through the router.
    pub posture: Arc<std::sync::OnceLock<Arc<gatehouse_core::posture::Posture>>>,
    /// The public trust page (`/trust`, `/trust.md`), when `[trust_page]` turns it on.
    pub trust_page: Option<Arc<crate::trust::TrustPage>>,
}

impl AppState {
    #[must_use]
    pub fn new(kernel: Arc<Kernel>) -> Self {
        Self(Arc::new(Shared {
            kernel,
            service: Arc::new(ServiceSecrets::default()),
            trusted_proxies: Arc::new(Vec::new()),
            rate_limits: None,
            transit_max_batch: 100,
            security_txt: None,
            background: Arc::new(tokio::sync::Semaphore::new(64)),
            revocation_fanout: false,
            otlp: false,
            posture: Arc::default(),
            trust_page: None,
        }))
    }

    /// For the builders below, which run before the state is shared.
    fn parts(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.0)
    }

    #[must_use]
    pub fn with_otlp(mut self, on: bool) -> Self {
        self.parts().otlp = on;
        self
    }

    #[must_use]
    pub fn with_revocation_fanout(mut self, on: bool) -> Self {
        self.parts().revocation_fanout = on;
        self
    }

    /// Serves the trust page with these declarations (`None`: off, and its paths are 404).
    #[must_use]
    pub fn with_trust_page(mut self, settings: Option<crate::trust::TrustPageSettings>) -> Self {
        self.parts().trust_page = settings.map(|s| Arc::new(crate::trust::TrustPage::new(s)));
        self
    }

    #[must_use]
    pub fn with_security_txt(mut self, text: Option<String>) -> Self {
        self.parts().security_txt = text.map(Arc::from);
        self
    }

    #[must_use]
    pub fn with_transit_max_batch(mut self, n: usize) -> Self {
        self.parts().transit_max_batch = n;
        self
    }

    #[must_use]
    pub fn with_rate_limits(
        mut self,
        store: Arc<dyn gatehouse_core::limits::RateLimitStore>,
        policy: gatehouse_core::limits::RatePolicy,
    ) -> Self {
        self.parts().rate_limits = Some(Arc::new(crate::middleware::rate_limit::RateLimiting {
            store,
            policy,
        }));
        self
    }

    #[must_use]
    pub fn with_trusted_proxies(mut self, proxies: Vec<std::net::IpAddr>) -> Self {
        self.parts().trusted_proxies = Arc::new(proxies);
        self
    }

    #[must_use]
    pub fn with_service_secrets(mut self, secrets: ServiceSecrets) -> Self {
        self.parts().service = Arc::new(secrets);
        self
    }
}
