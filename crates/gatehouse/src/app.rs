//! Wiring: `App::build` turns a validated `Config` into a running kernel over its store, and
//! `App::serve` runs the router on a listener it is handed until `shutdown` resolves, then drains.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::identity::{Identity, LocalOnly};
use gatehouse_core::keyring::{Keyring, LocalKek, MasterKek};
use gatehouse_core::mail::MailTransport;
use gatehouse_core::password_pool::PasswordPool;
use gatehouse_core::store::Store;
use gatehouse_core::{Clock, Kernel, KeySource, SystemClock};
use gatehouse_crypto::Key32;
use gatehouse_http::{AppState, CorsOrigins, HttpSettings, ServiceSecrets, Surface};
use gatehouse_store_postgres::{PostgresStore, RlsPosture};
use gatehouse_store_sqlite::SqliteStore;
use tokio::net::TcpListener;

use crate::config::{Config, Database, MasterKey, Mode};
use crate::keyfile;

/// A start-up failure, as a sentence for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

#[derive(Debug)]
pub struct App {
    router: axum::Router,
    /// The router the H1 probe sends its request through: it holds only a weak handle, so
    /// this keeps the router alive as long as the app (never read).
    #[expect(dead_code, reason = "held for its lifetime, not read")]
    probed_router: Arc<axum::Router>,
    /// Every control's probe (H3).
    posture: Arc<gatehouse_core::posture::Posture>,
    /// Set when operators have their own listener (`admin_listen`): the `/admin/v1` router.
    admin_router: Option<axum::Router>,
    kernel: Arc<Kernel>,
    /// What each connection may hold, on every listener.
    bounds: crate::conn::Bounds,
    shutdown_grace: Duration,
    reencrypt_every: Duration,
    reencrypt_batch: u32,
    checkpoint_every: Duration,
    mail_transport: Arc<dyn MailTransport>,
    mail_poll: Duration,
    webhook_poll: Duration,
    connector_poll: Duration,
    purge_every: Duration,
    prune_every: Duration,
    /// Set when `[tls]` is configured: both listeners serve HTTPS with it.
    tls: Option<Arc<crate::tls::TlsReloader>>,
    /// With `metrics.listen`: the metrics listener (bound at build, so its address is known)
    /// and its router.
    metrics: Option<(std::net::TcpListener, axum::Router)>,
    /// With `[otlp]` on: the span exporter, shut down (its last batch sent) after serving.
    #[cfg(feature = "otlp")]
    spans: Option<Arc<crate::otlp::SpanExporter>>,
}

