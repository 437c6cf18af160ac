//! What a `GET` reads: a stream of the [`StreamStore`](sse_bridge_core::streams::StreamStore),
//! or a session's log ([`super::sessions`]). Both give the read path the
//! same [`View`] of a page and a bus channel to wait on, so catch-up,
//! long-poll and SSE are written once.

use axum::body::Bytes;
use sse_bridge_core::streams::{Page, ReadFrom, ReadOutcome, channel};

use super::sessions::SessionSource;
use super::{Ctx, Refusal};

/// A readable stream.
#[derive(Clone)]
pub(crate) enum Source {
    /// A stored stream, by its key.
    Store(String),
    /// A session's log.
    Session(SessionSource),
}

/// One page, as every read answers it.
#[derive(Debug, Clone)]
pub(crate) struct View {
    pub content_type: String,
    /// The stream is closed (shown only once a read reaches its tail).
    pub closed: bool,
    /// Differs between two streams that had the same path (ETags use it).
    pub generation: u64,
    /// Where the page starts and where the next read starts (wire form).
    pub start: String,
    pub next: String,
    /// The bytes, or for JSON streams the messages as one array.
    pub body: Bytes,
    pub has_data: bool,
    pub up_to_date: bool,
}

impl From<Page> for View {
    fn from(page: Page) -> Self {
        View {
            content_type: page.info.content_type,
            closed: page.info.closed,
            generation: page.info.generation,
            start: page.start.to_string(),
            next: page.next.to_string(),
            body: page.body,
            has_data: page.has_data,
            up_to_date: page.up_to_date,
        }
    }
}

impl Source {
    /// Reads one page from `offset` (the query's: `-1`, `now`, or an offset
    /// this source wrote); `400` for any other, `404` / `410` when there is
    /// nothing to read.
    pub async fn page(&self, ctx: &Ctx, offset: &str) -> Result<View, Refusal> {
        match self {
            Source::Store(key) => {
                let from =
                    ReadFrom::parse(Some(offset)).map_err(|e| Refusal::bad(e.to_string()))?;
                let outcome = ctx
                    .store
                    .read(key, from, ctx.options.page_bytes)
                    .await
                    .map_err(Refusal::unavailable)?;
                match outcome {
                    ReadOutcome::Page(page) => Ok(page.into()),
                    ReadOutcome::Missing => Err(Refusal::missing()),
                    ReadOutcome::Gone => Err(Refusal::gone()),
                }
            }
            Source::Session(session) => session.page(ctx, offset).await,
        }
    }

    /// The bus channel that announces the stream's changes.
    pub fn channel(&self) -> String {
        match self {
            Source::Store(key) => channel(key),
            Source::Session(session) => session.channel(),
        }
    }
}
