//! B. Machine identity and C. Authorization and isolation.

use std::sync::Arc;

use gatehouse_core::posture::{Finding, Probe};
use gatehouse_core::posture_settings;

use super::{Facts, probe};
use crate::config::{Database, LimitStore, Mode};

pub(super) fn probes(f: &Facts<'_>) -> Vec<Arc<dyn Probe>> {
    vec![b1(), b2(f), b3(f), c1(f), c2(f), c3(), c4(), c5(f), c6(f)]
}

fn b1() -> Arc<dyn Probe> {
    let settings = posture_settings! {
        "format" => "gk_{env}_{random}{checksum}",
        "stored" => "SHA-256 digest",
    };
    probe("B1", true, settings, || async {
        // A key made now must pass the format's checksum, and one changed character must not.
        let Ok(key) = gatehouse_core::api_keys::format::generate(
            gatehouse_core::api_keys::format::KeyEnv::Live,
        ) else {
            return Finding::fail(
                "No API key could be generated: the system's random source failed.",
            );
        };
        let text = key.expose();
        let mut altered = text.to_owned();
        let last = altered.pop();
        altered.push(if last == Some('A') { 'B' } else { 'A' });
        match (
            gatehouse_core::api_keys::format::is_well_formed(text),
            gatehouse_core::api_keys::format::is_well_formed(&altered),
        ) {
            (true, false) => Finding::pass(
                "A key generated now carries a valid checksum, and an altered one is refused before any lookup.",
            ),
            _ => Finding::fail(
                "The API-key checksum does not tell a generated key from an altered one.",
            ),
        }
    })
}

fn b3(f: &Facts<'_>) -> Arc<dyn Probe> {
    let oauth = &f.config.oauth;
    let public_url = oauth.settings.public_url.clone();
    let providers: Vec<String> = oauth
        .settings
        .providers
        .iter()
        .map(|p| p.name.clone())
        .collect();
    let enabled = !public_url.is_empty();
    let settings = posture_settings! {
        "public_url" => public_url,
        "platform_providers" => providers,
        "pkce" => "S256",
        "state_lifetime_secs" => gatehouse_core::oauth::STATE_TTL.whole_seconds(),
        "refresh_ahead_secs" => oauth.connectors.refresh_ahead.whole_seconds(),
        "allow_loopback" => oauth.settings.destinations.allow_loopback,
    };
    let kernel = Arc::clone(f.kernel);
    probe("B3", enabled, settings, move || {
        let kernel = Arc::clone(&kernel);
        async move {
            if !enabled {
                return Finding::not_applicable(
                    "oauth.public_url is not set, so no connector can be started.",
                );
            }
            // States are link-key HMACs: the current key must sign and verify.
            let parts: [&[u8]; 2] = [b"gatehouse.posture.b3\0", b"probe"];
            let signed = kernel.keyring().link_tag(&parts);
            let verifies = match &signed {
                Ok((v, tag)) => kernel.keyring().link_verifies(*v, &parts, tag).await,
                Err(_) => false,
            };
            if !verifies {
                return Finding::fail(
                    "The link keys do not sign and verify: no state can be issued or checked.",
                );
            }
            let now = kernel.clock().now();
            let overdue = match kernel
                .store()
                .connectors_due(now - time::Duration::minutes(10), 100)
                .await
            {
                Ok(o) => o.len(),
                Err(e) => return Finding::fail(format!("The connectors cannot be read: {e}")),
            };
            if overdue > 0 {
                return Finding::warn(format!(
                    "{overdue} active connector(s) (counting up to 100) are more than ten minutes past their refresh: is the connectors job running on some instance?"
                ))
                .figure("overdue_connectors", overdue);
            }
            Finding::pass("States sign and verify with the current link key, and no active connector is more than ten minutes past its refresh (counting up to 100).")
                .figure("overdue_connectors", 0)
        }
    })
}

fn b2(f: &Facts<'_>) -> Arc<dyn Probe> {
    let names: Vec<String> = f
        .config
        .service_secrets
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let mut bound: Vec<String> = f
        .config
        .service_secrets
        .iter()
        .filter_map(|s| s.app.clone())
        .collect();
    bound.sort();
    bound.dedup();
    let count = names.len();
    let settings = posture_settings! {
        "service_secrets" => names,
        "bound_apps" => bound,
        "header" => "X-Service-Auth",
        "comparison" => "constant time",
    };
    let kernel = Arc::clone(f.kernel);
    probe("B2", count > 0, settings, move || {
        let kernel = Arc::clone(&kernel);
        let bound = bound.clone();
        async move {
            if count == 0 {
                return Finding::not_applicable(
                    "No service secret is configured, so /internal/v1 is off.",
                );
            }
            // Bindings are not looked up at load: an app not (or no longer) registered leaves its
            // services refused on every person's token until an operator registers it.
            let missing = match kernel.apps().unregistered(&bound).await {
                Ok(missing) => missing,
                Err(e) => return Finding::fail(format!("The app registry cannot be read: {e}")),
            };
            if !missing.is_empty() {
                return Finding::warn(format!(
                    "service_auth.apps binds services to {} audience(s) no app is registered with ({}): their calls with a person's token are refused until an operator registers the app (POST /admin/v1/apps).",
                    missing.len(),
                    missing.join(", ")
                ))
                .figure("unregistered_apps", missing.len());
            }
            Finding::by_design(format!(
                "/internal/v1 accepts {count} named service secret(s), compared in constant time; user tokens never pass for them."
            ))
            .figure("service_secrets", count)
        }
    })
}

