//! Names of the Prometheus metrics sse-bridge emits, in one place.
//!
//! Emitted through the `metrics` facade; the binary installs the exporter.

pub const SESSIONS_STARTED: &str = "sse_bridge_sessions_started_total";
pub const SESSIONS_ACTIVE: &str = "sse_bridge_sessions_active";
/// Label `outcome`: `completed`, `worker_error`, `client_disconnected` or an error code.
pub const SESSIONS_ENDED: &str = "sse_bridge_sessions_ended_total";
/// Label `reason`: why the session could not start (`subscribe`, `dispatch`).
pub const SESSIONS_REFUSED: &str = "sse_bridge_sessions_refused_total";
pub const EVENTS_FORWARDED: &str = "sse_bridge_events_forwarded_total";
/// Label `reason`: `not_json`, `not_object`, `no_event_type`, `too_large`.
pub const MALFORMED_EVENTS: &str = "sse_bridge_malformed_events_total";
pub const CANCELS_PUBLISHED: &str = "sse_bridge_cancels_published_total";
/// Channels this process is subscribed to (set when `/metrics` is scraped).
pub const BUS_CHANNELS: &str = "sse_bridge_event_bus_channels";

/// Registers help texts, so `/metrics` explains itself.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(SESSIONS_STARTED, "Sessions whose job was dispatched");
    describe_gauge!(SESSIONS_ACTIVE, "Sessions currently streaming");
    describe_counter!(SESSIONS_ENDED, "Sessions ended, by outcome");
    describe_counter!(
        SESSIONS_REFUSED,
        "Session requests refused with 503, by reason"
    );
    describe_counter!(EVENTS_FORWARDED, "Worker events forwarded to clients");
    describe_counter!(
        MALFORMED_EVENTS,
        "Channel messages skipped as malformed, by reason"
    );
    describe_counter!(
        CANCELS_PUBLISHED,
        "cancel control messages published after client disconnects"
    );
}
