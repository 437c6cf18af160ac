//! Reading SSE bodies like the seed's `fetch` client: split on `\n\n`, keep
//! parts that start with `data: `, JSON-parse the rest.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;

/// Every test's reqwest client starts here. The workspace's test build of
/// reqwest speaks HTTPS with rustls and no built-in provider (the HTTP/2
/// over TLS test needs it; ring, not aws-lc, keeps cmake out of the build),
/// so ring is made the process's provider first.
pub fn client_builder() -> reqwest::ClientBuilder {
    // Installed by the first call; later calls find it there.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

pub fn client() -> reqwest::Client {
    client_builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("a plain HTTP client always builds")
}

pub async fn post_session(client: &reqwest::Client, url: &str, body: Value) -> reqwest::Response {
    client
        .post(format!("{url}/v1/react/sessions"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("POST /v1/react/sessions")
}

/// A whole SSE body: the `data:` events and everything else (comments).
pub struct SseRead {
    pub events: Vec<Value>,
    pub comments: Vec<String>,
}

impl SseRead {
    /// The concatenated `char`s of every event of `kind`.
    pub fn text(&self, kind: &str) -> String {
        self.events
            .iter()
            .filter(|e| e["event_type"] == kind)
            .filter_map(|e| e["payload"]["char"].as_str())
            .collect()
    }

    /// Asserts a whole session: `worker_ack` first, the streamed answer,
    /// `FinalAnswerStreamEnd` last.
    pub fn assert_answered(&self, answer: &str) {
        assert_eq!(
            kinds(&self.events).first(),
            Some(&"worker_ack"),
            "{:?}",
            self.events
        );
        assert_eq!(self.text("FinalAnswerStream"), answer);
        assert_eq!(self.last_type(), "FinalAnswerStreamEnd");
    }

    pub fn last_type(&self) -> &str {
        self.events
            .last()
            .and_then(|e| e["event_type"].as_str())
            .unwrap_or_default()
    }
}

/// Reads the body to its end (at most `limit`), asserting clean framing.
pub async fn read_all_within(response: reqwest::Response, limit: Duration) -> SseRead {
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut read = SseRead {
        events: Vec::new(),
        comments: Vec::new(),
    };
    tokio::time::timeout(limit, async {
        while let Some(chunk) = body.next().await {
            buffer.push_str(std::str::from_utf8(&chunk.expect("body chunk")).expect("UTF-8 body"));
            while let Some(end) = buffer.find("\n\n") {
                let part: String = buffer.drain(..end + 2).collect();
                let part = &part[..part.len() - 2];
                if let Some(json) = part.strip_prefix("data: ") {
                    read.events
                        .push(serde_json::from_str(json).expect("every data part is JSON"));
                } else {
                    read.comments.push(part.to_owned());
                }
            }
        }
    })
    .await
    .expect("the body did not end in time");
    assert!(
        buffer.is_empty(),
        "trailing bytes after the last frame: {buffer:?}"
    );
    read
}

pub async fn read_all(response: reqwest::Response) -> SseRead {
    read_all_within(response, Duration::from_secs(20)).await
}

/// Reads frames until at least `n` events arrived; the body stays open.
pub async fn read_events(
    body: &mut (impl futures::Stream<Item = reqwest::Result<Bytes>> + Unpin),
    n: usize,
) -> Vec<Value> {
    read_frames(body, n)
        .await
        .into_iter()
        .map(|frame| frame.event)
        .collect()
}

pub fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap_or_default())
        .collect()
}

/// The rest of an open body as text, until it ends (at most `limit`).
pub async fn read_rest(
    mut body: impl futures::Stream<Item = reqwest::Result<Bytes>> + Unpin,
    limit: Duration,
    what: &str,
) -> String {
    let mut rest = Vec::new();
    tokio::time::timeout(limit, async {
        while let Some(chunk) = body.next().await {
            rest.extend_from_slice(&chunk.expect("body chunk"));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: the body did not end within {limit:?}"));
    String::from_utf8(rest).expect("UTF-8 body")
}

/// One frame of a `GET …/events` stream: its `id:` (if any) and its event.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Value,
}

/// Opens `GET {url}/v1/react/sessions/{session}/events`, with `Last-Event-ID`
/// when `last_event_id` is given.
pub async fn follow(
    client: &reqwest::Client,
    url: &str,
    session: &str,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    let mut request = client.get(format!("{url}/v1/react/sessions/{session}/events"));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    request.send().await.expect("GET …/events")
}

/// Parses the frames in `buffer` (complete ones only), leaving the rest.
fn take_frames(buffer: &mut String, frames: &mut Vec<Frame>) {
    while let Some(end) = buffer.find("\n\n") {
        let part: String = buffer.drain(..end + 2).collect();
        let mut id = None;
        let mut data = None;
        for line in part.trim_end().lines() {
            if let Some(value) = line.strip_prefix("id: ") {
                id = Some(value.to_owned());
            } else if let Some(json) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str(json).expect("every data line is JSON"));
            } else {
                assert!(
                    line.starts_with(':') || line.starts_with("retry: "),
                    "unexpected line {line:?}"
                );
            }
        }
        if let Some(event) = data {
            frames.push(Frame { id, event });
        }
    }
}

/// Reads frames until at least `n` arrived (at most 10 s; every complete
/// frame of the last chunk is returned); the body stays open.
pub async fn read_frames(
    body: &mut (impl futures::Stream<Item = reqwest::Result<Bytes>> + Unpin),
    n: usize,
) -> Vec<Frame> {
    let mut buffer = String::new();
    let mut frames = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while frames.len() < n {
            let chunk = body
                .next()
                .await
                .expect("body ended early")
                .expect("body chunk");
            buffer.push_str(std::str::from_utf8(&chunk).expect("UTF-8 body"));
            take_frames(&mut buffer, &mut frames);
        }
    })
    .await
    .expect("frames did not arrive in time");
    frames
}

/// Reads a `GET …/events` body to its end (at most `limit`).
pub async fn read_all_frames(response: reqwest::Response, limit: Duration) -> Vec<Frame> {
    assert_eq!(
        response.status(),
        200,
        "follow answered {}",
        response.status()
    );
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut frames = Vec::new();
    tokio::time::timeout(limit, async {
        while let Some(chunk) = body.next().await {
            buffer.push_str(std::str::from_utf8(&chunk.expect("body chunk")).expect("UTF-8 body"));
            take_frames(&mut buffer, &mut frames);
        }
    })
    .await
    .expect("the follow stream did not end in time");
    assert!(
        buffer.is_empty(),
        "trailing bytes after the last frame: {buffer:?}"
    );
    frames
}
