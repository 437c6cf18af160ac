//! The client side of the bench: POST, read the SSE body incrementally,
//! parse frames the simple way (split on `\n\n`, `data: ` prefix), and
//! verify the session: `worker_ack` first, every piece in order, the
//! terminal event last, then the end of the body.

use std::borrow::Cow;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Deserialize;

use crate::clock::now_us;

/// One SSE event as the bench's worker sends it (`held` reads the same).
#[derive(Deserialize)]
pub(crate) struct Frame<'a> {
    #[serde(borrow)]
    pub event_type: Cow<'a, str>,
    #[serde(default)]
    pub payload: Piece,
}

/// A piece's payload: its sequence number and publish time; held-load
/// pieces carry their phase, and an `error` event its code.
#[derive(Deserialize, Default)]
pub(crate) struct Piece {
    pub seq: Option<u64>,
    pub t: Option<u64>,
    pub phase: Option<usize>,
    pub code: Option<String>,
}

/// What one verified session measured.
pub struct SessionTiming {
    /// POST sent → `worker_ack` received, µs.
    pub setup_us: u64,
    pub events: u64,
}

/// Runs one session; `latency` records publish → receive per piece, µs.
/// `on_ack` runs once the ack arrived (the hold scenario counts them).
pub async fn run_session(
    client: &reqwest::Client,
    url: &str,
    pieces: u64,
    latency: &mut Histogram<u64>,
    on_ack: impl FnOnce(),
) -> Result<SessionTiming, String> {
    let started = now_us();
    let response = client
        .post(format!("{url}/v1/react/sessions"))
        .header("content-type", "application/json")
        .body(r#"{"user_query":"bench","model_alias":"bench"}"#)
        .send()
        .await
        .map_err(|e| format!("POST failed: {e}"))?;
    if response.status() != 200 {
        return Err(format!("POST answered {}", response.status()));
    }
    let mut body = response.bytes_stream();
    let mut buffer = BytesMut::with_capacity(16 * 1024);
    let mut state = Verify {
        next_seq: 0,
        pieces,
        acked: false,
        ended: false,
        events: 0,
        setup_us: 0,
    };
    let mut on_ack = Some(on_ack);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("body read failed: {e}"))?;
        buffer.extend_from_slice(&chunk);
        while let Some(end) = find_blank_line(&buffer) {
            let frame = buffer.split_to(end);
            buffer.advance(2);
            if let Some(json) = frame.strip_prefix(b"data: ") {
                state.frame(json, started, latency)?;
                if state.acked
                    && let Some(on_ack) = on_ack.take()
                {
                    on_ack();
                }
            }
        }
    }
    if !state.ended {
        return Err(format!(
            "body ended after {} events without FinalAnswerStreamEnd",
            state.events
        ));
    }
    Ok(SessionTiming {
        setup_us: state.setup_us,
        events: state.events,
    })
}

struct Verify {
    next_seq: u64,
    pieces: u64,
    acked: bool,
    ended: bool,
    events: u64,
    setup_us: u64,
}

impl Verify {
    fn frame(
        &mut self,
        json: &[u8],
        started: u64,
        latency: &mut Histogram<u64>,
    ) -> Result<(), String> {
        let now = now_us();
        let frame: Frame =
            serde_json::from_slice(json).map_err(|e| format!("bad frame JSON: {e}"))?;
        if self.ended {
            return Err("event after the terminal event".into());
        }
        self.events += 1;
        match (&*frame.event_type, self.acked) {
            ("worker_ack", false) => {
                self.acked = true;
                self.setup_us = now.saturating_sub(started);
            }
            ("FinalAnswerStream", true) => {
                if frame.payload.seq != Some(self.next_seq) {
                    return Err(format!(
                        "piece {:?} where {} was due",
                        frame.payload.seq, self.next_seq
                    ));
                }
                self.next_seq += 1;
                if let Some(t) = frame.payload.t {
                    latency.saturating_record(now.saturating_sub(t));
                }
            }
            ("FinalAnswerStreamEnd", true) if self.next_seq == self.pieces => self.ended = true,
            (other, acked) => {
                return Err(format!(
                    "unexpected {other} (acked: {acked}, pieces so far: {})",
                    self.next_seq
                ));
            }
        }
        Ok(())
    }
}

pub(crate) fn find_blank_line(buffer: &[u8]) -> Option<usize> {
    buffer.windows(2).position(|w| w == b"\n\n")
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client without TLS always builds")
}
