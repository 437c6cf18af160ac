//! The request head, as the HTTP/1.1 fast path reads it: parsed with
//! `httparse` and sorted into the plain requests the fast path serves and
//! everything else, which hyper serves.
//!
//! Strictness comes from that split. The fast path takes only the simplest
//! framing: HTTP/1.1, an origin-form target, a method of this API, a body
//! given by at most one all-digit `Content-Length` (or none), no
//! `Transfer-Encoding`, no `Expect`, no upgrade. Anything ambiguous —
//! `Content-Length` with `Transfer-Encoding`, two `Content-Length`s, a
//! chunked body, `Expect: 100-continue`, HTTP/1.0 — goes to hyper, which
//! answers or refuses it as it always did. What no server accepts (bad
//! syntax, a head too large, too many headers) is refused here.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use bytes::Bytes;

/// Largest request head accepted (nginx's default limit is 4 × 8 KiB).
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
/// Most header fields accepted (hyper's default).
pub const MAX_HEADERS: usize = 100;
/// Largest body the fast path reads itself; larger ones go to hyper, and
/// the endpoint's own limit answers them.
pub const MAX_FAST_BODY_BYTES: usize = 64 * 1024;

/// What the bytes read so far hold.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // returned once per request and taken apart at once
pub enum Head {
    /// The head is not complete yet.
    Partial,
    /// A request the fast path serves.
    Plain(PlainRequest),
    /// A well-formed start that the fast path leaves to hyper.
    NotPlain,
}

/// A complete head of a plain request.
#[derive(Debug)]
pub struct PlainRequest {
    /// Bytes of the head, through its empty line.
    pub head_len: usize,
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    /// Body bytes after the head (0 when there is no `Content-Length`).
    pub content_length: usize,
    /// The client asked to close after this response (`Connection: close`).
    pub close: bool,
}

/// A head no server should accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("the request head is larger than {MAX_HEAD_BYTES} bytes")]
    TooLarge,
    #[error("the request has more than {MAX_HEADERS} header fields")]
    TooManyHeaders,
    #[error("malformed request head: {0}")]
    Malformed(&'static str),
}

impl HeadError {
    pub fn status(self) -> StatusCode {
        match self {
            HeadError::TooLarge | HeadError::TooManyHeaders => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            HeadError::Malformed(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// Reads a request head from the start of `buf`.
pub fn parse(buf: &[u8]) -> Result<Head, HeadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut fields);
    let head_len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD_BYTES => {
            return Err(HeadError::TooLarge);
        }
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => {
            return Err(HeadError::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(Head::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(error) => return Err(HeadError::Malformed(describe(error))),
    };
    // A complete parse fills all three.
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Err(HeadError::Malformed("incomplete request line"));
    };
    let Some(method) = plain_method(method) else {
        return Ok(Head::NotPlain);
    };
    if version != 1 || !target.starts_with('/') {
        return Ok(Head::NotPlain);
    }
    let uri = Uri::from_maybe_shared(Bytes::copy_from_slice(target.as_bytes()))
        .map_err(|_| HeadError::Malformed("invalid request target"))?;

    let mut headers = HeaderMap::with_capacity(request.headers.len());
    let mut content_length = None;
    for field in request.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| HeadError::Malformed("invalid header name"))?;
        let value = HeaderValue::from_bytes(field.value)
            .map_err(|_| HeadError::Malformed("invalid header value"))?;
        match name {
            header::TRANSFER_ENCODING | header::EXPECT | header::UPGRADE => {
                return Ok(Head::NotPlain);
            }
            header::CONTENT_LENGTH => {
                if content_length.is_some() {
                    return Ok(Head::NotPlain);
                }
                match digits(field.value) {
                    Some(length) if length <= MAX_FAST_BODY_BYTES => content_length = Some(length),
                    _ => return Ok(Head::NotPlain),
                }
            }
            header::CONNECTION
                if connection_tokens(field.value)
                    .any(|token| token.eq_ignore_ascii_case(b"upgrade")) =>
            {
                return Ok(Head::NotPlain);
            }
            _ => {}
        }
        headers.append(name, value);
    }
    Ok(Head::Plain(PlainRequest {
        head_len,
        method,
        uri,
        content_length: content_length.unwrap_or(0),
        close: asks_to_close(&headers),
        headers,
    }))
}

/// Whether `headers` (a request's or a response's) hold `Connection: close`.
pub fn asks_to_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| connection_tokens(value.as_bytes()))
        .any(|token| token.eq_ignore_ascii_case(b"close"))
}

