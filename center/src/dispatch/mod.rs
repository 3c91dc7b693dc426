//! Sending dispatched alarms to responder units: a `Dispatch` message on MQTT for the units'
//! own clients, and a JSON POST to a unit's webhook, queued durably and retried until delivered.

mod dispatcher;
mod webhooks;

pub use dispatcher::Dispatcher;
pub use webhooks::{
    DeliveryState, RetryPolicy, WebhookStatus, Webhooks, dispatch_id, dispatched_alarm,
};
