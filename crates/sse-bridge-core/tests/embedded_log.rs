//! The embedded log against the shared `EventLog` behaviour.

use sse_bridge_core::embedded::EmbeddedBus;
use sse_bridge_core::log::LogLimits;

#[tokio::test]
async fn embedded_log_behaves_like_every_event_log() {
    let limits = LogLimits {
        max_len: 20,
        live: sse_bridge_testkit::log::LIVE,
        ..LogLimits::default()
    };
    let bus =
        EmbeddedBus::with_log_limits(sse_bridge_core::SubscriptionBound::messages(64), limits);
    sse_bridge_testkit::log::check_event_log(&bus, 50).await;
}
