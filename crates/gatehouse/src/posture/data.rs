//! D. Data protection, and the checks other families share (stored hashes, row-level security).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gatehouse_core::posture::{Finding, Probe, redacted};
use gatehouse_core::store::Store;
use gatehouse_core::{KeySource, posture_settings};

use super::{Facts, probe};
use crate::config::{Config, Database, MasterKey, Mode};

pub(super) fn probes(f: &Facts<'_>) -> Vec<Arc<dyn Probe>> {
    vec![d1(f), d2(f), d3(f), d4(f), d5(f)]
}

/// How many organisations' data keys one report reads (in rotation, so successive reports cover
/// them all), and how long it may spend on them.
const KEY_SAMPLE: u32 = 25;
const KEY_BUDGET: Duration = Duration::from_millis(20);

fn d1(f: &Facts<'_>) -> Arc<dyn Probe> {
    let source = f.kernel.key_source();
    let settings = posture_settings! {
        "cipher" => "AES-256-GCM, per-organisation data keys wrapped by the master key",
        "master_key_source" => source.as_str(),
        "master_key_version" => f.kernel.keyring().kek_version(),
        "reencrypt_every_secs" => f.config.keyring.reencrypt_every.as_secs(),
    };
    let kernel = Arc::clone(f.kernel);
    let next = Arc::new(AtomicUsize::new(0));
    probe("D1", true, settings, move || {
        let kernel = Arc::clone(&kernel);
        let next = Arc::clone(&next);
        async move { key_sample(&kernel, &next).await }
    })
}

/// D1's sample: up to [`KEY_SAMPLE`] organisations' data keys from the rotation's position,
/// read one page of ids at a time (never the whole list), within [`KEY_BUDGET`].
async fn key_sample(kernel: &gatehouse_core::Kernel, next: &AtomicUsize) -> Finding {
    let keyring = kernel.keyring();
    let read = async {
        let mut tx = kernel.store().begin_read().await?;
        let total = tx.count_organizations().await?;
        let start = next.load(Ordering::Relaxed) % usize::try_from(total.max(1)).unwrap_or(1);
        let ids = tx
            .organization_ids_from(u64::try_from(start).unwrap_or(0), KEY_SAMPLE)
            .await?;
        Ok::<_, gatehouse_core::Error>((total, start, ids))
    };
    let (total, start, ids) = match read.await {
        Ok(r) => r,
        Err(e) => return Finding::fail(format!("The organisations cannot be listed: {e}")),
    };
    let started = tokio::time::Instant::now();
    let (mut sampled, mut pending, mut shredded) = (0usize, 0u64, 0usize);
    let mut versions = std::collections::BTreeMap::<u32, usize>::new();
    for org in &ids {
        if started.elapsed() > KEY_BUDGET {
            break;
        }
        match keyring.org_status(*org).await {
            Ok(s) => {
                pending += s.pending_reencryption;
                shredded += usize::from(s.shredded);
                if let Some(v) = s.versions.iter().map(|v| v.version).max() {
                    *versions.entry(v).or_default() += 1;
                }
            }
            Err(e) => {
                return Finding::fail(format!("An organisation's data keys cannot be read: {e}"));
            }
        }
        sampled += 1;
    }
    // Past the last organisation the rotation starts again from the first.
    let after = start + sampled;
    next.store(
        if u64::try_from(after).unwrap_or(u64::MAX) >= total {
            0
        } else {
            after
        },
        Ordering::Relaxed,
    );
    let base = format!(
        "Master key version {} from {}; {sampled} of {total} organisations' data keys read this report (in rotation, at most {KEY_SAMPLE}): {pending} value(s) among them await re-encryption.",
        keyring.kek_version(),
        kernel.key_source().as_str(),
    );
    let finding = if kernel.key_source() == KeySource::GeneratedDevelopmentFile {
        Finding::warn(format!(
            "{base} The master key is a generated development key."
        ))
    } else {
        Finding::pass(base)
    };
    finding
        .figure("organizations", total)
        .figure("organizations_sampled", sampled)
        .figure(
            "newest_data_key_version_in_sample",
            versions
                .iter()
                .map(|(v, n)| (v.to_string(), serde_json::Value::from(*n)))
                .collect::<serde_json::Map<_, _>>(),
        )
        .figure("pending_reencryption_in_sample", pending)
        .figure("shredded_in_sample", shredded)
}

fn d2(f: &Facts<'_>) -> Arc<dyn Probe> {
    let split = matches!(f.config.master_key, MasterKey::Shares);
    let hsm = matches!(f.config.master_key, MasterKey::Pkcs11(_));
    let settings = posture_settings! {
        "reveal" => "a separate permission, audited",
        "master_key_split_into_shares" => split,
        "master_key_in_hsm" => hsm,
    };
    probe("D2", true, settings, move || async move {
        let custody = if split {
            "the master key exists only as operators' shares"
        } else if hsm {
            "the master key stays inside an HSM"
        } else {
            "the master key is held whole by this server (it can be split with `gatehouse keys split`)"
        };
        Finding::by_design(format!(
            "Shared credentials are handed to internal services without being shown; revealing one is a separate audited permission; {custody}."
        ))
    })
}

