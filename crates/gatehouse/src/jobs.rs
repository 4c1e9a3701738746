//! The leased background jobs `serve` starts besides the lifecycle job (`lifecycle_job.rs`):
//! re-encryption and audit checkpoints, each under a lease of its own in the database, so that
//! with several instances over one database each batch runs on one of them (see
//! `gatehouse_core::jobs` for the lease, and the takeover bound: three intervals).

use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::Kernel;
use gatehouse_core::jobs::LeasedJob;

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
