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
/// Label `reason`: the end that made the gateway ask the worker to stop.
pub const CANCELS_PUBLISHED: &str = "sse_bridge_cancels_published_total";
/// Label `resume`: `true` when the follower gave a `Last-Event-ID`.
pub const FOLLOWS_STARTED: &str = "sse_bridge_follows_started_total";
pub const FOLLOWERS_ACTIVE: &str = "sse_bridge_followers_active";
/// Events served from a session's log (replays and catch-ups).
pub const EVENTS_REPLAYED: &str = "sse_bridge_events_replayed_total";
/// Events of an attempt the session does not belong to, dropped.
pub const FOREIGN_EVENTS: &str = "sse_bridge_foreign_attempt_events_total";
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
        "cancel control messages published to workers, by reason"
    );
    describe_counter!(FOLLOWS_STARTED, "GET …/events streams started, by resume");
    describe_gauge!(FOLLOWERS_ACTIVE, "GET …/events streams currently open");
    describe_counter!(EVENTS_REPLAYED, "Events served from session logs");
    describe_counter!(
        FOREIGN_EVENTS,
        "Events of job attempts a session does not belong to, dropped"
    );
}
