//! The last steps on the box before delivery, on their own thread, at a lower priority, so
//! that the detector never waits for them: each message the event logs make has its picture drawn (the record stream
//! decoded for it where the camera has one), is noted by the clip maker, sealed with the box's
//! key, stored in the outbox (flushed; kept in memory while the disk is full, and tried
//! again every few seconds), and the publisher woken. Messages keep their order. Alarms are
//! counted by rule for the metrics; what cannot be stored is counted and logged, never
//! silently dropped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{RecvTimeoutError, TrySendError};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tracing::{error, info};
use xueliang_proto::RuleKind;

use crate::delivery::{Outbox, OutboxWriter, RETRY, WriteCounts};
use crate::evidence::{ClipMaker, Outgoing, Pictures, Sealer};

/// Messages waiting for the chain at most: a burst of events is queued and the detector goes
/// on inferring. When it is full (a disk that hangs, hundreds of events at once) the detector
/// waits for room rather than lose an alarm, each wait counted; a chain stuck for good stops
/// the detector thread too, and the watchdog restarts the agent rather than let messages pile
/// up.
const QUEUE: usize = 256;

/// What the alarm chain counts, shared with the metrics.
#[derive(Debug, Default)]
pub(super) struct AlarmCounts {
    /// Alarms raised by rule id and kind.
    pub(super) raised: Mutex<BTreeMap<(String, String), u64>>,
    /// Messages that could not be sealed, or handed to the chain, since start.
    pub(super) lost: AtomicU64,
    /// The outbox's writes: failures, messages kept in memory, and lost.
    pub(super) writes: Arc<WriteCounts>,
    /// Messages handed over and not yet taken by the chain.
    pub(super) queued: AtomicUsize,
    /// Times the detector thread found the queue full and waited.
    pub(super) waits: AtomicU64,
}

impl AlarmCounts {
    /// Messages lost since start, whatever the cause.
    pub(super) fn all_lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed) + self.writes.lost.load(Ordering::Relaxed)
    }
}

/// Where the detector thread sends what its cameras' events make.
pub(super) struct Alarms {
    messages: std::sync::mpsc::SyncSender<Outgoing>,
    thread: std::thread::JoinHandle<()>,
    /// What it counted.
    pub(super) counts: Arc<AlarmCounts>,
}

/// The chain's end: sealing and storing.
struct Store {
    send_after_bytes: usize,
    writer: OutboxWriter,
    wake: mpsc::Sender<()>,
    sealer: Arc<Sealer>,
    counts: Arc<AlarmCounts>,
}

impl Alarms {
    /// Starts the chain: pictures drawn by `pictures`, clips cut by `clips`, messages sealed by
    /// `sealer` into `outbox` (snapshots over `send_after_bytes` travel apart), the publisher
    /// woken through `wake`.
    pub(super) fn spawn(
        pictures: Pictures,
        clips: ClipMaker,
        send_after_bytes: usize,
        outbox: Outbox,
        wake: mpsc::Sender<()>,
        sealer: Arc<Sealer>,
    ) -> std::io::Result<Self> {
        let writer = OutboxWriter::new(outbox);
        let counts = Arc::new(AlarmCounts { writes: writer.counts.clone(), ..Default::default() });
        let mut store = Store { send_after_bytes, writer, wake, sealer, counts: counts.clone() };
        let (messages, rx) = std::sync::mpsc::sync_channel::<Outgoing>(QUEUE);
        let thread = std::thread::Builder::new().name("evidence".into()).spawn(move || {
            yield_to_detection();
            loop {
                let mut message = match rx.recv_timeout(RETRY) {
                    Ok(message) => {
                        store.counts.queued.fetch_sub(1, Ordering::Relaxed);
                        message
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        if store.writer.retry() {
                            let _ = store.wake.try_send(());
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                };
                // The clip first: its pre-roll must not age out of the buffer while the
                // picture is drawn.
                clips.note(&message);
                // A picture that panics leaves its message without one; the message goes on.
                let drawn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    message.draw(|job| pictures.draw(job))
                }));
                if drawn.is_err() {
                    error!("drawing an event's picture failed; the message goes without it");
                }
                store.send(message);
            }
            store.writer.finish();
            clips.finish();
        })?;
        Ok(Self { messages, thread, counts })
    }

    /// Hands `message` to the chain; waits while [`QUEUE`] messages are ahead of it.
    pub(super) fn send(&self, message: Outgoing) {
        self.counts.queued.fetch_add(1, Ordering::Relaxed);
        let sent = match self.messages.try_send(message) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(message)) => {
                self.counts.waits.fetch_add(1, Ordering::Relaxed);
                self.messages.send(message).map_err(|_| ())
            }
            Err(TrySendError::Disconnected(_)) => Err(()),
        };
        if sent.is_err() {
            self.counts.queued.fetch_sub(1, Ordering::Relaxed);
            // Only if the chain's thread died: nothing more can be stored.
            self.counts.lost.fetch_add(1, Ordering::Relaxed);
            error!("message lost: the evidence thread has stopped");
        }
    }

    /// Waits for every message handed over to be stored, and for the last clips.
    pub(super) fn finish(self) {
        let Self { messages, thread, .. } = self;
        drop(messages);
        let _ = thread.join();
    }
}

/// How much lower than the detector the evidence thread runs (a nice value): a burst of
/// events is drawn, sealed and stored on the CPU the cameras leave over.
const NICENESS: libc::c_int = 10;

/// Lowers the calling thread's priority by [`NICENESS`], so that on a busy box a burst of
/// pictures to draw does not slow inference down; the alarms then wait a little longer in the
/// queue instead. (A Linux thread has its own nice value.)
fn yield_to_detection() {
    // SAFETY: gettid and setpriority only read their arguments; they change this thread's
    // scheduling weight and nothing else.
    let done = unsafe {
        let tid = libc::gettid() as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, NICENESS)
    };
    if done != 0 {
        tracing::warn!(
            "the evidence thread keeps the detector's priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

impl Store {
    /// Seals `message`, stores it in the outbox (flushed), then wakes the publisher.
    fn send(&mut self, message: Outgoing) {
        let (sealed, id, what) = match message {
            Outgoing::Alarm { alarm, detail, .. } => {
                let kind = RuleKind::of(alarm.kind).name();
                let mut raised = self.counts.raised.lock().unwrap_or_else(|p| p.into_inner());
                *raised.entry((alarm.rule_id.clone(), kind.to_owned())).or_default() += 1;
                drop(raised);
                info!(
                    alarm = %alarm.id,
                    camera = %alarm.camera_id,
                    rule = %alarm.rule_id,
                    objects = alarm.detections.len(),
                    lasting = alarm.opens_event,
                    "{kind}: {detail}"
                );
                let id = alarm.id.clone();
                (self.sealer.seal(alarm, self.send_after_bytes), id, "alarm")
            }
            Outgoing::Update { update, .. } => {
                info!(
                    event = %update.event_id,
                    seq = update.seq,
                    peak = update.peak_count,
                    seconds = update.duration_ms / 1000,
                    picture = !update.snapshot_jpeg.is_empty(),
                    reminder = update.reminder,
                    "{}",
                    if update.ended { "event ended" } else { "event update" }
                );
                let id = update.id.clone();
                (self.sealer.seal_update(update), id, "event update")
            }
        };
        match sealed {
            Ok(sealed) => {
                if self.writer.write(sealed, what) {
                    let _ = self.wake.try_send(());
                }
            }
            Err(e) => {
                self.counts.lost.fetch_add(1, Ordering::Relaxed);
                error!(id = %id, "{what} lost: {e}");
            }
        }
    }
}