fn c1(f: &Facts<'_>) -> Arc<dyn Probe> {
    let product = f.kernel.product();
    let permissions = product.permissions.len();
    let record_types = product.record_types.len();
    let settings = posture_settings! {
        "builtin_roles" => ["owner", "admin", "member", "viewer"],
        "product_permissions" => permissions,
        "record_types" => record_types,
        "step_up_permissions" => f.config.identity.step_up_permissions,
        "step_up_window_secs" => f.config.identity.step_up_window.whole_seconds(),
    };
    probe("C1", true, settings, move || async move {
        Finding::by_design(format!(
            "Roles are permission sets per organisation; {permissions} product permission(s) declared, sensitive ones gated."
        ))
    })
}

fn c2(f: &Facts<'_>) -> Arc<dyn Probe> {
    let backend = match &f.config.database.database {
        Database::Sqlite { .. } => "sqlite",
        Database::Postgres { .. } => "postgres",
    };
    let settings = posture_settings! {
        "backend" => backend,
        "scoped_queries" => "every store call takes a tenant scope",
        "row_level_security" => backend == "postgres",
    };
    let pg = f.postgres.clone();
    probe("C2", true, settings, move || {
        let pg = pg.clone();
        async move {
            match pg {
                None => Finding::warn(
                    "On SQLite every query is scoped by organisation in the store, but the database cannot enforce it: PostgreSQL's row-level security is the second layer.",
                ),
                Some(pg) => super::data::rls_finding(&pg).await,
            }
        }
    })
}

fn c3() -> Arc<dyn Probe> {
    probe(
        "C3",
        true,
        posture_settings! {"levels" => ["private", "organization", "public"]},
        || async {
            Finding::by_design(
                "Each record is private (its owner and listed agents), organisation-wide, or public; the check decides by level.",
            )
        },
    )
}

fn c4() -> Arc<dyn Probe> {
    probe(
        "C4",
        true,
        posture_settings! {"grants" => "created by the granting organisation's admins, optional expiry and type filter"},
        || async {
            Finding::by_design(
                "Cross-organisation access exists only through grants the granting organisation made.",
            )
        },
    )
}

fn c5(f: &Facts<'_>) -> Arc<dyn Probe> {
    let production = f.config.mode == Mode::Production;
    let Some(r) = &f.config.rate_limits else {
        return probe(
            "C5",
            false,
            posture_settings! {"enabled" => false},
            move || async move {
                Finding::warn(if production {
                    "Rate limits are off."
                } else {
                    "Rate limits and sign-in lockouts are off (development mode only; production refuses this)."
                })
            },
        );
    };
    let store = match r.store {
        LimitStore::Memory => "memory",
        LimitStore::Redis => "redis",
    };
    let settings = posture_settings! {
        "enabled" => true,
        "store" => store,
        "per_user_per_minute" => r.policy.per_user,
        "default_plan" => r.policy.default_plan,
        "plans" => r.policy.plans,
    };
    let limits = f.state.rate_limits.clone();
    let kernel = Arc::clone(f.kernel);
    probe("C5", true, settings, move || {
        let limits = limits.clone();
        let kernel = Arc::clone(&kernel);
        async move {
            let limiter = limits.as_ref().map_or("none", |l| l.store.kind());
            let lockouts = kernel.lockout_store_kind();
            let finding = if limiter == "memory-fallback" || lockouts == "memory-fallback" {
                Finding::warn(format!(
                    "Limits hold, but Redis is unreachable: this instance counts alone (limiter: {limiter}, lockouts: {lockouts})."
                ))
            } else {
                Finding::pass(format!(
                    "Requests are limited per address, user, API key and plan; sign-in failures lock out (limiter: {limiter}, lockouts: {lockouts})."
                ))
            };
            finding
                .figure("limiter_store", limiter)
                .figure("lockout_store", lockouts)
        }
    })
}

fn c6(f: &Facts<'_>) -> Arc<dyn Probe> {
    let origins = f.config.server.cors_allowed_origins.clone();
    let enabled = !origins.is_empty();
    let n = origins.len();
    probe(
        "C6",
        enabled,
        posture_settings! {"allowed_origins" => origins},
        move || async move {
            if n == 0 {
                Finding::by_design(
                    "No cross-origin caller is allowed: browsers on other origins cannot read responses.",
                )
            } else {
                Finding::by_design(format!(
                    "Cross-origin requests are answered for {n} listed origin(s) only; a wildcard is refused at load."
                ))
            }
        },
    )
}
