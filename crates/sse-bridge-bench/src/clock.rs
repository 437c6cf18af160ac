//! One monotonic clock for the worker side and the client side of the
//! bench, which run in the same process: latency is receive − publish.

use std::sync::OnceLock;
use std::time::Instant;

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Microseconds since the bench started.
pub fn now_us() -> u64 {
    origin().elapsed().as_micros() as u64
}
