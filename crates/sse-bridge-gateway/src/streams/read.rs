//! `GET`: catch-up reads (pages with ETags and cache headers) and
//! long-polls, plus the [`Waiter`] that long-polls and SSE share.
//!
//! A live reader subscribes to the stream's channel *before* it reads, so
//! an append that lands between its read and its wait still wakes it.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sse_bridge_core::streams::config;
use sse_bridge_core::{Delivery, Subscription};
use tokio::time::{Duration, Instant};

use super::headers::{self as h, set};
use super::source::{Source, View};
use super::{Ctx, Refusal};

/// The `live` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Live {
    No,
    LongPoll,
    Sse,
}

/// A `GET`'s query.
pub(crate) struct Query {
    pub offset: Option<String>,
    pub live: Live,
    pub cursor: Option<String>,
}

fn query(raw: Option<&str>) -> Result<Query, Refusal> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|_| Refusal::bad("the query string is malformed"))?;
    let mut query = Query {
        offset: None,
        live: Live::No,
        cursor: None,
    };
    for (name, value) in pairs {
        match name.as_str() {
            "offset" if query.offset.is_some() => {
                return Err(Refusal::bad("offset is given more than once"));
            }
            "offset" if value.is_empty() => return Err(Refusal::bad("offset is empty")),
            "offset" => query.offset = Some(value),
            "live" => {
                query.live = match value.as_str() {
                    "long-poll" => Live::LongPoll,
                    "sse" => Live::Sse,
                    _ => return Err(Refusal::bad("live must be long-poll or sse")),
                }
            }
            "cursor" => query.cursor = Some(value),
            _ => {}
        }
    }
    if query.live != Live::No && query.offset.is_none() {
        return Err(Refusal::bad("a live read needs an offset"));
    }
    Ok(query)
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The `Stream-Cursor` for a live response.
pub(crate) fn cursor(client: Option<&str>) -> String {
    let jitter = (uuid::Uuid::new_v4().as_u128() % 10_000) as f64 / 10_000.0;
    config::cursor(client, now_ms(), jitter)
}

pub(crate) async fn get(
    ctx: &Ctx,
    source: Source,
    request: Request<Body>,
) -> Result<Response, Refusal> {
    let query = query(request.uri().query())?;
    let offset = query.offset.unwrap_or_else(|| "-1".to_owned());
    match query.live {
        Live::No => {
            let page = source.page(ctx, &offset).await?;
            Ok(respond(
                ctx,
                &page,
                offset == "now",
                None,
                request.headers(),
            ))
        }
        Live::LongPoll => {
            long_poll(
                ctx,
                &source,
                offset,
                query.cursor.as_deref(),
                request.headers(),
            )
            .await
        }
        Live::Sse => super::sse::respond(ctx, source, offset, query.cursor).await,
    }
}

/// A page as a `200` (or `304` for a matching `If-None-Match`).
fn respond(
    ctx: &Ctx,
    page: &View,
    at_now: bool,
    live_cursor: Option<String>,
    request: &HeaderMap,
) -> Response {
    let closed = page.closed && page.up_to_date;
    let mut out = HeaderMap::new();
    set(&mut out, "content-type", &page.content_type);
    set(&mut out, h::NEXT_OFFSET, &page.next);
    if page.up_to_date {
        set(&mut out, h::UP_TO_DATE, "true");
    }
    if closed {
        set(&mut out, h::CLOSED, "true");
    }
    if let Some(cursor) = live_cursor {
        set(&mut out, h::CURSOR, cursor);
    }
    // Pages with data never change: caches may keep them. A page at the
    // tail is what "now" is, so it is not kept.
    let cache = match (at_now || !page.has_data, ctx.private) {
        (true, _) => "no-store",
        (false, true) => "private, max-age=60, stale-while-revalidate=300",
        (false, false) => "public, max-age=60, stale-while-revalidate=300",
    };
    set(&mut out, "cache-control", cache);
    if !at_now {
        let suffix = if closed { ":c" } else { "" };
        let etag = format!(
            "\"{}:{}:{}{suffix}\"",
            page.generation, page.start, page.next
        );
        let matches = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
        set(&mut out, "etag", &etag);
        if matches {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            response.headers_mut().extend(out);
            return response;
        }
    }
    let mut response = (StatusCode::OK, page.body.clone()).into_response();
    response.headers_mut().extend(out);
    response
}

async fn long_poll(
    ctx: &Ctx,
    source: &Source,
    mut offset: String,
    client_cursor: Option<&str>,
    request: &HeaderMap,
) -> Result<Response, Refusal> {
    let mut waiter = Waiter::new(ctx, source).await?;
    let deadline = Instant::now() + ctx.options.long_poll_timeout;
    loop {
        let page = source.page(ctx, &offset).await?;
        if page.has_data {
            return Ok(respond(
                ctx,
                &page,
                false,
                Some(cursor(client_cursor)),
                request,
            ));
        }
        let mut response = StatusCode::NO_CONTENT.into_response();
        let out = response.headers_mut();
        set(out, h::NEXT_OFFSET, &page.next);
        set(out, h::UP_TO_DATE, "true");
        set(out, "cache-control", "no-store");
        if page.closed {
            set(out, h::CLOSED, "true");
            return Ok(response);
        }
        offset = page.next;
        if !waiter.wait(deadline).await {
            set(response.headers_mut(), h::CURSOR, cursor(client_cursor));
            return Ok(response);
        }
    }
}

/// Waits for notices of changes to one stream.
pub(crate) struct Waiter {
    ctx: Ctx,
    channel: String,
    subscription: Option<Subscription>,
}

impl Waiter {
    /// Subscribed (so nothing published from now on is missed).
    pub async fn new(ctx: &Ctx, source: &Source) -> Result<Waiter, Refusal> {
        let channel = source.channel();
        let subscription = ctx
            .bus
            .subscribe(&channel)
            .await
            .map_err(Refusal::unavailable)?;
        Ok(Waiter {
            ctx: ctx.clone(),
            channel,
            subscription: Some(subscription),
        })
    }

    /// Whether a change may have happened before `deadline` (then read
    /// again); `false` at the deadline or at shutdown.
    pub async fn wait(&mut self, deadline: Instant) -> bool {
        let Some(subscription) = self.subscription.as_mut() else {
            // No subscription (the bus dropped it and resubscribing
            // failed): poll.
            let poll = (Instant::now() + Duration::from_millis(250)).min(deadline);
            tokio::select! {
                _ = tokio::time::sleep_until(poll) => {}
                _ = self.ctx.shutdown.cancelled() => return false,
            }
            self.subscription = self.ctx.bus.subscribe(&self.channel).await.ok();
            return Instant::now() < deadline;
        };
        let delivery = tokio::select! {
            delivery = subscription.recv() => delivery,
            _ = tokio::time::sleep_until(deadline) => return false,
            _ = self.ctx.shutdown.cancelled() => return false,
        };
        match delivery {
            Delivery::Message(_) => {
                // One read covers every notice queued so far.
                while let Some(Delivery::Message(_)) = subscription.try_recv() {}
            }
            Delivery::Overflowed | Delivery::Closed => {
                self.subscription = self.ctx.bus.subscribe(&self.channel).await.ok();
            }
        }
        true
    }
}
