//! The leased background jobs `serve` starts besides the lifecycle job (`lifecycle_job.rs`):
//! re-encryption and audit checkpoints, each under a lease of its own in the database, so that
//! with several instances over one database each batch runs on one of them (see
//! `gatehouse_core::jobs` for the lease, and the takeover bound: three intervals). Below them,
//! the jobs every instance runs: activity flushes and key reloads, mail and webhook delivery
//! (each claims due rows, so instances deliver different ones).

use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::Kernel;
use gatehouse_core::jobs::LeasedJob;
use gatehouse_core::mail::MailTransport;

/// The re-encryption job's lease.
pub(crate) const REENCRYPTION: &str = "reencryption";
/// The audit checkpoint job's lease.
pub(crate) const CHECKPOINTS: &str = "checkpoints";

/// This instance's name in the leases: random, so two processes on one host differ, and
/// telling nothing about the host.
pub(crate) fn instance_id() -> String {
    format!("gatehouse-{}", uuid::Uuid::new_v4())
}

/// Moves sealed values to their organisation's newest data key, `batch` at a time per
/// organisation, every `every`.
pub(crate) async fn reencryption(kernel: Arc<Kernel>, holder: String, every: Duration, batch: u32) {
    let runner = kernel.lease_runner(LeasedJob::new(REENCRYPTION, every), &holder);
    runner
        .run(|| async {
            let moved = kernel.keyring().reencrypt_all(batch).await?;
            if moved > 0 {
                tracing::info!(moved, "re-encrypted sealed values to the newest data keys");
            }
            Ok::<(), gatehouse_core::Error>(())
        })
        .await;
}

/// Signs a checkpoint over every audit chain head that moved, every `every`.
pub(crate) async fn checkpoints(kernel: Arc<Kernel>, holder: String, every: Duration) {
    // The first one interval after start, as before the jobs were leased: at start no chain has
    // moved but the operators' (the keys' registration), which the next tick signs anyway.
    let runner = kernel.lease_runner(
        LeasedJob::new(CHECKPOINTS, every).first_after_one_interval(),
        &holder,
    );
    runner
        .run(|| async {
            let made = gatehouse_core::audit::checkpoint_all(
                kernel.store(),
                kernel.keyring(),
                kernel.clock(),
            )
            .await?;
            if made > 0 {
                tracing::info!(made, "signed audit checkpoints");
            }
            Ok::<(), gatehouse_core::Error>(())
        })
        .await;
}

/// Refreshes connectors' tokens ahead of their expiry (and retries failed refreshes after their
/// backoff), every `every`, under the `connectors` lease.
pub(crate) async fn connectors(kernel: Arc<Kernel>, holder: String, every: Duration) {
    let runner = kernel.lease_runner(kernel.connectors().leased_job(every), &holder);
    runner
        .run(|| async {
            let r = kernel.connectors().refresh_due().await?;
            if r.refreshed + r.failed + r.needs_reauth > 0 {
                tracing::info!(
                    refreshed = r.refreshed,
                    failed = r.failed,
                    needs_reauth = r.needs_reauth,
                    "refreshed connectors"
                );
            }
            Ok::<(), gatehouse_core::Error>(())
        })
        .await;
}

/// Checks organisations' verified email domains again (`gatehouse_core::sso`'s `recheck.rs`),
/// every six hours, under the `sso_domains` lease.
pub(crate) async fn sso_domains(kernel: Arc<Kernel>, holder: String) {
    let runner = kernel.lease_runner(kernel.sso().recheck_job(), &holder);
    runner
        .run(|| async {
            let r = kernel.sso().recheck_domains().await?;
            if r.missing > 0 {
                tracing::info!(
                    checked = r.checked,
                    missing = r.missing,
                    unverified = r.unverified,
                    "checked verified domains again"
                );
            }
            Ok::<(), gatehouse_core::Error>(())
        })
        .await;
}

/// Every 30 seconds (`ACTIVITY_FLUSH_INTERVAL`, the idle check's grace): writes sessions' batched
/// last-seen times, API keys' last use, connector hand-outs counted in memory, share-link opens
/// served from memory and the runs of repeated check denials, and reloads the token-signing keys
/// (so a key added by `gatehouse keys rotate-signing` signs here too, and retired ones drop out).
pub(crate) async fn session_job(kernel: Arc<Kernel>) {
    let mut tick = tokio::time::interval(gatehouse_core::identity::ACTIVITY_FLUSH_INTERVAL);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = kernel.auth().flush_session_activity().await {
            tracing::warn!(error = %e, "could not record sessions' activity; retrying later");
        }
        if let Err(e) = kernel.api_keys().flush_usage().await {
            tracing::warn!(error = %e, "could not record API keys' last use; retrying later");
        }
        if let Err(e) = kernel.connectors().flush_usage().await {
            tracing::warn!(error = %e, "could not record connector hand-outs; retrying later");
        }
        if let Err(e) = kernel.share_links().flush_opens().await {
            tracing::warn!(error = %e, "could not record share-link opens");
        }
        if let Err(e) = kernel.checks().flush_denials().await {
            tracing::warn!(error = %e, "could not record repeated check denials; retrying later");
        }
        if let Err(e) = kernel.auth().reload_token_keys().await {
            tracing::warn!(error = %e, "could not reload the token-signing keys");
        }
        if let Err(e) = kernel.keyring().reload_link_keys().await {
            tracing::warn!(error = %e, "could not reload the link keys");
        }
    }
}

/// Writes the security events of every minute that has closed (by the injected clock), in
/// every instance: each instance's tallies are its own. Ticks every 5 s, so a minute is written
/// within seconds of closing, and a test that moves the clock on sees it without waiting a
/// minute. Returns when `stop` fires, never in the middle of a flush (shutdown then writes the
/// minute still open).
pub(crate) async fn security_events_job(
    kernel: Arc<Kernel>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = kernel.flush_security_events(false).await {
            tracing::warn!(error = %e, "could not record security events");
        }
    }
}

/// Delivers queued mail: woken when a request queues some, and polling for retries that fall
/// due. A failing transport only delays mail (see `Mail::deliver_due`).
pub(crate) async fn mail_job(
    kernel: Arc<Kernel>,
    transport: Arc<dyn MailTransport>,
    poll: Duration,
) {
    loop {
        match kernel.mail().deliver_due(transport.as_ref()).await {
            // A full batch may mean more is waiting: go again at once.
            Ok(r) if r.delivered + r.failed >= 20 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not read the mail outbox; retrying later"),
        }
        tokio::select! {
            () = kernel.mail().wakeup().notified() => {}
            () = tokio::time::sleep(poll) => {}
        }
    }
}

/// Delivers webhooks: woken when a call queues some, and polling for retries that fall due.
/// A receiver that fails only delays its own deliveries (see `Webhooks::deliver_due`).
pub(crate) async fn webhook_job(kernel: Arc<Kernel>, poll: Duration) {
    let Some(client) = kernel.webhook_client() else {
        return;
    };
    loop {
        match kernel.webhooks().deliver_due(client.as_ref()).await {
            // A busy pass may mean more is due: go again at once.
            Ok(r) if r.delivered + r.retried + r.dead > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not deliver webhooks; retrying later"),
        }
        tokio::select! {
            () = kernel.webhook_wakeup().notified() => {}
            () = tokio::time::sleep(poll) => {}
        }
    }
}
