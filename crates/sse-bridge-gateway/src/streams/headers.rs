//! The protocol's headers: names, the strict parsing of what requests
//! send, and the metadata every response repeats.

use axum::http::{HeaderMap, HeaderValue, header};
use sse_bridge_core::streams::{Expiry, ProducerHeaders, StreamInfo};

use super::Refusal;

pub const NEXT_OFFSET: &str = "stream-next-offset";
pub const UP_TO_DATE: &str = "stream-up-to-date";
pub const CLOSED: &str = "stream-closed";
pub const CURSOR: &str = "stream-cursor";
pub const TTL: &str = "stream-ttl";
pub const EXPIRES_AT: &str = "stream-expires-at";
pub const SEQ: &str = "stream-seq";
pub const FORKED_FROM: &str = "stream-forked-from";
pub const FORK_OFFSET: &str = "stream-fork-offset";
pub const FORK_SUB_OFFSET: &str = "stream-fork-sub-offset";
pub const SSE_ENCODING: &str = "stream-sse-data-encoding";
pub const PRODUCER_ID: &str = "producer-id";
pub const PRODUCER_EPOCH: &str = "producer-epoch";
pub const PRODUCER_SEQ: &str = "producer-seq";
pub const EXPECTED_SEQ: &str = "producer-expected-seq";
pub const RECEIVED_SEQ: &str = "producer-received-seq";

/// The largest epoch or sequence (2^53 − 1, for JavaScript).
const MAX_SAFE: u64 = (1 << 53) - 1;

/// A header as text (`None`: absent); not text is a `400`.
pub fn text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Refusal> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map_err(|_| Refusal::bad(format!("{name} is not text")))
        })
        .transpose()
}

/// `Stream-Closed` counts only when it is `true` (any case); anything else
/// is as if absent (§4.1).
pub fn closed(headers: &HeaderMap) -> bool {
    headers
        .get(CLOSED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// A non-negative integer in canonical decimal, at most 2^53 − 1.
pub fn integer(text: &str) -> Option<u64> {
    let canonical = text == "0" || (!text.is_empty() && !text.starts_with('0'));
    if !canonical || !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 16 {
        return None;
    }
    text.parse().ok().filter(|n| *n <= MAX_SAFE)
}

/// The three producer headers: all or none (§5.2.1).
pub fn producer(headers: &HeaderMap) -> Result<Option<ProducerHeaders>, Refusal> {
    let id = text(headers, PRODUCER_ID)?;
    let epoch = text(headers, PRODUCER_EPOCH)?;
    let seq = text(headers, PRODUCER_SEQ)?;
    match (id, epoch, seq) {
        (None, None, None) => Ok(None),
        (Some(id), Some(epoch), Some(seq)) => {
            if id.is_empty() {
                return Err(Refusal::bad("Producer-Id must not be empty"));
            }
            let epoch = epoch
                .parse::<u64>()
                .ok()
                .filter(|n| *n <= MAX_SAFE && epoch.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| Refusal::bad("Producer-Epoch must be a non-negative integer"))?;
            let seq = seq
                .parse::<u64>()
                .ok()
                .filter(|n| *n <= MAX_SAFE && seq.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| Refusal::bad("Producer-Seq must be a non-negative integer"))?;
            Ok(Some(ProducerHeaders {
                id: id.to_owned(),
                epoch,
                seq,
            }))
        }
        _ => Err(Refusal::bad(
            "Producer-Id, Producer-Epoch and Producer-Seq go together",
        )),
    }
}

/// A request's content type, when it names a media type (`type/subtype`).
pub fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?.trim();
    let media = value.split(';').next()?.trim();
    let (kind, sub) = media.split_once('/')?;
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    (token(kind) && token(sub)).then(|| value.to_owned())
}

/// Sets a header from text we made (never fails for our values).
pub fn set(headers: &mut HeaderMap, name: &'static str, value: impl ToString) {
    if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
        headers.insert(name, value);
    }
}

/// `Content-Type`, `Stream-Next-Offset`, and `Stream-Closed` when closed.
pub fn describe(headers: &mut HeaderMap, info: &StreamInfo) {
    set(headers, "content-type", &info.content_type);
    set(headers, NEXT_OFFSET, info.tail);
    if info.closed {
        set(headers, CLOSED, "true");
    }
}

/// `Stream-TTL` / `Stream-Expires-At` as configured.
pub fn expiry(headers: &mut HeaderMap, expiry: &Expiry) {
    match expiry {
        Expiry::Never => {}
        Expiry::Ttl(seconds) => set(headers, TTL, seconds),
        Expiry::At(at) => set(headers, EXPIRES_AT, &at.text),
    }
}
