//! `publish_event`: one event from a worker to the session's channel.

use bytes::Bytes;
use serde_json::Value;
use sse_bridge_core::{BrokerError, Event, EventBus, SessionId};

/// Why an event could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("event_type must not be empty")]
    EmptyEventType,
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// Publishes `{"event_type": ..., "payload": ...}` on `sse_session:{session_id}`.
///
/// Returns how many gateways received it (0: nobody listens any more — the
/// client left or the session already ended).
pub async fn publish_event(
    bus: &dyn EventBus,
    session_id: SessionId,
    event_type: &str,
    payload: Value,
) -> Result<u64, PublishError> {
    if event_type.is_empty() {
        return Err(PublishError::EmptyEventType);
    }
    let message = Bytes::from(Event::new(event_type, payload).to_json());
    Ok(bus.publish(&session_id.event_channel(), message).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sse_bridge_core::Delivery;
    use sse_bridge_core::embedded::EmbeddedBus;

    #[tokio::test]
    async fn publishes_the_envelope_on_the_session_channel() {
        let bus = EmbeddedBus::new(8);
        let id = SessionId::new();
        let mut sub = bus.subscribe(&id.event_channel()).await.unwrap();
        let n = publish_event(&bus, id, "worker_ack", serde_json::json!({}))
            .await
            .unwrap();
        assert_eq!(n, 1);
        let Delivery::Message(raw) = sub.recv().await else {
            panic!("no message")
        };
        assert_eq!(&raw[..], br#"{"event_type":"worker_ack","payload":{}}"#);
        assert!(matches!(
            publish_event(&bus, id, "", Value::Null).await,
            Err(PublishError::EmptyEventType)
        ));
    }
}