/// The options of one `Connection` field value.
fn connection_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

/// The methods this API serves; every other goes to hyper (and gets 405
/// or 404 from the router there).
fn plain_method(method: &str) -> Option<Method> {
    match method {
        "GET" => Some(Method::GET),
        "POST" => Some(Method::POST),
        "DELETE" => Some(Method::DELETE),
        "OPTIONS" => Some(Method::OPTIONS),
        _ => None,
    }
}

/// A `Content-Length` value: ASCII digits only (no sign, no spaces, no
/// list), at most 19 of them so it cannot overflow.
fn digits(value: &[u8]) -> Option<usize> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

fn describe(error: httparse::Error) -> &'static str {
    match error {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token in the request line",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "invalid HTTP version",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(head: &str) -> PlainRequest {
        match parse(head.as_bytes()) {
            Ok(Head::Plain(request)) => request,
            other => panic!("expected a plain request from {head:?}, got {other:?}"),
        }
    }

    fn not_plain(head: &str) {
        assert!(
            matches!(parse(head.as_bytes()), Ok(Head::NotPlain)),
            "expected {head:?} to go to hyper"
        );
    }

    #[test]
    fn a_session_post_is_plain_with_its_length_and_headers() {
        let head = "POST /v1/react/sessions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 21\r\n\r\n{\"user_query\":\"hi\"}";
        let request = plain(head);
        assert_eq!(request.method, Method::POST);
        assert_eq!(request.uri, "/v1/react/sessions?x=1");
        assert_eq!(request.content_length, 21);
        assert_eq!(request.head_len, head.find("\r\n\r\n").unwrap() + 4);
        assert_eq!(request.headers["content-type"], "application/json");
        assert!(!request.close);
    }

    #[test]
    fn connection_close_is_noted() {
        assert!(plain("GET /healthz HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n").close);
    }

    #[test]
    fn a_head_arrives_in_pieces() {
        let head = b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
        for cut in 0..head.len() {
            assert!(
                matches!(parse(&head[..cut]), Ok(Head::Partial)),
                "cut at {cut}"
            );
        }
        assert!(matches!(parse(head), Ok(Head::Plain(_))));
    }

    #[test]
    fn ambiguous_or_unusual_framing_goes_to_hyper() {
        not_plain(
            "POST /v1/react/sessions HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        not_plain("POST /v1/react/sessions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        not_plain(
            "POST /v1/react/sessions HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n",
        );
        not_plain(
            "POST /v1/react/sessions HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n",
        );
        not_plain("POST /v1/react/sessions HTTP/1.1\r\nContent-Length: +4\r\n\r\n");
        not_plain("POST /v1/react/sessions HTTP/1.1\r\nContent-Length: 4, 4\r\n\r\n");
        not_plain(
            "POST /v1/react/sessions HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        );
        not_plain("POST /v1/react/sessions HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n");
        not_plain(
            "POST /v1/react/sessions HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
        );
        not_plain("GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
        not_plain("GET /healthz HTTP/1.0\r\n\r\n");
        not_plain("HEAD /healthz HTTP/1.1\r\n\r\n");
        not_plain("PUT /v1/react/sessions HTTP/1.1\r\n\r\n");
        not_plain("GET http://example.com/healthz HTTP/1.1\r\n\r\n");
        not_plain("OPTIONS * HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn what_no_server_accepts_is_refused() {
        assert_eq!(
            parse(b"GET /healthz HTTP/1.1\r\nBad Name: x\r\n\r\n").unwrap_err(),
            HeadError::Malformed("invalid header name")
        );
        assert!(matches!(
            parse(b"GET /he\x01lthz HTTP/1.1\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: y\r\n")).collect();
        let head = format!("GET /healthz HTTP/1.1\r\n{many}\r\n");
        assert_eq!(
            parse(head.as_bytes()).unwrap_err(),
            HeadError::TooManyHeaders
        );
        let big = format!(
            "GET /healthz HTTP/1.1\r\nx-big: {}\r\n\r\n",
            "a".repeat(MAX_HEAD_BYTES)
        );
        assert_eq!(parse(big.as_bytes()).unwrap_err(), HeadError::TooLarge);
        let endless = format!(
            "GET /healthz HTTP/1.1\r\nx-big: {}",
            "a".repeat(MAX_HEAD_BYTES)
        );
        assert_eq!(parse(endless.as_bytes()).unwrap_err(), HeadError::TooLarge);
        assert_eq!(
            HeadError::TooLarge.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }
}
