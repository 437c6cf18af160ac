//! The HTTP/1.1 fast path, on the wire: raw bytes in, raw bytes out.
//!
//! Every other test file talks HTTP/1.1 through reqwest and so through the
//! fast path already; these pin what only raw bytes show — chunked framing
//! and keep-alive after a stream, pipelining, the requests handed to hyper,
//! and the smuggling and slowloris cases a hand-written HTTP path must
//! refuse exactly as hyper does.

mod common;

use std::time::Duration;

use common::TestGateway;
use sse_bridge_core::session::SessionConfig;
use sse_bridge_gateway::ServeOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SESSION_BODY: &str = r#"{"user_query":"What is 2+3?"}"#;

async fn connect(gateway: &TestGateway) -> TcpStream {
    TcpStream::connect(gateway.url.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection (within 10 s).
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut all))
        .await
        .expect("the server did not close the connection")
        .ok();
    String::from_utf8_lossy(&all).into_owned()
}

/// Reads until `bytes` ends with `end` (within 10 s).
async fn read_until(stream: &mut TcpStream, bytes: &mut Vec<u8>, end: &[u8]) {
    let mut chunk = [0u8; 4096];
    while !bytes.ends_with(end) {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("no {end:?} in {:?}", String::from_utf8_lossy(bytes)))
            .unwrap();
        assert!(
            n > 0,
            "closed before {end:?}: {:?}",
            String::from_utf8_lossy(bytes)
        );
        bytes.extend_from_slice(&chunk[..n]);
    }
}

/// Sends `request` on a fresh connection; everything until the server closes.
async fn exchange(gateway: &TestGateway, request: &str) -> String {
    let mut stream = connect(gateway).await;
    stream.write_all(request.as_bytes()).await.unwrap();
    read_to_close(&mut stream).await
}

/// The status line of each response in `response` (bodies here hold no
/// `HTTP/1.`).
fn status_lines(response: &str) -> Vec<&str> {
    response
        .match_indices("HTTP/1.")
        .map(|(at, _)| response[at..].split("\r\n").next().unwrap_or_default())
        .collect()
}

fn post(body: &str, extra_headers: &str) -> String {
    format!(
        "POST /v1/react/sessions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n{extra_headers}\r\n{body}",
        body.len()
    )
}

/// Decodes a chunked body; `None` if the framing is broken.
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&body[..line_end]).ok()?, 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return (body == b"\r\n").then_some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        if body.get(size..size + 2)? != b"\r\n" {
            return None;
        }
        body = &body[size + 2..];
    }
}