impl App {
    pub async fn build(config: &Config) -> Result<Self, StartError> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Like [`App::build`], reading time from `clock` (tests move a `FakeClock` to expire
    /// sessions and tokens without sleeping).
    pub async fn build_with_clock(
        config: &Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        Self::build_inner(config, clock, None).await
    }

    /// After a sealed start (`master_key = "shares"`): built with the key the shares rebuilt.
    pub(crate) async fn build_unsealed(config: &Config, key: Key32) -> Result<Self, StartError> {
        Self::build_inner(config, Arc::new(SystemClock), Some(key)).await
    }

    async fn build_inner(
        config: &Config,
        clock: Arc<dyn Clock>,
        rebuilt: Option<Key32>,
    ) -> Result<Self, StartError> {
        ensure_data_dir(&config.data_dir)?;
        // The master key first: an HSM that refuses the PIN stops the start before the database
        // is opened or migrated, so nothing is changed.
        let master = match rebuilt {
            Some(key) => (
                Arc::new(LocalKek::new(&key).map_err(|e| StartError(format!("master key: {e}")))?)
                    as Arc<dyn MasterKek>,
                KeySource::Shares,
            ),
            None => master_kek(config).await?,
        };
        let (store, postgres) = open_store_with_handle(config).await?;
        let keyring = start_keyring(config, master, &store, &clock).await?;
        let passwords = start_password_pool(config)?;
        let kernel = Arc::new(
            Kernel::new(
                store,
                Arc::clone(&clock),
                passwords,
                Arc::clone(&keyring.0),
                keyring.1,
            )
            .with_identity(identity(config))
            .with_mail(config.mail.settings.clone())
            .with_lifecycle(config.lifecycle.settings.clone())
            .with_share(config.share)
            .with_webhooks(
                config.webhooks.settings.clone(),
                crate::clients::webhook_client(config)?,
            )
            .with_oauth(gatehouse_core::oauth::OAuthRuntime::new(
                config.oauth.settings.clone(),
                crate::clients::oauth_client(config)?,
            ))
            .with_connectors(config.oauth.connectors.clone())
            .with_domain_check(crate::clients::domain_checker(config)?)
            .with_sso(config.sso.state().map_err(StartError)?)
            .with_product(config.product.clone())
            .with_security_events(config.security_events_per_minute)
            .with_password_policy(crate::clients::password_policy(config)?),
        );
        kernel
            .auth()
            .reload_token_keys()
            .await
            .map_err(|e| StartError(format!("token-signing keys: {e}")))?;
        subscribe_to_revocations(config, &kernel)?;
        let mail_transport = crate::clients::mail_transport(config)?;
        let tls = match &config.tls {
            Some(s) => Some(Arc::new(
                crate::tls::TlsReloader::load(s).map_err(StartError)?,
            )),
            None => None,
        };
        #[cfg(feature = "otlp")]
        let spans = match &config.otlp {
            Some(s) => Some(Arc::new(
                crate::otlp::SpanExporter::start(s).map_err(StartError)?,
            )),
            None => None,
        };
        let settings = HttpSettings {
            cors_origins: CorsOrigins::new(
                config
                    .server
                    .cors_allowed_origins
                    .iter()
                    .map(String::as_str),
            ),
            body_limit_bytes: config.server.body_limit_bytes,
            request_timeout: config.server.request_timeout,
            access_log: crate::logging::access_log(),
            #[cfg(feature = "otlp")]
            span_sink: spans
                .clone()
                .map(|s| s as Arc<dyn gatehouse_http::AccessLog>),
            #[cfg(not(feature = "otlp"))]
            span_sink: None,
            trusted_proxies: config.server.trusted_proxies.clone(),
        };
        gatehouse_core::telemetry::metrics::configure(
            config.metrics.enabled,
            config.metrics.top_organizations,
        );
        let state = http_state(config, &kernel).await;
        let metrics = metrics_listener(config, &state, &settings)?;
        let (router, admin_router) = if config.server.admin_listen.is_some() {
            (
                gatehouse_http::router_for(state.clone(), &settings, Surface::Tenant),
                Some(gatehouse_http::router_for(
                    state.clone(),
                    &settings,
                    Surface::Admin,
                )),
            )
        } else {
            (gatehouse_http::router(state.clone(), &settings), None)
        };
        // Kept here so the H1 probe's weak handle stays valid while the app lives.
        let probed_router = Arc::new(router.clone());
        let posture = Arc::new(crate::posture::build(&crate::posture::Facts {
            config,
            kernel: &kernel,
            state: &state,
            router: Arc::downgrade(&probed_router),
            postgres,
            tls: tls.clone(),
            clock,
        })?);
        let _ = state.posture.set(Arc::clone(&posture));
        Ok(Self {
            router,
            probed_router,
            posture,
            admin_router,
            kernel,
            bounds: crate::conn::Bounds {
                settings: config.connections,
                request_timeout: config.server.request_timeout,
                exempt: config.server.trusted_proxies.clone(),
            },
            shutdown_grace: config.server.shutdown_grace,
            reencrypt_every: config.keyring.reencrypt_every,
            reencrypt_batch: config.keyring.reencrypt_batch,
            checkpoint_every: config.checkpoint_every,
            mail_transport,
            mail_poll: config.mail.poll,
            webhook_poll: config.webhooks.poll,
            connector_poll: config.oauth.connector_poll,
            purge_every: config.lifecycle.purge_every,
            prune_every: config.lifecycle.prune_every,
            tls,
            metrics,
            #[cfg(feature = "otlp")]
            spans,
        })
    }

    #[must_use]
    pub fn kernel(&self) -> &Arc<Kernel> {
        &self.kernel
    }

    /// The posture registry: every control's live state (`gatehouse posture`, `/admin/v1/posture`).
    #[must_use]
    pub fn posture(&self) -> &Arc<gatehouse_core::posture::Posture> {
        &self.posture
    }

    /// The metrics listener's address, when `metrics.listen` is set.
    #[must_use]
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The TLS configuration in use when `[tls]` is set; its `reload` is what SIGHUP and a
    /// change to the files call while serving.
    #[must_use]
    pub fn tls(&self) -> Option<&Arc<crate::tls::TlsReloader>> {
        self.tls.as_ref()
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests finish
    /// for up to the configured grace period.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.serve_with_admin(listener, None, shutdown).await
    }

    /// Like [`App::serve`]; with `admin_listen` configured, `admin` serves `/admin/v1` (and the
    /// health probes) while `listener` serves everything else.
    pub async fn serve_with_admin(
        mut self,
        listener: TcpListener,
        admin: Option<TcpListener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (admin_stop, admin_stopped) = tokio::sync::watch::channel(false);
        let admin_server = match (admin, self.admin_router.take()) {
            (Some(l), Some(router)) => {
                let mut stopped = admin_stopped;
                Some(tokio::spawn(crate::conn::serve(
                    l,
                    self.tls.clone(),
                    router,
                    self.bounds.clone(),
                    async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    },
                )))
            }
            _ => None,
        };
        let metrics_server = match self.metrics.take() {
            Some((l, router)) => {
                let mut stopped = admin_stop.subscribe();
                let l = TcpListener::from_std(l)?;
                tracing::info!(address = ?l.local_addr().ok(), "metrics listening on /metrics");
                Some(tokio::spawn(crate::conn::serve(
                    l,
                    None,
                    router,
                    self.bounds.clone(),
                    async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    },
                )))
            }
            None => None,
        };
        // One name for this process in every lease it takes (see `gatehouse_core::jobs`).
        let instance = crate::jobs::instance_id();
        let job = tokio::spawn(crate::jobs::reencryption(
            Arc::clone(&self.kernel),
            instance.clone(),
            self.reencrypt_every,
            self.reencrypt_batch,
        ));
        let checkpoints = tokio::spawn(crate::jobs::checkpoints(
            Arc::clone(&self.kernel),
            instance.clone(),
            self.checkpoint_every,
        ));
        let sessions = tokio::spawn(crate::jobs::session_job(Arc::clone(&self.kernel)));
        let (stop_security_events, security_events_stop) = tokio::sync::oneshot::channel();
        let security_events = tokio::spawn(crate::jobs::security_events_job(
            Arc::clone(&self.kernel),
            security_events_stop,
        ));
        let tls_reload = self
            .tls
            .clone()
            .map(|t| tokio::spawn(crate::tls::reload_job(t)));
        let mail = tokio::spawn(crate::jobs::mail_job(
            Arc::clone(&self.kernel),
            Arc::clone(&self.mail_transport),
            self.mail_poll,
        ));
        let webhooks = tokio::spawn(crate::jobs::webhook_job(
            Arc::clone(&self.kernel),
            self.webhook_poll,
        ));
        let connectors = tokio::spawn(crate::jobs::connectors(
            Arc::clone(&self.kernel),
            instance.clone(),
            self.connector_poll,
        ));
        let sso_domains = tokio::spawn(crate::jobs::sso_domains(
            Arc::clone(&self.kernel),
            instance.clone(),
        ));
        let lifecycle = tokio::spawn(crate::lifecycle_job::run(
            Arc::clone(&self.kernel),
            instance.clone(),
            self.purge_every,
            self.prune_every,
        ));
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutdown requested; draining in-flight requests");
            let _ = admin_stop.send(true);
            let _ = stopping_tx.send(());
        };
        // Plain HTTP, or TLS when `[tls]` is configured; bounded per connection either way.
        let server = crate::conn::serve(
            listener,
            self.tls.clone(),
            self.router,
            self.bounds.clone(),
            signal,
        );
        let grace = self.shutdown_grace;
        let deadline = async move {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let out = tokio::select! {
            result = server => {
                tracing::info!("stopped");
                result
            }
            () = deadline => {
                tracing::warn!(grace_secs = grace.as_secs(), "requests still running after the grace period; stopping anyway");
                Ok(())
            }
        };
        if let Some(admin) = admin_server {
            // Already told to stop with the main listener; it drains within the same grace.
            match tokio::time::timeout(grace, admin).await {
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the operators' listener failed"),
                Ok(_) => {}
                Err(_) => tracing::warn!("the operators' listener was still draining; stopping"),
            }
        }
        if let Some(m) = metrics_server {
            // Scrapes are short: a second is plenty, and a stuck scraper must not hold us up.
            if !matches!(
                tokio::time::timeout(Duration::from_secs(1), m).await,
                Ok(Ok(Ok(())))
            ) {
                tracing::warn!("the metrics listener did not stop cleanly");
            }
        }
        // Re-encryption commits batch by batch; stopping between batches loses nothing.
        job.abort();
        checkpoints.abort();
        sessions.abort();
        mail.abort();
        webhooks.abort();
        connectors.abort();
        sso_domains.abort();
        lifecycle.abort();
        // Handed over now rather than when they run out: another instance takes each job over
        // at its next tick.
        self.kernel.release_leases(&instance).await;
        if let Some(j) = tls_reload {
            j.abort();
        }
        if let Err(e) = self.kernel.auth().flush_session_activity().await {
            tracing::warn!(error = %e, "could not record the last sessions' activity");
        }
        if let Err(e) = self.kernel.api_keys().flush_usage().await {
            tracing::warn!(error = %e, "could not record the last API-key use");
        }
        if let Err(e) = self.kernel.connectors().flush_usage().await {
            tracing::warn!(error = %e, "could not record the last connector hand-outs");
        }
        if let Err(e) = self.kernel.share_links().flush_opens().await {
            tracing::warn!(error = %e, "could not record the last share-link opens");
        }
        // Told to stop rather than aborted: a flush under way finishes (its minutes are already
        // taken, so an abort would lose them). The minute still open is written next; its
        // events would otherwise go with the process.
        let _ = stop_security_events.send(());
        if tokio::time::timeout(Duration::from_secs(10), security_events)
            .await
            .is_err()
        {
            tracing::warn!("the security-events job was still writing after 10 s; stopping");
        }
        if let Err(e) = self.kernel.flush_security_events(true).await {
            tracing::warn!(error = %e, "could not record the last security events");
        }
        // Every request has ended, so every span is queued: send them before the process goes.
        #[cfg(feature = "otlp")]
        if let Some(spans) = self.spans.take() {
            crate::otlp::shutdown(spans).await;
        }
        out
    }
}

