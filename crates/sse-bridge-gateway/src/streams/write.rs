//! `PUT` (create or fork), `POST` (append and close), `DELETE` and `HEAD`.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sse_bridge_core::streams::{
    AppendOutcome, AppendRequest, CreateOutcome, CreateRequest, Expiry, ForkRequest, Lookup,
    Offset, key,
};

use super::headers::{self as h, set};
use super::{Ctx, PREFIX, Refusal};

/// What a refused body may still send us before we answer `413`: read and
/// dropped, so the client sees the answer rather than a reset connection.
const DRAIN_BYTES: u64 = 64 << 20;

/// Reads a body of at most `limit` bytes (`413` beyond).
pub(crate) async fn body(request: Request<Body>, limit: usize) -> Result<Bytes, Refusal> {
    use http_body_util::BodyExt;
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body exceeds {limit} bytes"),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_BYTES) {
        return Err(too_large());
    }
    let mut body = request.into_body();
    let mut kept = Vec::new();
    let mut seen = 0u64;
    let over = |seen: u64| seen > limit as u64 || declared.is_some_and(|n| n > limit as u64);
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(Refusal::bad("the body could not be read"));
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len() as u64;
        if over(seen) {
            if seen > DRAIN_BYTES {
                return Err(too_large());
            }
            kept = Vec::new();
        } else {
            kept.extend_from_slice(&data);
        }
    }
    match over(seen) {
        true => Err(too_large()),
        false => Ok(Bytes::from(kept)),
    }
}

/// The fork headers of a `PUT`.
fn fork(headers: &HeaderMap, caller: &str) -> Result<Option<ForkRequest>, Refusal> {
    let source = h::text(headers, h::FORKED_FROM)?;
    let offset = h::text(headers, h::FORK_OFFSET)?;
    let sub = h::text(headers, h::FORK_SUB_OFFSET)?;
    let Some(source) = source else {
        if sub.is_some() || offset.is_some() {
            return Err(Refusal::bad("fork offsets need Stream-Forked-From"));
        }
        return Ok(None);
    };
    let source = source.trim();
    let path = source
        .strip_prefix(PREFIX)
        .unwrap_or(source.trim_start_matches('/'));
    let offset = offset
        .map(|o| Offset::parse(o).map_err(|e| Refusal::bad(e.to_string())))
        .transpose()?;
    let sub_offset = match sub {
        None => 0,
        Some(s) => h::integer(s)
            .ok_or_else(|| Refusal::bad("Stream-Fork-Sub-Offset must be a non-negative integer"))?,
    };
    Ok(Some(ForkRequest {
        source: key(caller, path),
        offset,
        sub_offset,
    }))
}

/// Where the stream is, as an absolute URL (`Location`).
fn location(headers: &HeaderMap, path: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{scheme}://{host}{PREFIX}{path}")
}

pub(crate) async fn create(
    ctx: &Ctx,
    caller: &str,
    path: &str,
    key: &str,
    request: Request<Body>,
) -> Result<Response, Refusal> {
    let headers = request.headers().clone();
    let expiry = Expiry::parse(
        h::text(&headers, h::TTL)?,
        h::text(&headers, h::EXPIRES_AT)?,
    )
    .map_err(|e| Refusal::bad(e.to_string()))?;
    let fork = fork(&headers, caller)?;
    let body = body(request, ctx.options.max_body_bytes).await?;
    let create = CreateRequest {
        content_type: h::content_type(&headers),
        expiry,
        closed: h::closed(&headers),
        fork,
        body,
    };
    let outcome = ctx
        .store
        .create(key, create)
        .await
        .map_err(Refusal::unavailable)?;
    let (status, info) = match outcome {
        CreateOutcome::Created(info) => (StatusCode::CREATED, info),
        CreateOutcome::Existed(info) => (StatusCode::OK, info),
        CreateOutcome::Conflict => {
            return Err(Refusal::new(
                StatusCode::CONFLICT,
                "the stream exists with another configuration",
            ));
        }
        CreateOutcome::SourceMissing => {
            return Err(Refusal::new(
                StatusCode::NOT_FOUND,
                "source stream not found",
            ));
        }
        CreateOutcome::SourceTypeMismatch => {
            return Err(Refusal::new(
                StatusCode::CONFLICT,
                "the content type is not the source stream's",
            ));
        }
        CreateOutcome::BadForkOffset => {
            return Err(Refusal::bad("the fork offset is past the source's data"));
        }
        CreateOutcome::BadBody(error) => return Err(Refusal::bad(error.to_string())),
        CreateOutcome::Full => return Err(full()),
        CreateOutcome::ForkAcrossShards => {
            return Err(Refusal::new(
                StatusCode::NOT_IMPLEMENTED,
                "this fork's source lives on another Redis Cluster shard: forks across shards are not supported",
            ));
        }
    };
    let mut response = status.into_response();
    h::describe(response.headers_mut(), &info);
    if status == StatusCode::CREATED {
        set(response.headers_mut(), "location", location(&headers, path));
    }
    Ok(response)
}

