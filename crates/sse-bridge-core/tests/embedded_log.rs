//! The embedded log against the shared `EventLog` behaviour.

use sse_bridge_core::embedded::EmbeddedBus;
use sse_bridge_testkit::log::CHECK_LIMITS;

#[tokio::test]
async fn embedded_log_behaves_like_every_event_log() {
    let bus = EmbeddedBus::with_log_limits(
        sse_bridge_core::SubscriptionBound::messages(64),
        CHECK_LIMITS,
    );
    sse_bridge_testkit::log::check_event_log(&bus).await;
}