/// The keyring over the store, unwrapping (or, on a new store, creating) the data keys with the
/// master key. A key held in memory is dropped by the keyring's `LocalKek` once it has made its
/// key schedule.
async fn start_keyring(
    config: &Config,
    (kek, key_source): (Arc<dyn MasterKek>, KeySource),
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
) -> Result<(Arc<Keyring>, KeySource), StartError> {
    let described = kek.describe();
    let keyring = Keyring::start_with(
        Arc::clone(store),
        Arc::clone(clock),
        kek,
        config.keyring.keyring,
    )
    .await
    .map_err(|e| StartError(format!("master key ({described}): {e}")))?;
    Ok((Arc::new(keyring), key_source))
}

/// The configured master key as the keyring uses it: in memory, or a handle on an HSM key.
pub(crate) async fn master_kek(
    config: &Config,
) -> Result<(Arc<dyn MasterKek>, KeySource), StartError> {
    if let MasterKey::Pkcs11(settings) = &config.master_key {
        let kek = open_pkcs11(settings).await?;
        return Ok((kek, KeySource::Pkcs11));
    }
    let (key, source) = master_key(config)?;
    let kek = LocalKek::new(&key).map_err(|e| StartError(format!("master key: {e}")))?;
    Ok((Arc::new(kek), source))
}