#[tokio::test]
async fn a_stream_is_chunked_ends_with_the_last_chunk_and_keeps_the_connection() {
    let gateway = TestGateway::start(SessionConfig::default()).await;
    gateway.spawn_demo_worker();
    let mut stream = connect(&gateway).await;
    stream
        .write_all(post(SESSION_BODY, "").as_bytes())
        .await
        .unwrap();
    let mut bytes = Vec::new();
    read_until(&mut stream, &mut bytes, b"\r\n0\r\n\r\n").await;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\ncontent-type: text/event-stream"),
        "{head}"
    );
    assert!(head.contains("\r\ntransfer-encoding: chunked"), "{head}");
    assert!(head.contains("\r\nx-session-id: "), "{head}");
    assert!(head.contains("\r\ndate: "), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    let events =
        String::from_utf8(dechunk(body.as_bytes()).expect("valid chunked framing")).unwrap();
    assert!(
        events.starts_with("data: {\"event_type\":\"worker_ack\""),
        "{events}"
    );
    assert!(
        events.contains(r#"{"event_type":"FinalAnswerStream","payload":{"char":"5"}}"#),
        "{events}"
    );
    assert!(
        events.ends_with("\"event_type\":\"FinalAnswerStreamEnd\",\"payload\":{}}\n\n"),
        "{events}"
    );

    // The same connection serves the next request.
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let next = read_to_close(&mut stream).await;
    assert!(next.starts_with("HTTP/1.1 200 OK\r\n"), "{next}");
    assert!(next.contains("connection: close"), "{next}");
    assert!(next.ends_with(r#""status":"ok"}"#), "{next}");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let gateway = TestGateway::start(SessionConfig::default()).await;
    let response = exchange(
        &gateway,
        "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n\
         GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n\
         GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        status_lines(&response),
        [
            "HTTP/1.1 200 OK",
            "HTTP/1.1 404 Not Found",
            "HTTP/1.1 200 OK"
        ],
        "{response}"
    );
}

#[tokio::test]
async fn content_length_beside_transfer_encoding_cannot_smuggle_a_request() {
    let gateway = TestGateway::start(SessionConfig::default()).await;
    // CL.TE: by Content-Length the body is "0\r\n\r\nGET /smuggled…"; by
    // Transfer-Encoding it ends at "0\r\n\r\n" and a second request follows.
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n";
    let body = format!("0\r\n\r\n{smuggled}");
    let request = format!(
        "POST /v1/react/sessions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{body}",
        body.len()
    );
    let response = exchange(&gateway, &request).await;
    let statuses = status_lines(&response);
    assert_eq!(statuses.len(), 1, "one request, one answer: {response}");
    assert!(statuses[0].starts_with("HTTP/1.1 4"), "refused: {response}");
    assert!(!response.contains("smuggled"), "{response}");
}

#[tokio::test]
async fn two_content_lengths_are_refused() {
    let gateway = TestGateway::start(SessionConfig::default()).await;
    for lengths in [
        "Content-Length: 29\r\nContent-Length: 30\r\n",
        "Content-Length: 29, 30\r\n",
    ] {
        let request = format!(
            "POST /v1/react/sessions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
             {lengths}\r\n{SESSION_BODY}GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
        );
        let response = exchange(&gateway, &request).await;
        assert_eq!(
            status_lines(&response),
            ["HTTP/1.1 400 Bad Request"],
            "{response}"
        );
    }
}

#[tokio::test]
async fn heads_too_large_or_malformed_get_a_clear_error_and_a_close() {
    let gateway = TestGateway::start(SessionConfig::default()).await;
    let cases = [
        (
            format!(
                "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
                "a".repeat(40_000)
            ),
            "431 Request Header Fields Too Large",
            "larger than",
        ),
        (
            format!(
                "GET /healthz HTTP/1.1\r\n{}\r\n",
                (0..101)
                    .map(|i| format!("X-{i}: y\r\n"))
                    .collect::<String>()
            ),
            "431 Request Header Fields Too Large",
            "more than 100 header fields",
        ),
        (
            "GET /healthz HTTP/1.1\r\nBad Header: x\r\n\r\n".to_string(),
            "400 Bad Request",
            "invalid header name",
        ),
        (
            "GET /he\u{1}lthz HTTP/1.1\r\n\r\n".to_string(),
            "400 Bad Request",
            "malformed request head",
        ),
    ];
    for (request, status, detail) in cases {
        let response = exchange(&gateway, &request).await;
        assert!(
            response.starts_with(&format!("HTTP/1.1 {status}\r\n")),
            "{response}"
        );
        assert!(response.contains("connection: close"), "{response}");
        let body = response.split_once("\r\n\r\n").unwrap().1;
        let detail_text = serde_json::from_str::<serde_json::Value>(body).unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(detail_text.contains(detail), "{detail_text}");
    }
}

#[tokio::test]
async fn a_slow_head_or_body_is_cut_by_the_header_read_timeout() {
    let mut options = ServeOptions::new(Duration::from_secs(5));
    options.header_read_timeout = Duration::from_millis(300);
    let gateway = TestGateway::start_with_options(SessionConfig::default(), options).await;
    for partial in [
        "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ".to_string(),
        // The body stops 20 bytes short; the trickle would take 2 s to fill it.
        post(SESSION_BODY, "")[..post(SESSION_BODY, "").len() - 20].to_string(),
    ] {
        let mut stream = connect(&gateway).await;
        let started = tokio::time::Instant::now();
        stream.write_all(partial.as_bytes()).await.unwrap();
        // Trickle a byte now and then: it must not extend the deadline.
        let mut all = Vec::new();
        let closed = async {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if stream.write_all(b"a").await.is_err() {
                    break;
                }
                let mut chunk = [0u8; 256];
                match tokio::time::timeout(Duration::from_millis(1), stream.read(&mut chunk)).await
                {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(n)) => all.extend_from_slice(&chunk[..n]),
                    Err(_) => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), closed)
            .await
            .expect("a slowloris request was not cut");
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(300),
            "cut after {elapsed:?}"
        );
        assert!(
            all.is_empty(),
            "nothing is answered: {:?}",
            String::from_utf8_lossy(&all)
        );
    }
    // A new connection must send its request in time too.
    let mut silent = connect(&gateway).await;
    let started = tokio::time::Instant::now();
    assert_eq!(read_to_close(&mut silent).await, "");
    assert!(started.elapsed() >= Duration::from_millis(300));
    // A kept-alive connection between requests is idle, not slow: it stays.
    let mut kept = connect(&gateway).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut bytes = Vec::new();
    read_until(&mut kept, &mut bytes, br#""status":"ok"}"#).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert!(
        read_to_close(&mut kept)
            .await
            .starts_with("HTTP/1.1 200 OK")
    );
}

#[tokio::test]
async fn requests_beyond_the_fast_path_are_served_by_hyper() {
    let gateway = TestGateway::start(SessionConfig::default()).await;

    // Expect: 100-continue: the body is sent only after the interim answer.
    let mut stream = connect(&gateway).await;
    let head = format!(
        "POST /v1/react/sessions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        SESSION_BODY.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    read_until(&mut stream, &mut bytes, b"HTTP/1.1 100 Continue\r\n\r\n").await;
    bytes.clear();
    stream.write_all(SESSION_BODY.as_bytes()).await.unwrap();
    let job = gateway.take_job().await;
    assert_eq!(job.request.user_query(), "What is 2+3?");
    read_until(&mut stream, &mut bytes, b"\r\n\r\n").await;
    assert!(String::from_utf8_lossy(&bytes).contains("HTTP/1.1 200 OK"));
    drop(stream);

    // A chunked request body.
    let chunked = format!(
        "POST /v1/react/sessions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{SESSION_BODY}\r\n0\r\n\r\n",
        SESSION_BODY.len()
    );
    let mut stream = connect(&gateway).await;
    stream.write_all(chunked.as_bytes()).await.unwrap();
    assert_eq!(
        gateway.take_job().await.request.user_query(),
        "What is 2+3?"
    );
    let mut bytes = Vec::new();
    read_until(&mut stream, &mut bytes, b"\r\n\r\n").await;
    assert!(bytes.starts_with(b"HTTP/1.1 200 OK\r\n"));
    drop(stream);

    // HTTP/1.0, and HEAD (a head without its body).
    let response = exchange(&gateway, "GET /healthz HTTP/1.0\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.0 200 OK\r\n"), "{response}");
    let response = exchange(
        &gateway,
        "HEAD /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.ends_with("\r\n\r\n"),
        "no body after a HEAD: {response}"
    );

    // A plain request after one hyper served, on the same connection.
    let response = exchange(
        &gateway,
        "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        status_lines(&response),
        ["HTTP/1.0 200 OK", "HTTP/1.1 200 OK"],
        "{response}"
    );
}

#[tokio::test]
async fn a_body_larger_than_the_fast_path_reads_gets_the_endpoints_own_limit() {
    let gateway = TestGateway::start(SessionConfig::default()).await;
    let big = format!(r#"{{"user_query":"{}"}}"#, "a".repeat(100_000));
    let request = post(&big, "Connection: close\r\n");
    let response = exchange(&gateway, &request).await;
    assert!(
        response.starts_with("HTTP/1.1 413 Payload Too Large\r\n"),
        "{}",
        &response[..200.min(response.len())]
    );
    assert!(response.contains("\"detail\""), "{response}");
}

/// How often this (current-thread) runtime has parked: each timer or socket
/// wakeup of an otherwise idle gateway parks it once more.
fn parks() -> u64 {
    tokio::runtime::Handle::current()
        .metrics()
        .worker_park_count(0)
}

#[tokio::test]
async fn a_stalled_http2_preface_costs_no_polling_and_is_cut_at_the_header_timeout() {
    let mut options = ServeOptions::new(Duration::from_secs(5));
    options.header_read_timeout = Duration::from_millis(1_500);
    let gateway = TestGateway::start_with_options(SessionConfig::default(), options).await;
    let mut stalled = connect(&gateway).await;
    let started = tokio::time::Instant::now();
    stalled.write_all(b"PRI").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = parks();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let woken = parks() - before;
    // The test's own sleep is one wakeup; polling every few ms would be ~100.
    assert!(woken <= 10, "the runtime woke {woken} times in 500 ms");
    assert_eq!(read_to_close(&mut stalled).await, "");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1_500) && elapsed < Duration::from_secs(4),
        "closed after {elapsed:?}"
    );
}

