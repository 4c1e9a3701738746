//! H3: every built control's probe, registered from the layer that can see it: the typed
//! configuration, the kernel, the store adapter and the router. `build` is the one place they
//! are assembled; `tests/it/posture.rs` checks that no built control is left without one.
//!
//! A probe reports settings as configured (secrets as set or not set, never their values) and
//! checks what can be checked now: a request through the router (H1), the certificate in force
//! (D4), the database catalog (C2), the newest audit events against their signed checkpoint (E1),
//! the stored password hashes (A1). A check that reads data reads a bounded amount and says so.

mod access;
mod data;
mod identity;
mod links;
mod operations;

use std::future::Future;
use std::sync::{Arc, Weak};

use gatehouse_core::Kernel;
use gatehouse_core::posture::{FnProbe, Finding, Posture, PostureBuilder, Probe, Settings};
use gatehouse_http::AppState;

use crate::app::StartError;
use crate::config::Config;

/// What the probes read besides the configuration.
pub(crate) struct Facts<'a> {
    pub config: &'a Config,
    pub kernel: &'a Arc<Kernel>,
    pub state: &'a AppState,
    /// The router the main listener serves (H1 sends a request through it). Weak: the router
    /// holds the state that holds the registry.
    pub router: Weak<axum::Router>,
    /// The PostgreSQL store, when that is the backend (C2 reads its catalog).
    pub postgres: Option<gatehouse_store_postgres::PostgresStore>,
    pub tls: Option<Arc<crate::tls::TlsReloader>>,
    pub clock: Arc<dyn gatehouse_core::Clock>,
}

/// A probe whose check is `check`, run afresh at every report.
pub(crate) fn probe<F, Fut>(
    control: &'static str,
    enabled: bool,
    settings: Settings,
    check: F,
) -> Arc<dyn Probe>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Finding> + Send + 'static,
{
    Arc::new(FnProbe::new(control, enabled, settings, check))
}

/// Every built control's probe, checked against the catalogue.
pub(crate) fn build(facts: &Facts<'_>) -> Result<Posture, StartError> {
    let mut builder = PostureBuilder::new();
    builder
        .register_all(identity::probes(facts))
        .register_all(access::probes(facts))
        .register_all(data::probes(facts))
        .register_all(operations::probes(facts))
        .register_all(links::probes(facts));
    builder
        .build(Arc::clone(&facts.clock))
        .map_err(|e| StartError(format!("posture registry: {e}")))
}

/// A duration as whole seconds, for settings.
pub(crate) fn secs(d: time::Duration) -> i64 {
    d.whole_seconds()
}