/// Loads the PKCS#11 module, logs in and finds the key, off the async executor (module loading
/// and a network HSM's login block).
pub(crate) async fn open_pkcs11(
    settings: &gatehouse_infra::pkcs11::Pkcs11Settings,
) -> Result<Arc<dyn MasterKek>, StartError> {
    let settings = settings.clone();
    let kek =
        tokio::task::spawn_blocking(move || gatehouse_infra::pkcs11::Pkcs11Kek::open(&settings))
            .await
            .map_err(|e| StartError(format!("master_key_pkcs11: {e}")))?
            .map_err(StartError)?;
    tracing::info!(key = %kek.describe(), "the master key is in an HSM (PKCS#11)");
    Ok(Arc::new(kek))
}

fn start_password_pool(config: &Config) -> Result<PasswordPool, StartError> {
    let p = &config.password_hashing;
    PasswordPool::start_with_pepper(
        p.workers,
        p.queue,
        p.argon2,
        p.pepper.clone().map(gatehouse_crypto::Pepper::new),
    )
    .map_err(|e| StartError(e.to_string()))
}

/// Identity settings, revocation fan-out, and the sign-in lockouts (off with rate limits off).
fn identity(config: &Config) -> Identity {
    let identity = Identity::new(config.identity.clone(), fanout(config));
    match &config.rate_limits {
        Some(r) => identity
            .with_lockouts(Some(r.lockouts))
            .with_lockout_store(lockout_store(config)),
        None => identity.with_lockouts(None),
    }
}