#[tokio::test]
async fn a_preface_sent_in_pieces_still_reaches_http2() {
    let gateway = TestGateway::start(SessionConfig::default()).await;
    let mut stream = connect(&gateway).await;
    stream.write_all(b"PRI * HT").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The rest of the preface, then an empty SETTINGS frame.
    stream
        .write_all(b"TP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut frame_header = [0u8; 9];
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_exact(&mut frame_header),
    )
    .await
    .expect("no answer")
    .unwrap();
    assert_eq!(
        frame_header[3], 0x04,
        "the server's SETTINGS: {frame_header:?}"
    );
}

/// Sends `request` and then `extra` bytes the server will not read; the
/// answer, read after a pause in which a reset would have arrived, must
/// end in a clean close.
async fn answer_despite_unread_bytes(
    gateway: &TestGateway,
    request: &[u8],
    extra: usize,
) -> String {
    let mut stream = connect(gateway).await;
    stream.write_all(request).await.unwrap();
    stream.write_all(&vec![b'a'; extra]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut all = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut all))
        .await
        .expect("the server did not close the connection");
    let response = String::from_utf8_lossy(&all).into_owned();
    assert!(read.is_ok(), "{read:?} after {response:?}");
    response
}

#[tokio::test]
async fn an_oversized_head_with_more_bytes_behind_it_gets_its_431_and_a_clean_close() {
    let gateway = TestGateway::start(SessionConfig::default()).await;
    // More bytes than the server reads before it refuses: unread ones at
    // its close would make its kernel answer with a reset.
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n",
        "a".repeat(40_000)
    );
    let response = answer_despite_unread_bytes(&gateway, head.as_bytes(), 20_000).await;
    assert!(
        response.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{response}"
    );
    let body = response.split_once("\r\n\r\n").unwrap().1;
    let detail: serde_json::Value = serde_json::from_str(body).unwrap();
    assert!(detail["detail"].as_str().unwrap().contains("larger than"));
}

#[tokio::test]
async fn a_slow_body_handed_to_hyper_is_cut_by_the_header_read_timeout_too() {
    let mut options = ServeOptions::new(Duration::from_secs(5));
    options.header_read_timeout = Duration::from_millis(300);
    let gateway = TestGateway::start_with_options(SessionConfig::default(), options).await;
    // A chunked body: hyper's to read, and hyper times heads only.
    let mut stream = connect(&gateway).await;
    let started = tokio::time::Instant::now();
    let head = format!(
        "POST /v1/react/sessions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{}",
        4_000,
        &SESSION_BODY[..5]
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let cut = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            // Trickling stays within the 4,000-byte chunk: the body never
            // completes.
            let _ = stream.write_all(b" ").await;
            let mut chunk = [0u8; 1024];
            match tokio::time::timeout(Duration::from_millis(1), stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
                Err(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), cut)
        .await
        .expect("a slow body on hyper's path was not cut");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300),
        "cut after {elapsed:?}"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_connection_close_answer_with_more_bytes_behind_it_ends_in_a_clean_close() {
    let gateway = TestGateway::start(SessionConfig::default()).await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let response = answer_despite_unread_bytes(&gateway, request, 20_000).await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with(r#""status":"ok"}"#), "{response}");
}
