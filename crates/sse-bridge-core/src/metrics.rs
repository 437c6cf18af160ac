//! Names of the Prometheus metrics sse-bridge emits, in one place.
//!
//! Emitted through the `metrics` facade; the binary installs the exporter
//! (`sse_bridge_gateway::install_metrics`, which gives the `_seconds`
//! histograms their buckets). A session's timings are reported by its
//! creating stream only, so followers and resumes do not count twice.

pub const SESSIONS_STARTED: &str = "sse_bridge_sessions_started_total";
pub const SESSIONS_ACTIVE: &str = "sse_bridge_sessions_active";
/// Labels `outcome` (`completed`, `worker_error`, `client_disconnected` or
/// an error code) and `format` (`native`, `ag-ui`, `ai-sdk`).
pub const SESSIONS_ENDED: &str = "sse_bridge_sessions_ended_total";
/// Time from the session's creation to its `worker_ack`.
pub const ACK_SECONDS: &str = "sse_bridge_worker_ack_seconds";
/// Time from the session's creation to its first content event (thought,
/// tool call or answer piece).
pub const FIRST_CONTENT_SECONDS: &str = "sse_bridge_first_content_seconds";
/// Time between consecutive worker events of a session after its ack.
pub const EVENT_GAP_SECONDS: &str = "sse_bridge_event_gap_seconds";
/// Time from a session's creation to the end of its creating stream.
pub const SESSION_DURATION_SECONDS: &str = "sse_bridge_session_duration_seconds";
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
/// Times the Redis subscriber connection was re-established.
pub const REDIS_RECONNECTS: &str = "sse_bridge_redis_reconnects_total";
/// Channels this process is subscribed to (set when `/metrics` is scraped).
pub const BUS_CHANNELS: &str = "sse_bridge_event_bus_channels";

/// Runs that ended with an `interrupt` (PROTOCOL §8), recorded on their thread.
pub const INTERRUPTS_RAISED: &str = "sse_bridge_interrupts_raised_total";
/// Resumes, by status: `accepted`, or why refused (`conflict`, `unknown`,
/// `expired`, `not_found`).
pub const RESUMES: &str = "sse_bridge_resumes_total";
/// Thread record writes that lost a race with another gateway's and were
/// re-decided (two resumes of one interrupt show here).
pub const THREAD_WRITE_CONFLICTS: &str = "sse_bridge_thread_write_conflicts_total";

/// Registers help texts, so `/metrics` explains itself.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(SESSIONS_STARTED, "Sessions whose job was dispatched");
    describe_gauge!(SESSIONS_ACTIVE, "Sessions currently streaming");
    describe_counter!(SESSIONS_ENDED, "Sessions ended, by outcome and format");
    describe_counter!(
        INTERRUPTS_RAISED,
        "Runs that ended waiting for outside input (interrupt), recorded on their thread"
    );
    describe_counter!(RESUMES, "Resumes of interrupted threads, by status");
    describe_counter!(
        THREAD_WRITE_CONFLICTS,
        "Thread record writes re-decided after another gateway wrote first"
    );
    describe_histogram!(
        ACK_SECONDS,
        Unit::Seconds,
        "Time from session creation to worker_ack"
    );
    describe_histogram!(
        FIRST_CONTENT_SECONDS,
        Unit::Seconds,
        "Time from session creation to the first thought, tool call or answer piece"
    );
    describe_histogram!(
        EVENT_GAP_SECONDS,
        Unit::Seconds,
        "Time between consecutive worker events of a session"
    );
    describe_histogram!(
        SESSION_DURATION_SECONDS,
        Unit::Seconds,
        "Time from session creation to the end of its stream"
    );
    describe_counter!(
        REDIS_RECONNECTS,
        "Redis subscriber connections re-established"
    );
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
