//! `POST /v1/stream/sessions/{id}` by a worker: a session's events
//! published over HTTP, through the same `EventLog::append` as a worker on
//! the bus, so every rule of PROTOCOL §4 holds — the first attempt to ack
//! owns the session, later attempts are fenced (`403`, with the owner's
//! epoch), one terminal event, the log's bounds.
//!
//! The producer headers name the attempt: `Producer-Id` the worker,
//! `Producer-Epoch` its attempt at this job, `Producer-Seq` the request
//! within the attempt. The body is one event or a JSON array of events
//! (`{"event_type", "payload"}`).
//!
//! Retries are exact by sequence: a *ledger* per session — a small stream
//! of the stream store whose producer is the attempt (`<id>#<epoch>`) —
//! applies the producer rule first (a repeated sequence is `204` and
//! appends nothing, a gap `409`), then the events go to the log, each with
//! an idempotency key `<attempt>:<seq>:<n>`. The two steps run in a task
//! of their own, so a client that hangs up cannot separate them; a broker
//! error between them is retried with `EventLog::append_again`, which
//! finds an event the first try did append by its key. Ownership is the
//! log's alone: the ledger fences nothing (its epoch is always 0).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use sse_bridge_core::EventLog;
use sse_bridge_core::log::{Appended, LogId, PageLimit, Refusal as LogRefusal};
use sse_bridge_core::protocol::{Event, SessionId};
use sse_bridge_core::streams::session::LogOffset;
use sse_bridge_core::streams::{
    AppendOutcome, AppendRequest, CreateOutcome, CreateRequest, Expiry, ProducerHeaders,
    StreamStore, json,
};

use super::headers::{self as h, set};
use super::write::body;
use super::{Ctx, Refusal};

/// A ledger lives this long after its last write (longer than any session).
const LEDGER_TTL_SECONDS: u64 = 24 * 3600;
/// How long a broker error during the log's appends is retried.
const RETRY_FOR: Duration = Duration::from_secs(10);

/// The ledger's store key for session `id` (an owner no principal can be).
fn ledger_key(id: SessionId) -> String {
    sse_bridge_core::streams::key("@ledger", &id.to_string())
}

/// The attempt a producer's epoch stands for.
fn attempt(producer: &ProducerHeaders) -> String {
    format!("{}#{}", producer.id, producer.epoch)
}

pub(crate) async fn append(
    ctx: &Ctx,
    log: Arc<dyn EventLog>,
    id: SessionId,
    request: Request<Body>,
) -> Result<Response, Refusal> {
    let headers = request.headers().clone();
    let producer = h::producer(&headers)?.ok_or_else(|| {
        Refusal::bad("a worker appends with Producer-Id, Producer-Epoch and Producer-Seq")
    })?;
    let json_body =
        h::content_type(&headers).is_some_and(|t| sse_bridge_core::streams::config::is_json(&t));
    if !json_body {
        return Err(Refusal::new(
            StatusCode::CONFLICT,
            "a session's stream is application/json",
        ));
    }
    let body = body(request, ctx.options.max_body_bytes).await?;
    let attempt = attempt(&producer);
    let events = events(&body, &attempt, producer.seq)?;
    let store = ctx.store.clone();
    let work = tokio::spawn(async move { publish(store, log, id, producer, events).await });
    work.await
        .unwrap_or_else(|_| Err(Refusal::unavailable("the append was interrupted")))
}

/// The body's events, as attempt `attempt` with their idempotency keys.
fn events(body: &Bytes, attempt: &str, seq: u64) -> Result<Vec<Event>, Refusal> {
    let messages = json::messages(body, false).map_err(|e| Refusal::bad(e.to_string()))?;
    messages
        .iter()
        .enumerate()
        .map(|(n, raw)| {
            Event::parse(raw, raw.len())
                .map(|event| {
                    event
                        .from_attempt(Some(attempt))
                        .with_key(&format!("{attempt}:{seq}:{n}"))
                })
                .map_err(|e| Refusal::bad(format!("event {n}: {e}")))
        })
        .collect()
}