/// Where lockout counts and mail throttles live: Redis (shared by every instance, counting in
/// this process while it is away) when rate limits are kept there, else this process.
fn lockout_store(config: &Config) -> Arc<dyn gatehouse_core::limits::LockoutStore> {
    use crate::config::LimitStore;
    let memory = || Arc::new(gatehouse_core::limits::MemoryLockouts::default());
    let store = config.rate_limits.as_ref().map(|r| r.store);
    match (store, &config.redis_url) {
        (Some(LimitStore::Redis), Some(url)) => {
            match url
                .client()
                .and_then(|c| gatehouse_infra::RedisLockouts::new(&c, &config.redis_key_prefix))
            {
                Ok(redis) => Arc::new(gatehouse_infra::FallbackLockouts::new(Arc::new(redis))),
                Err(e) => {
                    tracing::warn!(error = %e, "redis_url is not usable; lockouts are per instance");
                    memory()
                }
            }
        }
        _ => memory(),
    }
}

/// With `redis_url`: applies the revocations other instances publish.
fn subscribe_to_revocations(config: &Config, kernel: &Arc<Kernel>) -> Result<(), StartError> {
    let Some(url) = &config.redis_url else {
        return Ok(());
    };
    let client = url
        .client()
        .map_err(|e| StartError(format!("redis_url: {e}")))?;
    let weak = Arc::downgrade(kernel);
    let apply = Arc::new(move |r| {
        if let Some(k) = weak.upgrade() {
            k.auth().apply_remote_revocation(r);
        }
    });
    // The subscriber runs for the life of the process.
    drop(gatehouse_infra::fanout::subscribe(
        &client,
        &revocation_channel(config),
        apply,
    ));
    Ok(())
}

/// What every handler shares: the kernel and the edge's settings.
async fn http_state(config: &Config, kernel: &Arc<Kernel>) -> AppState {
    let service_secrets: Vec<_> = config
        .service_secrets
        .iter()
        .map(|s| (s.name.clone(), s.secret.clone()))
        .collect();
    let service_apps: Vec<_> = config
        .service_secrets
        .iter()
        .filter_map(|s| Some((s.name.clone(), s.app.clone()?)))
        .collect();
    let state = AppState::new(Arc::clone(kernel))
        .with_revocation_fanout(config.redis_url.is_some())
        .with_otlp(config.otlp.is_some())
        .with_service_secrets(ServiceSecrets::new(&service_secrets).with_apps(&service_apps))
        .with_trusted_proxies(config.server.trusted_proxies.clone())
        .with_transit_max_batch(config.transit_max_batch)
        .with_security_txt(config.security_txt.clone())
        .with_trust_page(config.trust_page.clone());
    match &config.rate_limits {
        Some(r) => state.with_rate_limits(limit_store(config).await, r.policy.clone()),
        None => state,
    }
}

/// With `metrics.listen`: the metrics listener (bound now, so its address is known) and router.
fn metrics_listener(
    config: &Config,
    state: &AppState,
    settings: &HttpSettings,
) -> Result<Option<(std::net::TcpListener, axum::Router)>, StartError> {
    match config.metrics.listen {
        Some(addr) if config.metrics.enabled => {
            let l = std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| StartError(format!("metrics.listen: cannot bind {addr}: {e}")))?;
            Ok(Some((
                l,
                gatehouse_http::metrics_router(state.clone(), settings),
            )))
        }
        _ => Ok(None),
    }
}

fn ensure_data_dir(dir: &Path) -> Result<(), StartError> {
    if dir.is_dir() {
        return Ok(());
    }
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| StartError(format!("data_dir: cannot create {}: {e}", dir.display())))?;
    tracing::info!(path = %dir.display(), "created the data directory (mode 0700)");
    Ok(())
}

pub(crate) fn master_key(config: &Config) -> Result<(Key32, KeySource), StartError> {
    match &config.master_key {
        MasterKey::Environment(k) => Ok((k.clone(), KeySource::Environment)),
        MasterKey::File(_, k) => Ok((k.clone(), KeySource::File)),
        MasterKey::Shares => Err(StartError(
            "master_key = \"shares\": the key exists only as operators' shares, which only \
             `gatehouse serve` takes (it starts sealed; submit them with `gatehouse unseal`)"
                .into(),
        )),
        MasterKey::Pkcs11(_) => Err(StartError(
            "master key: the key is in an HSM and has no bytes to read".to_owned(),
        )),
        MasterKey::GeneratedDevelopment(path) => {
            let (key, generated) = keyfile::load_or_generate(path)
                .map_err(|e| StartError(format!("master key: {e}")))?;
            if generated {
                tracing::info!(path = %path.display(), "generated a development master key (mode 0600)");
            }
            tracing::warn!(
                path = %path.display(),
                "USING A GENERATED DEVELOPMENT MASTER KEY. Production must supply its own master key \
                 (GATEHOUSE_MASTER_KEY or master_key_file, with mode = \"production\"); anyone who \
                 can read this file can read everything Gatehouse seals with it."
            );
            Ok((key, KeySource::GeneratedDevelopmentFile))
        }
    }
}

