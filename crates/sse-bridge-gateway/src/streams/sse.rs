//! `GET …&live=sse` (§5.8): each page as an `event: data` followed by an
//! `event: control` with the next offset, the cursor and `upToDate`; a
//! closed stream ends with `streamClosed: true`. Binary streams go as
//! base64. The response ends after `sse_duration` (the client reconnects
//! from its last offset) and at shutdown; pages are read only as the
//! client takes them, so a slow reader costs one page.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;
use sse_bridge_core::streams::config;
use tokio::time::Instant;

use super::headers::{self as h, set};
use super::read::{Waiter, cursor};
use super::source::{Source, View};
use super::{Ctx, Refusal};

struct Tail {
    ctx: Ctx,
    source: Source,
    waiter: Waiter,
    from: String,
    first: Option<View>,
    client_cursor: Option<String>,
    base64: bool,
    /// The reader has been told it is up to date at `from`.
    told: bool,
    ends: Instant,
    done: bool,
}

pub(crate) async fn respond(
    ctx: &Ctx,
    source: Source,
    from: String,
    client_cursor: Option<String>,
) -> Result<Response, Refusal> {
    let waiter = Waiter::new(ctx, &source).await?;
    let first = source.page(ctx, &from).await?;
    let base64 = !config::is_text(&first.content_type);
    let tail = Tail {
        ctx: ctx.clone(),
        source,
        waiter,
        from: first.next.clone(),
        first: Some(first),
        client_cursor,
        base64,
        told: false,
        ends: Instant::now() + ctx.options.sse_duration,
        done: false,
    };
    let events = futures::stream::unfold(tail, |mut tail| async move {
        let chunk = tail.next().await?;
        Some((Ok::<_, Infallible>(chunk), tail))
    });
    let mut response = (StatusCode::OK, Body::from_stream(events)).into_response();
    let out = response.headers_mut();
    set(out, "content-type", "text/event-stream");
    set(out, "cache-control", "no-cache");
    set(out, "x-accel-buffering", "no");
    if base64 {
        set(out, h::SSE_ENCODING, "base64");
    }
    Ok(response)
}

impl Tail {
    /// The next bytes to send; `None` ends the response.
    async fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        loop {
            let page = match self.first.take() {
                Some(page) => page,
                None => self.source.page(&self.ctx, &self.from).await.ok()?,
            };
            self.from.clone_from(&page.next);
            let closed = page.closed && page.up_to_date;
            if page.has_data {
                self.told = page.up_to_date;
                self.done = closed;
                let mut out = self.data(&page);
                out.extend_from_slice(&self.control(&page, closed));
                return Some(Bytes::from(out));
            }
            if closed || !self.told {
                self.told = true;
                self.done = closed;
                return Some(Bytes::from(self.control(&page, closed)));
            }
            let until = (Instant::now() + self.ctx.options.long_poll_timeout).min(self.ends);
            if !self.waiter.wait(until).await {
                if Instant::now() >= self.ends || self.ctx.shutdown.is_cancelled() {
                    return None;
                }
                // Still there: a control event keeps proxies from timing out.
                self.told = false;
            }
        }
    }

    fn data(&self, page: &View) -> Vec<u8> {
        let text = match self.base64 {
            true => base64::engine::general_purpose::STANDARD.encode(&page.body),
            false => String::from_utf8_lossy(&page.body).into_owned(),
        };
        let mut out = b"event: data\n".to_vec();
        push_data(&mut out, &text);
        out
    }

    fn control(&self, page: &View, closed: bool) -> Vec<u8> {
        let mut control = json!({ "streamNextOffset": page.next });
        if closed {
            control["streamClosed"] = json!(true);
            control["upToDate"] = json!(true);
        } else {
            control["streamCursor"] = json!(cursor(self.client_cursor.as_deref()));
            if page.up_to_date {
                control["upToDate"] = json!(true);
            }
        }
        let mut out = b"event: control\n".to_vec();
        push_data(&mut out, &control.to_string());
        out
    }
}

/// `data:` lines for `text` (one per line of it) and the blank line.
/// A line that starts with a space gets one more, which SSE strips.
fn push_data(out: &mut Vec<u8>, text: &str) {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    for line in text.split('\n') {
        out.extend_from_slice(b"data:");
        if line.starts_with(' ') {
            out.push(b' ');
        }
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}