async fn publish(
    store: Arc<dyn StreamStore>,
    log: Arc<dyn EventLog>,
    id: SessionId,
    producer: ProducerHeaders,
    events: Vec<Event>,
) -> Result<Response, Refusal> {
    let epoch = producer.epoch;
    let seq = producer.seq;
    let echo = |mut response: Response| {
        let out = response.headers_mut();
        set(out, h::PRODUCER_EPOCH, epoch);
        set(out, h::PRODUCER_SEQ, seq);
        response
    };
    match ledger(store.as_ref(), id, &producer).await? {
        AppendOutcome::Appended { .. } => {}
        AppendOutcome::Duplicate { .. } => return Ok(echo(StatusCode::NO_CONTENT.into_response())),
        AppendOutcome::Gap { expected, received } => {
            return Err(Refusal::new(StatusCode::CONFLICT, "producer sequence gap")
                .with(h::EXPECTED_SEQ, expected)
                .with(h::RECEIVED_SEQ, received));
        }
        AppendOutcome::Full => {
            return Err(Refusal::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "the stream store is full",
            ));
        }
        other => {
            return Err(Refusal::unavailable(format!(
                "the ledger answered {other:?}"
            )));
        }
    }
    let mut last: Option<LogId> = None;
    let mut closed = false;
    for event in &events {
        match append_one(log.as_ref(), id, event).await? {
            Appended::Logged { id, .. } => {
                last = Some(id);
                closed = event.is_terminal();
            }
            Appended::Published { .. } => {}
            Appended::Refused(refusal) => return Err(refused(log.as_ref(), id, refusal).await),
        }
    }
    let mut response = echo(StatusCode::OK.into_response());
    let out = response.headers_mut();
    if let Some(last) = last {
        set(out, h::NEXT_OFFSET, LogOffset(last));
    }
    if closed {
        set(out, h::CLOSED, "true");
    }
    Ok(response)
}

/// The producer rule on the session's ledger (created on first use).
async fn ledger(
    store: &dyn StreamStore,
    id: SessionId,
    producer: &ProducerHeaders,
) -> Result<AppendOutcome, Refusal> {
    let key = ledger_key(id);
    let request = || AppendRequest {
        content_type: Some("application/octet-stream".to_owned()),
        body: Bytes::from_static(b"."),
        close: false,
        stream_seq: None,
        producer: Some(ProducerHeaders {
            id: attempt(producer),
            epoch: 0,
            seq: producer.seq,
        }),
    };
    let outcome = store
        .append(&key, request())
        .await
        .map_err(Refusal::unavailable)?;
    if outcome != AppendOutcome::Missing {
        return Ok(outcome);
    }
    let create = CreateRequest {
        content_type: Some("application/octet-stream".to_owned()),
        expiry: Expiry::Ttl(LEDGER_TTL_SECONDS),
        closed: false,
        fork: None,
        body: Bytes::new(),
    };
    match store
        .create(&key, create)
        .await
        .map_err(Refusal::unavailable)?
    {
        CreateOutcome::Created(_) | CreateOutcome::Existed(_) => {}
        other => {
            return Err(Refusal::unavailable(format!(
                "the ledger answered {other:?}"
            )));
        }
    }
    store
        .append(&key, request())
        .await
        .map_err(Refusal::unavailable)
}

/// One event through the log; a broker error is retried, as the same
/// append (found by its key if the failed try was applied), for a while.
async fn append_one(log: &dyn EventLog, id: SessionId, event: &Event) -> Result<Appended, Refusal> {
    let deadline = tokio::time::Instant::now() + RETRY_FOR;
    let mut result = log.append(id, event).await;
    let mut pause = Duration::from_millis(50);
    loop {
        match result {
            Ok(appended) => return Ok(appended),
            Err(error) if tokio::time::Instant::now() + pause >= deadline => {
                return Err(Refusal::unavailable(error));
            }
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
                result = log.append_again(id, event).await;
            }
        }
    }
}

/// The answer to a refused event.
async fn refused(log: &dyn EventLog, id: SessionId, refusal: LogRefusal) -> Refusal {
    let detail = refusal.to_string();
    match refusal {
        LogRefusal::UnknownSession => Refusal::missing(),
        LogRefusal::Ended => Refusal::new(StatusCode::CONFLICT, detail).with(h::CLOSED, "true"),
        LogRefusal::NotAcked => Refusal::new(StatusCode::CONFLICT, detail),
        LogRefusal::Foreign | LogRefusal::Busy | LogRefusal::Lost => {
            let fenced = Refusal::new(StatusCode::FORBIDDEN, detail);
            match owner_epoch(log, id).await {
                Some(epoch) => fenced.with(h::PRODUCER_EPOCH, epoch),
                None => fenced,
            }
        }
    }
}

/// The epoch of the attempt that owns the session, when it publishes over
/// HTTP (its attempt is `<producer>#<epoch>`): the last ack of the acks
/// that open the log (a takeover is logged only before any output).
async fn owner_epoch(log: &dyn EventLog, id: SessionId) -> Option<u64> {
    let head = PageLimit {
        entries: 16,
        bytes: 4096,
    };
    let page = log.read(id, None, head).await.ok()?;
    let owner = page
        .entries
        .iter()
        .map_while(|entry| Event::parse(&entry.event, entry.event.len()).ok())
        .take_while(|event| event.event_type() == sse_bridge_core::protocol::event_type::WORKER_ACK)
        .last()?;
    let (_, epoch) = owner.attempt()?.rsplit_once('#')?;
    epoch.parse().ok()
}