pub(crate) async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartError> {
    open_store_with_handle(config).await.map(|(s, _)| s)
}

/// The store, and on PostgreSQL its concrete handle too (the posture report reads its catalog).
async fn open_store_with_handle(
    config: &Config,
) -> Result<(Arc<dyn Store>, Option<PostgresStore>), StartError> {
    let max = config.database.max_connections;
    match &config.database.database {
        Database::Sqlite { url } => {
            let store = SqliteStore::connect(url, max)
                .await
                .map_err(|e| StartError(format!("database_url: cannot open {url}: {e}")))?;
            if config.database.migrate_on_start {
                store
                    .migrate()
                    .await
                    .map_err(|e| StartError(format!("database: {e}")))?;
                tracing::info!(url = %url, "sqlite database ready (WAL, migrations applied)");
            }
            Ok((Arc::new(store), None))
        }
        Database::Postgres { url, migration_url } => {
            let shown = crate::config::redact_url(url);
            if let (true, Some(owner)) = (config.database.migrate_on_start, migration_url) {
                PostgresStore::migrate(owner)
                    .await
                    .map_err(|e| StartError(format!("database_migration_url: {e}")))?;
                tracing::info!("postgres migrations applied");
            }
            let store = PostgresStore::connect(url, max)
                .await
                .map_err(|e| StartError(format!("database_url: cannot connect to {shown}: {e}")))?;
            match store
                .rls_posture()
                .await
                .map_err(|e| StartError(format!("database_url: {e}")))?
            {
                RlsPosture::Enforced { role } => {
                    tracing::info!(role = %role, "postgres connected; row-level security binds this role");
                }
                RlsPosture::Bypassed { role, reason } => {
                    let msg = format!(
                        "database_url: the role {role} is not bound by row-level security because \
                         {reason}; connect as gatehouse_app (or a member of it) and run migrations \
                         with database_migration_url"
                    );
                    if config.mode == Mode::Production {
                        return Err(StartError(msg));
                    }
                    tracing::warn!("{msg} (allowed in development mode only)");
                }
            }
            Ok((Arc::new(store.clone()), Some(store)))
        }
    }
}

/// The limiter's store: in-process, or Redis with the in-process fallback. A Redis that cannot be
/// reached, at start or later, is not fatal: limits are kept in-process until it answers.
async fn limit_store(config: &Config) -> Arc<dyn gatehouse_core::limits::RateLimitStore> {
    use crate::config::LimitStore;
    let memory = || Arc::new(gatehouse_core::limits::MemoryLimiter::default());
    let store = config.rate_limits.as_ref().map(|r| r.store);
    match (store, &config.redis_url) {
        (Some(LimitStore::Redis), Some(url)) => {
            match url
                .client()
                .and_then(|c| gatehouse_infra::RedisLimiter::new(&c, &config.redis_key_prefix))
            {
                Ok(redis) => Arc::new(gatehouse_infra::FallbackLimiter::new(Arc::new(redis))),
                Err(e) => {
                    tracing::warn!(error = %e, "redis_url is not usable; rate limits are per instance");
                    memory()
                }
            }
        }
        _ => memory(),
    }
}

fn revocation_channel(config: &Config) -> String {
    format!("{}revocations", config.redis_key_prefix)
}

/// Where revocations go besides this instance: Redis pub/sub when `redis_url` is set.
fn fanout(config: &Config) -> Arc<dyn gatehouse_core::identity::RevocationFanout> {
    match &config.redis_url {
        Some(url) => {
            match url
                .client()
                .and_then(|c| gatehouse_infra::RedisFanout::new(&c, &revocation_channel(config)))
            {
                Ok(f) => Arc::new(f),
                Err(e) => {
                    tracing::warn!(error = %e, "redis_url is not usable; revocations stay in this instance");
                    Arc::new(LocalOnly)
                }
            }
        }
        None => Arc::new(LocalOnly),
    }
}
