//! The county's duties: escalation, supervision, retention, webhook deliveries, the links
//! to the tiers above and below and to GB/T 28181 platforms, which one process does. Of several processes serving a county ([`crate::ingest::Cluster`]), the one
//! holding a lease in the store does them and speaks for the center; another takes them over
//! when the lease lapses.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::access::AuditLog;
use crate::cases::{Cases, Kept, Supervisor, run_escalation, run_retention, run_supervision};
use crate::gb28181::Gb28181;
use crate::ingest::{Announcer, IngestStats};
use crate::store::{Leases, Retention, StoreError};
use crate::tier::Links;

/// The center's duties, which one process does for a county: escalation, supervision,
/// retention, webhook deliveries and the links to the tiers above and below (in each
/// center's order: one process at a time).
pub struct Duties {
    /// Case handling, which escalation and supervision act through.
    pub cases: Cases,
    /// What retention sweeps.
    pub kept: Kept,
    /// The audit log retention sweeps and audits into.
    pub audit: AuditLog,
    /// How long things are kept.
    pub retention: Retention,
    /// How often escalation looks (supervision five times less often).
    pub escalation_check: Duration,
    /// Below this many free bytes the center's disk runs low.
    pub min_free_bytes: u64,
    /// The links to the tiers above and below, if any.
    pub links: Option<Links>,
    /// The links to GB/T 28181 platforms above, if any.
    pub gb28181: Option<Gb28181>,
}

impl Duties {
    /// Starts the duties; they run until `stop`.
    pub fn start(&self, stop: CancellationToken) -> Result<Vec<JoinHandle<()>>, StoreError> {
        let k = &self.kept;
        // A new supervisor counts silences from now: nobody was silent while no process watched.
        let supervisor = Supervisor::new(
            self.cases.clone(),
            k.fleet.clone(),
            k.keys.clone(),
            k.webhooks.clone(),
            self.min_free_bytes,
        )?;
        let every = self.escalation_check;
        let links = self.links.as_ref().map(|l| l.start(&stop)).unwrap_or_default();
        let gb28181 = self.gb28181.as_ref().map(|g| g.start(&stop)).unwrap_or_default();
        Ok([
            tokio::spawn(k.webhooks.clone().run(stop.clone())),
            tokio::spawn(run_escalation(self.cases.clone(), every, stop.clone())),
            // Each round reads the fleet and every open dispatch: less often than escalation.
            tokio::spawn(run_supervision(supervisor, every * 5, stop.clone())),
            tokio::spawn(run_retention(
                k.clone(),
                self.audit.clone(),
                self.retention,
                Duration::from_secs(3600),
                stop,
            )),
        ]
        .into_iter()
        .chain(links)
        .chain(gb28181)
        .collect())
    }
}

/// Who says the center is online, and where; it may once ingest is subscribed.
pub struct Speaker {
    /// What this process says.
    pub announcer: Announcer,
    /// Its MQTT client.
    pub client: rumqttc::AsyncClient,
    /// The center's status topic.
    pub topic: String,
    /// Ingest's counters: whether it is subscribed.
    pub ingesting: Arc<IngestStats>,
}

/// The lease on the duties of a county served by several processes: its holder does them
/// and speaks for the center. Renewed every third of it; a holder killed leaves them to another
/// within [`DUTIES_LEASE`], a holder stopped cleanly at once.
const DUTIES_LEASE: Duration = Duration::from_secs(9);

/// The name of the duties' lease.
const DUTIES: &str = "duties";

/// Holds the duties' lease for `node` whenever it can until `shutdown`, doing `duties` while it
/// holds it; taking it, announces the center online with a new run (agents then send again
/// whatever the last holder had not receipted).
pub async fn hold_duties(
    duties: Duties,
    leases: Leases,
    node: String,
    speaker: Speaker,
    shutdown: CancellationToken,
) {
    let store = duties.kept.store.clone();
    let mut held: Option<(CancellationToken, Vec<JoinHandle<()>>)> = None;
    let mut renewed = std::time::Instant::now();
    loop {
        let ttl = DUTIES_LEASE.as_millis() as i64;
        // A process not subscribed to the boxes' topics would tell them to publish to nobody.
        let ingesting = speaker.ingesting.connected.load(std::sync::atomic::Ordering::Relaxed);
        let outcome = match held.is_some() || ingesting {
            true => leases.hold(DUTIES, &node, xueliang_proto::endpoint::now_ms(), ttl),
            false => Ok(None),
        };
        match outcome {
            Ok(Some(epoch)) => {
                renewed = std::time::Instant::now();
                if held.is_none() {
                    let stop = shutdown.child_token();
                    match store.next_id().and_then(|run| Ok((run, duties.start(stop.clone())?))) {
                        Ok((run, tasks)) => {
                            speaker.announcer.take_over(run);
                            let online = speaker.announcer.status(true);
                            if let Err(e) = speaker.client.try_publish(
                                &speaker.topic,
                                rumqttc::QoS::AtLeastOnce,
                                true,
                                online,
                            ) {
                                warn!("cannot announce the center online: {e}");
                            }
                            info!(
                                node,
                                epoch,
                                run,
                                "this process holds the county's duties and speaks for the center"
                            );
                            held = Some((stop, tasks));
                        }
                        Err(e) => warn!("cannot take the county's duties: {e}"),
                    }
                }
            }
            Ok(None) if held.is_some() => {
                warn!(node, "another process took the county's duties over");
                give_up(held.take(), &speaker.announcer).await;
            }
            Ok(None) => {}
            Err(e) => {
                warn!("cannot renew the duties' lease: {e}");
                // Stop before the lease lapses and another process takes the duties.
                if renewed.elapsed() > DUTIES_LEASE * 2 / 3 && held.is_some() {
                    warn!(node, "the county's duties are left to another process");
                    give_up(held.take(), &speaker.announcer).await;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(DUTIES_LEASE / 3) => {}
        }
    }
    // The shutdown stops the duties; another process takes them at once.
    if let Some((_, tasks)) = held {
        for t in tasks {
            let _ = t.await;
        }
        if let Err(e) = leases.release(DUTIES, &node) {
            warn!("cannot give the duties' lease up: {e}");
        }
    }
}

/// Stops the duties `held`: another process does them and speaks for the center.
async fn give_up(held: Option<(CancellationToken, Vec<JoinHandle<()>>)>, announcer: &Announcer) {
    announcer.step_down();
    if let Some((stop, tasks)) = held {
        stop.cancel();
        for t in tasks {
            let _ = t.await;
        }
    }
}
