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
use gatehouse_core::posture::{Finding, FnProbe, Posture, PostureBuilder, Probe, Settings};
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
    let probes: Vec<Arc<dyn Probe>> = [
        identity::probes(facts),
        access::probes(facts),
        data::probes(facts),
        operations::probes(facts),
        links::probes(facts),
    ]
    .concat();
    let h3 = h3(&probes, facts.config.posture_check_deadline);
    let mut builder = PostureBuilder::new().with_deadline(facts.config.posture_check_deadline);
    builder.register_all(probes).register(h3);
    builder
        .build(Arc::clone(&facts.clock))
        .map_err(|e| StartError(format!("posture registry: {e}")))
}

/// A duration as whole seconds, for settings.
pub(crate) fn secs(d: time::Duration) -> i64 {
    d.whole_seconds()
}

/// H3 reports on the registry itself: every other built control has a probe (a claim without a
/// check would be a defect), and each report's checks run within their deadline.
fn h3(probes: &[Arc<dyn Probe>], deadline: std::time::Duration) -> Arc<dyn Probe> {
    use gatehouse_core::posture::catalogue;
    let unprobed: Vec<&'static str> = catalogue::all()
        .filter(|c| c.built.is_built() && c.id != "H3")
        .filter(|c| !probes.iter().any(|p| p.control() == c.id))
        .map(|c| c.id)
        .collect();
    let built = catalogue::all().filter(|c| c.built.is_built()).count();
    let settings = gatehouse_core::posture_settings! {
        "check_deadline_ms" => deadline.as_millis(),
        "surfaces" => ["gatehouse posture", "GET /admin/v1/posture"],
    };
    probe("H3", true, settings, move || {
        let unprobed = unprobed.clone();
        async move {
            if unprobed.is_empty() {
                Finding::pass(format!(
                    "Each of the {built} built controls reports its settings and a self-check made for this report."
                ))
                .figure("built_controls", built)
            } else {
                Finding::fail(format!(
                    "Built controls without a self-check: {}.",
                    unprobed.join(", ")
                ))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use gatehouse_core::posture::Verdict;

    #[tokio::test]
    async fn h3_fails_naming_each_built_control_left_without_a_probe() {
        let a1 = super::probe("A1", true, Default::default(), || async {
            gatehouse_core::posture::Finding::pass("x")
        });
        let f = super::h3(&[a1], std::time::Duration::from_millis(40))
            .check()
            .await;
        assert_eq!(f.verdict, Verdict::Fail);
        assert!(f.evidence.contains("A2, A3"), "{}", f.evidence);
        assert!(!f.evidence.contains("A1,"), "{}", f.evidence);
        assert!(!f.evidence.contains("H3"), "{}", f.evidence);
    }
}
