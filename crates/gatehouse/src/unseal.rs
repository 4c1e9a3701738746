//! D2: `gatehouse keys split` and the sealed start (`master_key = "shares"`).
//!
//! A sealed process holds no keyring, so nothing that needs one exists yet: it serves
//! `gatehouse_http::sealed_router` (health, unseal, a 503 `sealed` problem for the rest) on its
//! listeners. When the shares held reach their threshold they are combined, dropped (zeroed), and
//! the key is checked against the database's master-key versions; the full `App` is then built
//! with it and the listeners are handed over to it still bound (`conn::serve_then_hand_back`).

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gatehouse_core::keyring::Keyring;
use gatehouse_core::store::{KeyState, Store};
use gatehouse_crypto::SecretString;
use gatehouse_http::{HttpSettings, Submitted, UnsealProgress, UnsealRefusal, Unsealer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::app::App;
use crate::config::{Config, MasterKey};
use crate::shares::{self, KeyId, Share, ShareError};

/// Submissions one address may make per window: a few operators behind one proxy fit easily;
/// guessing a share (40-bit checksum, then a 256-bit key check) does not.
const PER_ADDRESS: u32 = 10;
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at once; past this, new addresses wait for old windows to end.
const MAX_ADDRESSES: usize = 4096;

/// `gatehouse keys split`: prints each share once. The key comes from `master_key_file` only: the
/// procedure ends with deleting that one file, which a key in the environment or the generated
/// development key (which anyone with the data directory holds) would not make true.
pub(crate) fn split_command(
    config: &Config,
    keyring: &Keyring,
    count: u8,
    threshold: u8,
) -> Result<(), String> {
    let MasterKey::File(path, key) = &config.master_key else {
        return Err(
            "keys split reads the master key from master_key_file; configure the key there \
             (GATEHOUSE_MASTER_KEY and the generated development key are not split)"
                .into(),
        );
    };
    let texts = shares::split(key, count, threshold).map_err(|e| e.to_string())?;
    let id = KeyId::of_key(key);
    let mut out = std::io::stdout().lock();
    let mut line = |text: &str| writeln!(out, "{text}").map_err(|e| e.to_string());
    line(&format!(
        "# {count} shares of master key {id} (version {}); any {threshold} rebuild it.",
        keyring.kek_version()
    ))?;
    line("# Hand each share to a different operator now: they are printed once and kept nowhere.")?;
    for text in &texts {
        line(text.expose())?;
    }
    line(&format!(
        "# Then delete {} and set master_key = \"shares\" in the configuration; `gatehouse \
         serve` starts sealed until {threshold} operators run `gatehouse unseal`.",
        path.display()
    ))
}

/// `serve` with `master_key = "shares"`: sealed until enough shares arrive, then the full
/// application on the same listeners until `shutdown`.
pub async fn serve_sealed(
    config: &Config,
    listener: TcpListener,
    admin: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let known = known_keys(config).await?;
    let (unsealed_tx, unsealed_rx) = oneshot::channel::<App>();
    let (switched_tx, switched_rx) = tokio::sync::watch::channel(false);
    let unsealer: Arc<dyn Unsealer> = Arc::new(Sealed(Arc::new(Inner {
        config: config.clone(),
        known,
        pending: tokio::sync::Mutex::new(Vec::new()),
        progress: Mutex::new(UnsealProgress {
            sealed: true,
            threshold: None,
            received: 0,
        }),
        limits: Mutex::new(HashMap::new()),
        unsealed: Mutex::new(Some(unsealed_tx)),
        switched: switched_rx,
    })));
    let tls = match &config.tls {
        Some(s) => Some(Arc::new(
            crate::tls::TlsReloader::load(s).map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    let settings = sealed_settings(config);
    let bounds = crate::conn::Bounds {
        settings: config.connections,
        request_timeout: config.server.request_timeout,
        exempt: config.server.trusted_proxies.clone(),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    // The unseal endpoint lives where the operator API does: the operators' listener when there
    // is one, otherwise the only listener.
    let main = tokio::spawn(crate::conn::serve_then_hand_back(
        listener,
        tls.clone(),
        gatehouse_http::sealed_router(Arc::clone(&unsealer), &settings, admin.is_none()),
        bounds.clone(),
        stopped(stop_rx.clone()),
    ));
    let admin = admin.map(|l| {
        tokio::spawn(crate::conn::serve_then_hand_back(
            l,
            tls,
            gatehouse_http::sealed_router(Arc::clone(&unsealer), &settings, true),
            bounds,
            stopped(stop_rx),
        ))
    });
    tracing::warn!(
        "SEALED: master_key = \"shares\"; every request is refused with 503 `sealed` until \
         enough operators submit their shares (gatehouse unseal)"
    );
    let mut shutdown = Box::pin(shutdown);
    let app = tokio::select! {
        () = &mut shutdown => None,
        app = unsealed_rx => app.ok(),
    };
    let _ = stop_tx.send(true);
    let listener = main.await.map_err(|e| e.to_string())?;
    let admin = match admin {
        Some(t) => Some(t.await.map_err(|e| e.to_string())?),
        None => None,
    };
    let Some(app) = app else {
        tracing::info!("stopped while sealed");
        return Ok(());
    };
    // The sealed servers accept nothing more: the unsealing request may now answer, and a
    // client's next connection waits in the backlog for the application.
    let _ = switched_tx.send(true);
    tracing::info!("unsealed: serving");
    app.serve_with_admin(listener, admin, shutdown)
        .await
        .map_err(|e| format!("server error: {e}"))
}

/// The ids of the master-key versions the database accepts. A database without one has nothing
/// a share could be checked against, so a sealed start needs one registered first (`keys split`
/// does that, since it starts the keyring with the key it splits).
async fn known_keys(config: &Config) -> Result<Vec<KeyId>, String> {
    let store: Arc<dyn Store> = crate::app::open_store(config)
        .await
        .map_err(|e| e.to_string())?;
    let mut tx = store.begin_read().await.map_err(|e| e.to_string())?;
    let versions = tx.kek_versions().await.map_err(|e| e.to_string())?;
    drop(tx);
    let known: Vec<KeyId> = versions
        .iter()
        .filter(|v| v.state != KeyState::Retired)
        .map(|v| KeyId::from_check_value(&v.check_value))
        .collect();
    if known.is_empty() {
        return Err(
            "master_key = \"shares\": the database has no master key registered to check shares \
             against; start once with master_key_file, then run `gatehouse keys split`"
                .into(),
        );
    }
    Ok(known)
}

/// The edge's settings without the parts that need a running application (OTLP spans).
fn sealed_settings(config: &Config) -> HttpSettings {
    HttpSettings {
        cors_origins: gatehouse_http::CorsOrigins::new(
            config
                .server
                .cors_allowed_origins
                .iter()
                .map(String::as_str),
        ),
        body_limit_bytes: config.server.body_limit_bytes,
        request_timeout: config.server.request_timeout,
        access_log: crate::logging::access_log(),
        span_sink: None,
        trusted_proxies: config.server.trusted_proxies.clone(),
    }
}

struct Sealed(Arc<Inner>);

struct Inner {
    config: Config,
    known: Vec<KeyId>,
    /// Shares held until the threshold; `Share` zeroes its bytes on drop. One submission at a
    /// time, so two operators racing cannot both combine.
    pending: tokio::sync::Mutex<Vec<Share>>,
    progress: Mutex<UnsealProgress>,
    limits: Mutex<HashMap<String, (Instant, u32)>>,
    /// Taken when the application is built; `None` afterwards.
    unsealed: Mutex<Option<oneshot::Sender<App>>>,
    /// True once the sealed listeners stopped accepting (handed on to the application).
    switched: tokio::sync::watch::Receiver<bool>,
}

impl Unsealer for Sealed {
    fn progress(&self) -> UnsealProgress {
        *self
            .0
            .progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn submit(&self, share: SecretString, from: IpAddr) -> Submitted<'_> {
        let inner = Arc::clone(&self.0);
        Box::pin(async move {
            inner.admit(from)?;
            // In a task of its own: a client that hangs up (or the request timeout) must not
            // cancel a half-built application with the shares already dropped.
            tokio::spawn(async move { inner.take(share).await })
                .await
                .unwrap_or(Err(UnsealRefusal::Failed))
        })
    }
}

impl Inner {
    /// The per-address limit: `PER_ADDRESS` submissions per `WINDOW`.
    fn admit(&self, from: IpAddr) -> Result<(), UnsealRefusal> {
        let now = Instant::now();
        let subject = gatehouse_core::limits::address_subject(from);
        let mut limits = self.limits.lock().unwrap_or_else(PoisonError::into_inner);
        if limits.len() >= MAX_ADDRESSES && !limits.contains_key(&subject) {
            limits.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let refused = || UnsealRefusal::RateLimited {
            retry_after_secs: u32::try_from(WINDOW.as_secs()).unwrap_or(60),
        };
        if limits.len() >= MAX_ADDRESSES && !limits.contains_key(&subject) {
            return Err(refused());
        }
        let entry = limits.entry(subject).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        if entry.1 >= PER_ADDRESS {
            return Err(refused());
        }
        entry.1 += 1;
        Ok(())
    }

    async fn take(&self, text: SecretString) -> Result<UnsealProgress, UnsealRefusal> {
        let mut pending = self.pending.lock().await;
        if self.sender_taken() {
            return Ok(UnsealProgress::unsealed());
        }
        let share = Share::parse(text.expose()).map_err(refusal)?;
        drop(text);
        if !self.known.contains(&share.key_id) {
            return Err(refusal(ShareError::WrongKey));
        }
        if let Some(first) = pending.first() {
            if first.key_id != share.key_id {
                return Err(UnsealRefusal::WrongKey(
                    "the share belongs to another master key than the shares already submitted"
                        .into(),
                ));
            }
            if first.threshold != share.threshold {
                return Err(refusal(ShareError::ThresholdMismatch));
            }
        }
        if pending.iter().any(|s| s.index == share.index) {
            return Err(refusal(ShareError::Duplicate(share.index)));
        }
        let threshold = share.threshold;
        pending.push(share);
        let received = u8::try_from(pending.len()).unwrap_or(u8::MAX);
        if received < threshold {
            self.set_progress(true, Some(threshold), received);
            tracing::info!(received, threshold, "unseal: share accepted");
            return Ok(self.progress_now());
        }
        // Every share leaves memory here, whatever the combining gives.
        let shares = std::mem::take(&mut *pending);
        let combined = shares::combine(&shares);
        drop(shares);
        self.set_progress(true, None, 0);
        let key = combined.map_err(|e| {
            tracing::warn!(error = %e, "unseal: the shares did not rebuild an accepted key; all dropped");
            UnsealRefusal::KeyRefused(format!(
                "{e}; every pending share was dropped: submit the shares again"
            ))
        })?;
        match App::build_unsealed(&self.config, key).await {
            Ok(app) => {
                let sender = self
                    .unsealed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                if let Some(tx) = sender {
                    let _ = tx.send(app);
                }
                // Answer only once the sealed listeners stopped accepting: a connection the
                // caller opens after this answer is then the application's, never one the
                // sealed server would accept and close at the switch (bounded, in case the
                // switch never comes).
                let mut switched = self.switched.clone();
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    switched.wait_for(|s| *s),
                )
                .await;
                self.set_progress(false, Some(threshold), received);
                tracing::info!(threshold, "unseal: master key rebuilt and accepted");
                Ok(self.progress_now())
            }
            Err(e) => {
                tracing::error!(error = %e, "unseal: the rebuilt key did not start the server; all shares dropped");
                Err(UnsealRefusal::Failed)
            }
        }
    }

    fn sender_taken(&self) -> bool {
        self.unsealed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    fn set_progress(&self, sealed: bool, threshold: Option<u8>, received: u8) {
        *self.progress.lock().unwrap_or_else(PoisonError::into_inner) = UnsealProgress {
            sealed,
            threshold,
            received,
        };
    }

    fn progress_now(&self) -> UnsealProgress {
        *self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn refusal(e: ShareError) -> UnsealRefusal {
    match e {
        ShareError::Malformed(_) | ShareError::Checksum => UnsealRefusal::Invalid(e.to_string()),
        ShareError::WrongKey | ShareError::ThresholdMismatch => {
            UnsealRefusal::WrongKey(e.to_string())
        }
        ShareError::Duplicate(_) => UnsealRefusal::Duplicate(e.to_string()),
        ShareError::TooFew { .. }
        | ShareError::NotRebuilt
        | ShareError::BadCounts
        | ShareError::Library(_) => UnsealRefusal::KeyRefused(e.to_string()),
    }
}
