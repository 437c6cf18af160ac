//! Gives memory freed after a burst back to the system.
//!
//! The gateway's own allocations go to jemalloc (`main.rs`), which returns
//! freed pages by itself as they decay. What still uses glibc's malloc —
//! the C libraries (librdkafka with the Kafka backend) and anything
//! allocated before `main` — keeps a burst's peak in its arenas as RSS (with
//! glibc for everything, 13.5 KB per held HTTP/2 stream after 10,000 opened
//! at once against 5.9 KB opened at a steady pace: BENCHMARKS.md).
//! `malloc_trim(0)` returns every whole free page of those arenas, so it is
//! called now and then from a blocking thread (it holds glibc's locks while
//! it scans).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Trims the allocator every `every` until `shutdown`.
pub async fn trim_now_and_then(every: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                let _ = tokio::task::spawn_blocking(trim).await;
            }
            () = shutdown.cancelled() => return,
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim has no preconditions; it only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