fn d3(f: &Facts<'_>) -> Arc<dyn Probe> {
    let b = &f.config.backup;
    let configured = !b.recipients.is_empty() || b.passphrase_file.is_some();
    let settings = posture_settings! {
        "format" => "age-encrypted, authenticated archive",
        "recipients" => b.recipients.len(),
        "passphrase_file" => redacted(b.passphrase_file.is_some()),
    };
    probe("D3", configured, settings, move || async move {
        if configured {
            Finding::pass(
                "`gatehouse backup` writes archives encrypted to the configured recipients; restore verifies every record and the audit chains.",
            )
        } else {
            Finding::warn(
                "No backup recipient or passphrase is configured: `gatehouse backup` cannot run until one is.",
            )
        }
    })
}

/// A certificate that expires sooner than this is reported as a warning.
const CERT_WARN: time::Duration = time::Duration::days(14);

fn d4(f: &Facts<'_>) -> Arc<dyn Probe> {
    let production = f.config.mode == Mode::Production;
    let declared = f.config.server.trusted_proxy_tls;
    let loopback = f.config.server.listen.ip().is_loopback();
    let Some(tls) = f.tls.clone() else {
        let settings = posture_settings! {
            "tls" => false,
            "trusted_proxy_tls" => declared,
            "listen_loopback_only" => loopback,
        };
        return probe("D4", false, settings, move || async move {
            if declared {
                Finding::pass(
                    "Plain HTTP here; the operator declares that a proxy in front terminates TLS (trusted_proxy_tls), which this server cannot see.",
                )
            } else if loopback {
                Finding::warn(
                    "Plain HTTP on loopback only: whatever fronts it must terminate TLS (set trusted_proxy_tls to declare that it does).",
                )
            } else if production {
                Finding::fail(
                    "Plain HTTP beyond loopback, with no TLS and no proxy declared to terminate it.",
                )
            } else {
                Finding::warn(
                    "No [tls]: plain HTTP beyond loopback, allowed in development mode only.",
                )
            }
        });
    };
    let settings = posture_settings! {
        "tls" => true,
        "min_version" => tls.min_version_str(),
        "cert_file" => tls.cert_file().display().to_string(),
        "hsts" => "max-age=31536000; includeSubDomains",
    };
    let clock = Arc::clone(&f.clock);
    probe("D4", true, settings, move || {
        let tls = Arc::clone(&tls);
        let clock = Arc::clone(&clock);
        async move {
            let now = clock.now();
            match tls.leaf_not_after() {
                Err(e) => Finding::fail(format!("The certificate in force cannot be read: {e}")),
                Ok(not_after) => {
                    let left = not_after - now;
                    let days = left.whole_days();
                    let finding = if left <= time::Duration::ZERO {
                        Finding::fail(format!(
                            "The certificate in force expired {} day(s) ago.",
                            -days
                        ))
                    } else if left < CERT_WARN {
                        Finding::warn(format!(
                            "TLS {}+ is served; the certificate expires in {days} day(s).",
                            tls.min_version_str()
                        ))
                    } else {
                        Finding::pass(format!(
                            "TLS {}+ is served; the certificate expires in {days} day(s).",
                            tls.min_version_str()
                        ))
                    };
                    finding.figure("certificate_days_left", days)
                }
            }
        }
    })
}

fn d5(f: &Facts<'_>) -> Arc<dyn Probe> {
    // Searched once, at start: the printout cannot change while the process runs, and keeping
    // copies of the secrets for later searches would defeat the zeroing this control is about.
    let (n, leaked) = {
        let planted = secret_values(f.config);
        let printed =
            zeroize::Zeroizing::new(format!("{}\n{:?}", f.config.to_redacted_toml(), f.config));
        let leaked = planted
            .iter()
            .filter(|s| printed.contains(s.as_str()))
            .count();
        (planted.len(), leaked)
    };
    let settings = posture_settings! {
        "secret_types" => "zeroed on drop, Debug prints [redacted]",
        "secrets_configured" => n,
    };
    probe("D5", true, settings, move || async move {
        if leaked == 0 {
            Finding::pass(format!(
                "None of the {n} configured secret value(s) appears in the configuration printout or its debug form (searched at start)."
            ))
            .figure("secrets_checked", n)
        } else {
            Finding::fail(format!(
                "{leaked} configured secret value(s) appear in the configuration printout."
            ))
        }
    })
}

