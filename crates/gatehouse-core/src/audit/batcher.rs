//! Group commit for events that go with no change of their own (refusals, failed attempts,
//! notices): concurrent callers' events share one transaction per chain, so one durable commit
//! carries many events. Each caller's `record` returns once the transaction holding its event has
//! committed: durable when acknowledged.
//!
//! Events that belong to a change still commit in that change's transaction (`append_tenant`);
//! this is only for standalone events.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{AuditEvent, append_operator, append_tenant_batch};
use crate::clock::Clock;
use crate::error::Error;
use crate::ids::OrgId;
use crate::keyring::{Keyring, PersonalData};
use crate::scope::TenantScope;
use crate::store::Store;

type Ack = oneshot::Sender<Result<(), String>>;

#[derive(Debug)]
struct Job {
    chain: Option<OrgId>,
    /// One caller's events, never split across transactions; each with, optionally, personal
    /// data to seal under its subject's key inside the writing transaction (where the key is
    /// made on first use).
    events: Vec<PersonalEvent>,
    ack: Ack,
}

/// An event to record with, optionally, the subject and personal data to seal into it.
pub type PersonalEvent = (AuditEvent, Option<(String, PersonalData)>);

/// A handle to the batching writer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditBatcher {
    jobs: mpsc::Sender<Job>,
}

impl AuditBatcher {
    /// Starts the writer task. `max_batch` bounds the events per transaction.
    pub fn start(store: Arc<dyn Store>, clock: Arc<dyn Clock>, max_batch: usize) -> Self {
        Self::spawn(store, clock, None, max_batch)
    }

    /// Like [`Self::start`], with the keyring that seals events' personal data
    /// ([`Self::record_all`]).
    pub fn start_with_keyring(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        keyring: Arc<Keyring>,
        max_batch: usize,
    ) -> Self {
        Self::spawn(store, clock, Some(keyring), max_batch)
    }

    fn spawn(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        keyring: Option<Arc<Keyring>>,
        max_batch: usize,
    ) -> Self {
        let (jobs, rx) = mpsc::channel(max_batch.max(1) * 4);
        tokio::spawn(run(store, clock, keyring, rx, max_batch.max(1)));
        Self { jobs }
    }

    /// Records `events` on `scope`'s chain, in order and all in one transaction (shared with
    /// concurrent callers' events, never split), sealing each one's personal data under its
    /// subject's key there; returns once they are committed, or none is.
    pub async fn record_all(
        &self,
        scope: &TenantScope,
        events: Vec<PersonalEvent>,
    ) -> Result<(), Error> {
        for (e, _) in &events {
            e.validate()?;
        }
        if events.is_empty() {
            return Ok(());
        }
        let (ack, done) = oneshot::channel();
        self.jobs
            .send(Job {
                chain: Some(scope.org_id()),
                events,
                ack,
            })
            .await
            .map_err(|_| Error::Internal("the audit writer has stopped".into()))?;
        done.await
            .map_err(|_| Error::Internal("the audit writer dropped an event".into()))?
            .map_err(Error::Internal)
    }

    /// Records `event` on `scope`'s chain; returns once it is committed.
    pub async fn record(&self, scope: &TenantScope, event: AuditEvent) -> Result<(), Error> {
        self.send(Some(scope.org_id()), event).await
    }

    /// Queues `event` on `scope`'s chain and returns once it is queued, not committed: for
    /// high-volume calls that carry no state change (transit). The queue is bounded, so a
    /// writer that falls behind slows callers rather than losing events; a failed batch is
    /// logged. A crash can lose the events queued in the last moments before it.
    pub async fn record_queued(&self, scope: &TenantScope, event: AuditEvent) -> Result<(), Error> {
        event.validate()?;
        let (ack, _ignored) = oneshot::channel();
        self.jobs
            .send(Job {
                chain: Some(scope.org_id()),
                events: vec![(event, None)],
                ack,
            })
            .await
            .map_err(|_| Error::Internal("the audit writer has stopped".into()))
    }

    /// Records `event` on the operators' chain; returns once it is committed.
    pub async fn record_operator(&self, event: AuditEvent) -> Result<(), Error> {
        self.send(None, event).await
    }

    async fn send(&self, chain: Option<OrgId>, event: AuditEvent) -> Result<(), Error> {
        event.validate()?;
        let (ack, done) = oneshot::channel();
        self.jobs
            .send(Job {
                chain,
                events: vec![(event, None)],
                ack,
            })
            .await
            .map_err(|_| Error::Internal("the audit writer has stopped".into()))?;
        done.await
            .map_err(|_| Error::Internal("the audit writer dropped an event".into()))?
            .map_err(Error::Internal)
    }
}

async fn run(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    keyring: Option<Arc<Keyring>>,
    mut rx: mpsc::Receiver<Job>,
    max: usize,
) {
    while let Some(first) = rx.recv().await {
        // Whole jobs up to `max` events (a bigger job goes alone): a caller's events are never
        // split, so they commit together or not at all.
        let mut size = first.events.len();
        let mut batch = vec![first];
        while size < max {
            match rx.try_recv() {
                Ok(job) => {
                    size += job.events.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let mut chains: BTreeMap<Option<OrgId>, Vec<Job>> = BTreeMap::new();
        for job in batch {
            chains.entry(job.chain).or_default().push(job);
        }
        for (chain, jobs) in chains {
            let mut events = Vec::new();
            let mut acks = Vec::with_capacity(jobs.len());
            for j in jobs {
                events.extend(j.events);
                acks.push(j.ack);
            }
            let outcome = write(
                store.as_ref(),
                clock.as_ref(),
                keyring.as_deref(),
                chain,
                events,
            )
            .await
            .map_err(|e| e.to_string());
            if let Err(e) = &outcome {
                tracing::error!(error = %e, events = acks.len(), "an audit batch could not be written");
            }
            for ack in acks {
                let _ = ack.send(outcome.clone());
            }
        }
    }
}

/// One transaction for all of `events` on one chain.
async fn write(
    store: &dyn Store,
    clock: &dyn Clock,
    keyring: Option<&Keyring>,
    chain: Option<OrgId>,
    events: Vec<PersonalEvent>,
) -> Result<(), Error> {
    match chain {
        Some(org) => {
            let mut tx = store.begin_scoped(&TenantScope::granted(org)).await?;
            let mut keys = HashMap::new();
            let mut sealed = Vec::with_capacity(events.len());
            for (event, personal) in events {
                sealed.push(match personal {
                    None => event,
                    Some((subject, data)) => {
                        let keyring = keyring.ok_or_else(|| {
                            Error::Internal("this audit writer cannot seal personal data".into())
                        })?;
                        let envelope = keyring
                            .seal_personal_cached(tx.as_mut(), &mut keys, &subject, &data)
                            .await?;
                        event.with_personal(&subject, envelope)
                    }
                });
            }
            match append_tenant_batch(tx.as_mut(), clock, sealed).await? {
                Some(p) => Ok(tx.commit(p).await?),
                None => Ok(()),
            }
        }
        None => {
            let mut tx = store.begin().await?;
            let mut proof = None;
            // The operators' chain carries no personal data (nothing queues any for it).
            for (event, _) in events {
                proof = Some(append_operator(tx.as_mut(), clock, event).await?);
            }
            match proof {
                Some(p) => Ok(tx.commit(p).await?),
                None => Ok(()),
            }
        }
    }
}
