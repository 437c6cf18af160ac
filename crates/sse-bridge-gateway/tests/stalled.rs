//! Clients that stop reading cannot pin anything (issue 10): the sessions
//! of clients whose sockets are full still end on time, a flood beyond the
//! stream's byte budget ends with `slow_consumer`, every end publishes
//! `cancel` and frees the subscription, stuck connections are closed by the
//! write deadline, and a normal client is served meanwhile.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use serde_json::json;
use sse_bridge_core::session::SessionConfig;
use sse_bridge_core::{Delivery, Subscription};
use sse_bridge_worker::publish_event;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A client that sends its POST and never reads (4 KiB receive buffer).
async fn stalled_post(url: &str) -> TcpStream {
    let addr: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let body = r#"{"user_query":"q"}"#;
    let request = format!(
        "POST /v1/react/sessions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

async fn cancel_reason(control: &mut Subscription, within: Duration) -> Option<String> {
    match tokio::time::timeout(within, control.recv()).await {
        Ok(Delivery::Message(raw)) => {
            let cancel: serde_json::Value = serde_json::from_slice(&raw).unwrap();
            Some(cancel["payload"]["reason"].as_str().unwrap().to_owned())
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_cannot_pin_their_sessions() {
    let config = SessionConfig {
        max_duration: Duration::from_secs(2),
        buffer_bytes: 64 * 1024,
        write_timeout: Duration::from_secs(1),
        ..SessionConfig::default()
    };
    let gw = TestGateway::start(config).await;
    let mut stalled = Vec::new();
    let mut controls = Vec::new();
    for i in 0..10 {
        stalled.push(stalled_post(&gw.url).await);
        let job = gw.take_job().await;
        controls.push(
            gw.bus
                .subscribe(&job.session_id.control_channel())
                .await
                .unwrap(),
        );
        gw.emit(&job, "worker_ack", json!({})).await;
        // Even sessions: up to 8 MB of 1 KB pieces the client never reads,
        // more than the kernel's socket buffers absorb.
        // The log refuses the rest once the session ended (slow_consumer).
        if i % 2 == 0 {
            let piece = json!({ "char": "x".repeat(1000) });
            for _ in 0..8000 {
                let sent = publish_event(
                    gw.bus.as_ref(),
                    job.session_id,
                    Some("a"),
                    "FinalAnswerStream",
                    piece.clone(),
                );
                if sent.await.is_err() {
                    break;
                }
            }
        }
    }

    // A normal client on the same gateway is served meanwhile.
    let (normal, job) = gw.open(json!({"user_query": "q"})).await;
    gw.emit(&job, "worker_ack", json!({})).await;
    gw.emit(&job, "FinalAnswerStream", json!({"char": "ok"}))
        .await;
    gw.emit(&job, "FinalAnswerStreamEnd", json!({})).await;
    read_all(normal).await.assert_answered("ok");

    // Every stalled session ends on its own: the flooded ones beyond their
    // byte budget, the quiet ones at max_duration; each cancels its worker.
    for (i, control) in controls.iter_mut().enumerate() {
        let reason = cancel_reason(control, Duration::from_secs(8)).await;
        let expected = if i % 2 == 0 {
            "slow_consumer"
        } else {
            "session_timeout"
        };
        assert_eq!(reason.as_deref(), Some(expected), "session {i}");
    }
    drop(controls);
    gw.wait_for_no_subscriptions().await;

    // A flooded client that finally reads gets what fit in its budget, then
    // either the end of the response (its last frames fit the socket
    // buffers) or the connection closed by the write deadline (they did not):
    // never the whole flood, never a connection held open.
    for (i, socket) in stalled.iter_mut().enumerate().filter(|(i, _)| i % 2 == 0) {
        let mut received = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let ended = tokio::time::timeout(Duration::from_secs(10), async {
            while !received.ends_with(b"\r\n0\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return "closed by the write deadline",
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&received);
            assert!(text.contains(r#""code":"slow_consumer""#), "response {i}");
            "complete"
        });
        let how = ended
            .await
            .unwrap_or_else(|_| panic!("connection {i} held open"));
        assert!(
            received.len() < 8_000_000,
            "response {i} held the whole flood"
        );
        println!(
            "flooded connection {i}: {how} after {} bytes",
            received.len()
        );
    }
    gw.stop().await;
}