/// The secret values this configuration holds, in the forms they could be printed in.
fn secret_values(config: &Config) -> Vec<zeroize::Zeroizing<String>> {
    use base64::Engine as _;
    let mut out: Vec<zeroize::Zeroizing<String>> = config
        .service_secrets
        .iter()
        .map(|s| zeroize::Zeroizing::new(s.secret.expose().to_owned()))
        .collect();
    let master = match &config.master_key {
        MasterKey::Environment(k) | MasterKey::File(_, k) => Some(k),
        MasterKey::Pkcs11(p) => {
            out.push(zeroize::Zeroizing::new(p.pin.expose().to_owned()));
            None
        }
        MasterKey::Shares | MasterKey::GeneratedDevelopment(_) => None,
    };
    for k in [config.password_hashing.pepper.as_ref(), master]
        .into_iter()
        .flatten()
    {
        out.push(zeroize::Zeroizing::new(
            base64::engine::general_purpose::STANDARD.encode(k.expose()),
        ));
        out.push(zeroize::Zeroizing::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k.expose()),
        ));
        out.push(zeroize::Zeroizing::new(hex(k.expose())));
    }
    if let crate::config::MailTransportSettings::Smtp(smtp) = &config.mail.transport
        && let Some(pw) = &smtp.password
    {
        out.push(zeroize::Zeroizing::new(pw.expose().to_owned()));
    }
    let urls = [
        Some(crate::config::database_url_text(&config.database.database)),
        match &config.database.database {
            Database::Postgres { migration_url, .. } => migration_url.clone(),
            Database::Sqlite { .. } => None,
        },
        config.redis_url.as_ref().map(|u| u.as_str().to_owned()),
    ];
    for u in urls.into_iter().flatten().map(zeroize::Zeroizing::new) {
        if let Ok(parsed) = url::Url::parse(&u)
            && let Some(pw) = parsed.password()
            && pw.len() >= 4
        {
            out.push(zeroize::Zeroizing::new(pw.to_owned()));
        }
    }
    out.retain(|s| s.len() >= 4);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A1's census of stored password hashes against the configured parameters (bounded: the
/// oldest 100,000 accounts, and at most 10,000 hashes that differ from the current cost).
pub(super) async fn password_census(
    store: &dyn Store,
    params: gatehouse_crypto::password::Argon2Params,
    pepper: Option<&gatehouse_crypto::Pepper>,
) -> Finding {
    match gatehouse_core::posture::checks::password_census(store, &params, pepper).await {
        Err(e) => Finding::fail(format!("The stored password hashes cannot be read: {e}")),
        Ok(c) => {
            let of = if c.accounts_capped {
                format!("the oldest {} accounts", c.accounts)
            } else {
                format!("{} account(s)", c.accounts)
            };
            let below = if c.below_capped {
                format!("at least {}", c.below)
            } else {
                c.below.to_string()
            };
            let text = format!(
                "Of {of}, {below} stored hash(es) are below these parameters ({} imported bcrypt); each is replaced at its next sign-in. {} account(s) have no password (single sign-on).",
                c.bcrypt, c.without_password
            );
            let finding = if c.below == 0 {
                Finding::pass(text)
            } else {
                Finding::warn(text)
            };
            finding
                .figure("accounts", c.accounts)
                .figure("accounts_capped", c.accounts_capped)
                .figure("hashes_below", c.below)
                .figure("hashes_below_capped", c.below_capped)
                .figure("hashes_bcrypt", c.bcrypt)
                .figure("hashes_at_or_above", c.at_or_above)
                .figure("accounts_without_password", c.without_password)
        }
    }
}

/// C2 on PostgreSQL: the connected role and every organisation table's row-level security, read
/// from the catalog.
pub(super) async fn rls_finding(pg: &gatehouse_store_postgres::PostgresStore) -> Finding {
    let r = match pg.isolation_report().await {
        Ok(r) => r,
        Err(e) => return Finding::fail(format!("The database catalog cannot be read: {e}")),
    };
    let tables = r.tables_checked();
    let finding = match (&r.bypass, r.not_enforced.is_empty()) {
        (Some(reason), _) => Finding::fail(format!(
            "The role {} is not bound by row-level security because {reason}.",
            r.role
        )),
        (None, false) => Finding::fail(format!(
            "Row-level security does not hold on {}.",
            r.not_enforced
                .iter()
                .map(|t| format!("{} ({})", t.table, t.why.join(", ")))
                .collect::<Vec<_>>()
                .join("; ")
        )),
        (None, true) if tables == 0 => {
            Finding::fail("The catalog lists no table with an organisation column.")
        }
        (None, true) => Finding::pass(format!(
            "Row-level security is enabled, forced and scoped by a policy on all {tables} tables with an organisation column (read from the catalog), and binds the role {}.",
            r.role
        )),
    };
    finding
        .figure("role", r.role.clone())
        .figure("organization_tables", tables)
        .figure(
            "not_enforced",
            r.not_enforced
                .iter()
                .map(|t| t.table.clone())
                .collect::<Vec<_>>(),
        )
}
