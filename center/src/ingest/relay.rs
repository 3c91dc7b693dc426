//! Of several processes serving one county, each tells the others what it stored or changed,
//! so that the consoles of every process see every alarm as it happens: the change and the
//! alarm's id on `{prefix}/center/feed` (QoS 0: a console that misses one sees it at its next
//! reload), read back from the store by the others. Only ids cross: a forged notice can make a
//! process read a record again, no more.

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::cases::{AlarmFeed, Change, Relayed};
use crate::store::Store;

/// One notice.
#[derive(Debug, Serialize, Deserialize)]
struct Notice {
    /// The process that made the change.
    node: String,
    change: Change,
    id: String,
}

/// Publishes every change `changes` hands over on `topic` until they end.
pub(super) async fn send(
    mut changes: mpsc::UnboundedReceiver<Relayed>,
    client: rumqttc::AsyncClient,
    topic: String,
    node: String,
) {
    while let Some((change, id)) = changes.recv().await {
        let notice = Notice { node: node.clone(), change, id };
        // Plain fields: serializing cannot fail.
        let payload = serde_json::to_vec(&notice).expect("a notice serializes");
        if let Err(e) = client.publish(&topic, rumqttc::QoS::AtMostOnce, false, payload).await {
            warn!("cannot tell the other processes of a change: {e}");
        }
    }
}

/// Tells this process's consoles of each change the other processes made, read from `store`,
/// until `notices` end.
pub(super) async fn receive(
    mut notices: mpsc::UnboundedReceiver<Vec<u8>>,
    store: Store,
    feed: AlarmFeed,
    node: String,
) {
    while let Some(payload) = notices.recv().await {
        let notice: Notice = match serde_json::from_slice(&payload) {
            Ok(n) => n,
            Err(e) => {
                warn!("ignoring a malformed notice on the center's feed: {e}");
                continue;
            }
        };
        if notice.node == node {
            continue;
        }
        let s = store.clone();
        let id = notice.id.clone();
        match tokio::task::spawn_blocking(move || s.get(&id)).await {
            Ok(Ok(Some(record))) => feed.publish_here(notice.change, record),
            Ok(Ok(None)) => debug!(alarm = %notice.id, "a notice of an alarm not stored"),
            Ok(Err(e)) => warn!(alarm = %notice.id, "cannot read a changed alarm: {e}"),
            Err(e) => warn!("cannot read a changed alarm: {e}"),
        }
    }
}