fn full() -> Refusal {
    Refusal::new(StatusCode::INSUFFICIENT_STORAGE, "the stream store is full")
}

pub(crate) async fn append(
    ctx: &Ctx,
    key: &str,
    request: Request<Body>,
) -> Result<Response, Refusal> {
    let headers = request.headers().clone();
    let close = h::closed(&headers);
    let producer = h::producer(&headers)?;
    let stream_seq = h::text(&headers, h::SEQ)?.map(str::to_owned);
    let body = body(request, ctx.options.max_body_bytes).await?;
    if body.is_empty() && !close {
        return Err(Refusal::bad("an append needs a body"));
    }
    let content_type = h::content_type(&headers);
    if !body.is_empty() && content_type.is_none() {
        return Err(Refusal::bad("an append needs a Content-Type"));
    }
    let with_body = !body.is_empty();
    let epoch = producer.as_ref().map(|p| p.epoch);
    let append = AppendRequest {
        content_type,
        body,
        close,
        stream_seq,
        producer,
    };
    let outcome = ctx
        .store
        .append(key, append)
        .await
        .map_err(Refusal::unavailable)?;
    let conflict = |detail: &str| Refusal::new(StatusCode::CONFLICT, detail);
    match outcome {
        AppendOutcome::Appended { tail, closed } => {
            let status = match (epoch, with_body) {
                (Some(_), true) => StatusCode::OK,
                _ => StatusCode::NO_CONTENT,
            };
            let mut response = status.into_response();
            let out = response.headers_mut();
            set(out, h::NEXT_OFFSET, tail);
            if closed {
                set(out, h::CLOSED, "true");
            }
            if let (Some(epoch), Some(seq)) = (epoch, headers.get(h::PRODUCER_SEQ)) {
                set(out, h::PRODUCER_EPOCH, epoch);
                out.insert(h::PRODUCER_SEQ, seq.clone());
            }
            Ok(response)
        }
        AppendOutcome::Duplicate {
            tail,
            closed,
            last_seq,
        } => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            let out = response.headers_mut();
            set(out, h::NEXT_OFFSET, tail);
            if closed {
                set(out, h::CLOSED, "true");
            }
            if let Some(epoch) = epoch {
                set(out, h::PRODUCER_EPOCH, epoch);
                set(out, h::PRODUCER_SEQ, last_seq);
            }
            Ok(response)
        }
        AppendOutcome::Closed { tail } => Err(conflict("the stream is closed")
            .with(h::CLOSED, "true")
            .with(h::NEXT_OFFSET, tail)),
        AppendOutcome::ContentTypeMismatch => Err(conflict("the content type is not the stream's")),
        AppendOutcome::SeqConflict => Err(conflict("Stream-Seq must grow")),
        AppendOutcome::StaleEpoch { current } => {
            Err(Refusal::new(StatusCode::FORBIDDEN, "stale producer epoch")
                .with(h::PRODUCER_EPOCH, current))
        }
        AppendOutcome::NewEpochNotAtZero => {
            Err(Refusal::bad("a new producer epoch starts at sequence 0"))
        }
        AppendOutcome::Gap { expected, received } => Err(conflict("producer sequence gap")
            .with(h::EXPECTED_SEQ, expected)
            .with(h::RECEIVED_SEQ, received)),
        AppendOutcome::BadBody(error) => Err(Refusal::bad(error.to_string())),
        AppendOutcome::Missing => Err(Refusal::missing()),
        AppendOutcome::Gone => Err(Refusal::gone()),
        AppendOutcome::Full => Err(full()),
    }
}

pub(crate) async fn delete(ctx: &Ctx, key: &str) -> Result<Response, Refusal> {
    match ctx.store.delete(key).await.map_err(Refusal::unavailable)? {
        Lookup::Found(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        Lookup::Missing => Err(Refusal::missing()),
        Lookup::Gone => Err(Refusal::gone()),
    }
}

pub(crate) async fn head(ctx: &Ctx, key: &str) -> Result<Response, Refusal> {
    let info = match ctx.store.head(key).await.map_err(Refusal::unavailable)? {
        Lookup::Found(info) => info,
        Lookup::Missing => return Err(Refusal::missing()),
        Lookup::Gone => return Err(Refusal::gone()),
    };
    let mut response = StatusCode::OK.into_response();
    let out = response.headers_mut();
    h::describe(out, &info);
    h::expiry(out, &info.expiry);
    set(out, "cache-control", "no-store");
    let closed = if info.closed { ":c" } else { "" };
    set(
        out,
        "etag",
        format!("\"{}:-1:{}{closed}\"", info.generation, info.tail),
    );
    Ok(response)
}
