//! `/v1/stream/sessions/{session_id}`: every session's log as a read-only
//! JSON-mode stream (`sse_bridge_core::streams::session` shapes its pages).
//!
//! The session's owner reads it — catch-up, long-poll, SSE — like any
//! stream; another principal gets `404`, as from `GET …/events`. Offsets
//! are the log's ids, so a read is one log read after the offset (plus the
//! session's metadata, for its owner and whether it ended), and live
//! readers wait on the session's own event channel: every event the log
//! takes wakes them, on any gateway. Clients never write here: a client's
//! `POST` is `403` (workers publish: [`super::publish`]), `PUT` and
//! `DELETE` are `405`.
//!
//! `offset=now` and `HEAD` need the log's last id: the session's terminal
//! event once it ended, otherwise a scan of the log a page at a time (a
//! log is bounded, `--log-max-bytes`).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use sse_bridge_core::EventLog;
use sse_bridge_core::log::{LogEntry, LogId, LogPage, PageLimit, SessionMeta};
use sse_bridge_core::protocol::{Event, SessionId};
use sse_bridge_core::streams::session::{self, LogFrom, LogOffset};

use super::headers::{self as h, set};
use super::read;
use super::source::{Source, View};
use super::{Ctx, Refusal};
use crate::auth::is_worker;

/// Entries one read returns at most (bytes are bounded by the page size).
const PAGE_ENTRIES: usize = 10_000;

/// A session's log, read on behalf of `principal`.
#[derive(Clone)]
pub(crate) struct SessionSource {
    log: Arc<dyn EventLog>,
    id: SessionId,
    principal: String,
}

/// Serves `/v1/stream/sessions/{rest}`.
pub(crate) async fn dispatch(
    ctx: &Ctx,
    log: Arc<dyn EventLog>,
    caller: &str,
    rest: &str,
    request: Request<Body>,
) -> Result<Response, Refusal> {
    let id = rest.parse::<SessionId>().map_err(|_| Refusal::missing())?;
    let source = SessionSource {
        log,
        id,
        principal: caller.to_owned(),
    };
    match *request.method() {
        Method::GET => read::get(ctx, Source::Session(source), request).await,
        Method::HEAD => head(ctx, &source).await,
        Method::OPTIONS => Ok(StatusCode::NO_CONTENT.into_response()),
        Method::POST if is_worker(caller) => {
            super::publish::append(ctx, source.log, source.id, request).await
        }
        Method::POST => Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "a session's stream is written by its worker only",
        )),
        _ => Err(Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "a session's stream is read-only: GET or HEAD",
        )
        .with("allow", "GET, HEAD, OPTIONS")),
    }
}

async fn head(ctx: &Ctx, source: &SessionSource) -> Result<Response, Refusal> {
    let view = source.page(ctx, "now").await?;
    let mut response = StatusCode::OK.into_response();
    let out = response.headers_mut();
    set(out, "content-type", &view.content_type);
    set(out, h::NEXT_OFFSET, &view.next);
    if view.closed {
        set(out, h::CLOSED, "true");
    }
    set(out, "cache-control", "no-store");
    let closed = if view.closed { ":c" } else { "" };
    set(
        out,
        "etag",
        format!("\"{}:-1:{}{closed}\"", view.generation, view.next),
    );
    Ok(response)
}

impl SessionSource {
    /// The session's bus channel: every logged event is published there.
    pub fn channel(&self) -> String {
        self.id.event_channel()
    }

    /// One page from `offset` (see [`super::source::Source::page`]).
    pub async fn page(&self, ctx: &Ctx, offset: &str) -> Result<View, Refusal> {
        let from = LogFrom::parse(Some(offset)).map_err(|e| Refusal::bad(e.to_string()))?;
        let meta = self.meta().await?;
        let (after, page, complete) = match from {
            LogFrom::Tail => {
                let (last, terminal) = self.tail(ctx, &meta).await?;
                let ended = meta.ended.is_some() || terminal;
                (last, session::page(last, &[], ended, true), true)
            }
            LogFrom::Start | LogFrom::After(_) => {
                let after = from.after();
                let read = self.read(after, ctx.options.page_bytes).await?;
                let complete = !read.more;
                let ended = meta.ended.is_some();
                let page = session::page(after, &read.entries, ended, complete);
                (after, page, complete)
            }
        };
        Ok(View {
            content_type: "application/json".to_owned(),
            closed: page.closed,
            generation: meta.created_at_ms,
            start: LogOffset(after.unwrap_or(LogId::ZERO)).to_string(),
            next: page.next.to_string(),
            body: page.body,
            has_data: page.has_data,
            up_to_date: complete,
        })
    }

    /// The session's metadata, if the caller owns it (`404` otherwise).
    async fn meta(&self) -> Result<SessionMeta, Refusal> {
        self.log
            .meta(self.id)
            .await
            .map_err(Refusal::unavailable)?
            .filter(|meta| meta.principal == self.principal)
            .ok_or_else(Refusal::missing)
    }

    /// The entries after `after`; `404` for a log that is gone, `410` when
    /// the log no longer holds what follows `after`.
    async fn read(&self, after: Option<LogId>, bytes: usize) -> Result<LogPage, Refusal> {
        let limit = PageLimit {
            entries: PAGE_ENTRIES,
            bytes,
        };
        let page = self
            .log
            .read(self.id, after, limit)
            .await
            .map_err(Refusal::unavailable)?;
        if !page.known {
            return Err(Refusal::missing());
        }
        if let Some(lost) = page.lost {
            return Err(Refusal::new(
                StatusCode::GONE,
                lost.explanation(after.is_none()),
            ));
        }
        Ok(page)
    }

    /// The log's last id (`None`: empty) and whether that entry is terminal.
    async fn tail(&self, ctx: &Ctx, meta: &SessionMeta) -> Result<(Option<LogId>, bool), Refusal> {
        if let Some(ended) = meta.ended {
            return Ok((Some(ended), true));
        }
        let mut last: Option<LogEntry> = None;
        loop {
            let after = last.as_ref().map(|e| e.id);
            let page = self.read(after, ctx.options.page_bytes).await?;
            let more = page.more;
            if let Some(entry) = page.entries.into_iter().last() {
                last = Some(entry);
            }
            if !more {
                break;
            }
        }
        let terminal = last
            .as_ref()
            .and_then(|e| Event::parse(&e.event, usize::MAX).ok())
            .is_some_and(|e| e.is_terminal());
        Ok((last.map(|e| e.id), terminal))
    }
}
