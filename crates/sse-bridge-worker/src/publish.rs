//! `publish_event`: one event from a worker to its session — appended to the
//! session's log and published live in one atomic step (PROTOCOL §4).

use serde_json::Value;
use sse_bridge_core::log::{Appended, EventLog, LogId, Refusal};
use sse_bridge_core::{BrokerError, Event, SessionId};

/// Why an event could not be published.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    #[error("event_type must not be empty")]
    EmptyEventType,
    /// The session takes no more events from this sender; stop working on it.
    #[error("the session refused the event: {0}")]
    Refused(Refusal),
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// Where a published event went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Logged under `id` (followers can resume after it) and delivered live
    /// to `receivers` gateways (0 while nobody streams the session: the
    /// client may still resume).
    Logged { id: LogId, receivers: u64 },
    /// Delivered live only (`worker_heartbeat`, which is never logged).
    Live { receivers: u64 },
}

/// Publishes `{"event_type": ..., "payload": ...}` to session `session_id`,
/// as `attempt` (the job delivery this worker runs; `None` for a worker
/// that never runs a job twice).
///
/// `Err(PublishError::Refused)` means the session ended, belongs to another
/// attempt or is unknown: the worker should stop.
pub async fn publish_event(
    log: &dyn EventLog,
    session_id: SessionId,
    attempt: Option<&str>,
    event_type: &str,
    payload: Value,
) -> Result<Published, PublishError> {
    if event_type.is_empty() {
        return Err(PublishError::EmptyEventType);
    }
    let event = Event::new(event_type, payload).from_attempt(attempt);
    published(log.append(session_id, &event).await?)
}

/// What an append did, as the worker sees it.
pub(crate) fn published(appended: Appended) -> Result<Published, PublishError> {
    match appended {
        Appended::Logged { id, receivers } => Ok(Published::Logged { id, receivers }),
        Appended::Published { receivers } => Ok(Published::Live { receivers }),
        Appended::Refused(refusal) => Err(PublishError::Refused(refusal)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sse_bridge_core::Delivery;
    use sse_bridge_core::EventBus;
    use sse_bridge_core::embedded::EmbeddedBus;
    use sse_bridge_core::log::SessionMeta;
    use sse_bridge_core::protocol::OnDisconnect;

    #[tokio::test]
    async fn logs_and_publishes_the_envelope_on_the_session_channel() {
        let bus = EmbeddedBus::new(8);
        let id = SessionId::new();
        let meta = SessionMeta::new("anonymous", "native", OnDisconnect::Cancel);
        bus.create(id, &meta).await.unwrap();
        let mut sub = bus.subscribe(&id.event_channel()).await.unwrap();
        let published = publish_event(&bus, id, Some("a1"), "worker_ack", serde_json::json!({}))
            .await
            .unwrap();
        let Published::Logged {
            id: log_id,
            receivers: 1,
        } = published
        else {
            panic!("{published:?}")
        };
        let Delivery::Message(raw) = sub.recv().await else {
            panic!("no message")
        };
        let expected =
            format!(r#"{{"event_type":"worker_ack","payload":{{}},"log_id":"{log_id}"}}"#);
        assert_eq!(std::str::from_utf8(&raw).unwrap(), expected);
        assert!(matches!(
            publish_event(&bus, id, Some("a1"), "", Value::Null).await,
            Err(PublishError::EmptyEventType)
        ));
        assert!(matches!(
            publish_event(&bus, id, Some("other"), "X", Value::Null).await,
            Err(PublishError::Refused(Refusal::Foreign))
        ));
    }
}
