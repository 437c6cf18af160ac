//! The fast path on an in-memory connection: read-ahead while a response
//! streams, bodies that stall, a handler's `Connection: close`.

use std::sync::Arc;

use axum::http::header;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::*;

const TIMEOUTS: Timeouts = Timeouts {
    head: Duration::from_secs(5),
    idle: Duration::from_secs(5),
};
const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";

/// Serves `app` on the fast path over an in-memory connection that
/// buffers `capacity` bytes each way; the client's end.
fn connect(app: Router, capacity: usize) -> (DuplexStream, JoinHandle<()>) {
    let (client, server) = tokio::io::duplex(capacity);
    let serving = tokio::spawn(async move {
        let shutdown = CancellationToken::new();
        let first_request_by = Instant::now() + TIMEOUTS.head;
        let served = serve(
            server,
            Vec::new(),
            first_request_by,
            &app,
            &shutdown,
            TIMEOUTS,
        );
        assert!(matches!(served.await, Ok(Served::Closed)));
    });
    (client, serving)
}

async fn read_to_close(client: &mut (impl AsyncRead + Unpin)) -> String {
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut all))
        .await
        .expect("the server did not close the connection")
        .unwrap();
    String::from_utf8(all).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_body_takes_memory_as_it_arrives_and_must_arrive_in_time() {
    let (mut client, mut server) = tokio::io::duplex(head::MAX_FAST_BODY_BYTES);
    client.write_all(b"{\"user_query\":").await.unwrap();
    let mut buf = Vec::new();
    let deadline = Instant::now() + TIMEOUTS.head;
    let length = head::MAX_FAST_BODY_BYTES;
    let complete = read_body(&mut server, &mut buf, length, deadline).await;
    assert!(!complete.unwrap(), "a stalled body is cut at the deadline");
    assert_eq!(buf, b"{\"user_query\":");
    assert!(
        buf.capacity() <= READ_CHUNK,
        "{} bytes held for {} read",
        buf.capacity(),
        buf.len()
    );
}

#[tokio::test]
async fn a_handlers_connection_close_ends_the_connection_after_its_response() {
    let app = Router::new()
        .route(
            "/bye",
            get(|| async { ([(header::CONNECTION, "close")], "bye") }),
        )
        .route("/healthz", get(|| async { "ok" }));
    let (mut client, serving) = connect(app, 4096);
    client
        .write_all(b"GET /bye HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    client.write_all(HEALTHZ).await.unwrap();
    let response = read_to_close(&mut client).await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains("\r\nconnection: close\r\n"), "{response}");
    assert!(
        response.ends_with("\r\n\r\nbye"),
        "one response: {response}"
    );
    drop(client);
    serving.await.unwrap();
}

#[tokio::test]
async fn pipelined_bytes_are_read_ahead_of_a_streaming_response_only_up_to_the_bound() {
    let release = Arc::new(Notify::new());
    let held = {
        let release = release.clone();
        move || async move {
            let end = async move {
                release.notified().await;
                Ok::<_, io::Error>(Bytes::from_static(b"done"))
            };
            Body::from_stream(futures::stream::once(end))
        }
    };
    let app = Router::new()
        .route("/held", get(held))
        .route("/healthz", get(|| async { "ok" }));
    const CAPACITY: usize = 1024;
    let (client, serving) = connect(app, CAPACITY);
    let (mut from_server, mut to_server) = tokio::io::split(client);
    to_server
        .write_all(b"GET /held HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        from_server.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }

    // The response streams; the client pipelines far more than the bound.
    const PIPELINED: usize = 200;
    let mut pipelined = HEALTHZ.repeat(PIPELINED - 1);
    pipelined.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let mut accepted = 0;
    while accepted < pipelined.len() {
        let write = to_server.write(&pipelined[accepted..]);
        match tokio::time::timeout(Duration::from_millis(200), write).await {
            Ok(written) => accepted += written.unwrap(),
            Err(_) => break, // backpressure
        }
    }
    assert!(
        accepted <= READ_AHEAD_BYTES + CAPACITY,
        "{accepted} bytes taken while the response streams"
    );

    // Once it ends, every pipelined request is answered.
    release.notify_one();
    let rest = pipelined.split_off(accepted);
    // Not shut down after: the fast path takes a client's end of input
    // for its departure.
    let writing = tokio::spawn(async move { to_server.write_all(&rest).await });
    let responses = read_to_close(&mut from_server).await;
    writing.await.unwrap().unwrap();
    assert!(
        responses.starts_with("4\r\ndone\r\n0\r\n\r\n"),
        "{responses}"
    );
    assert_eq!(responses.matches("HTTP/1.1 200 OK").count(), PIPELINED);
    drop(from_server);
    serving.await.unwrap();
}
