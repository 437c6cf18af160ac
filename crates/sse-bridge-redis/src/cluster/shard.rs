//! One subscriber connection to one shard master, in RESP2 subscribed mode.
//!
//! The [`super::subscriber`] task owns it and queues `SSUBSCRIBE`,
//! `SUNSUBSCRIBE` and `PING` (one channel per command, so every reply
//! answers exactly one request, in order) without waiting: a writer task of
//! the connection's own writes them, each write bounded by a timeout, so a
//! stalled shard stalls nobody but itself. A reader task routes each
//! `smessage` straight to the [`Router`] (the hot path: no hop through the
//! subscriber task) and reports everything else as a [`ShardEvent`], tagged
//! with the [`ConnectionId`] it came from.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sse_bridge_core::BrokerError;
use sse_bridge_core::bus::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::resp::{self, Frame};

/// Tells one connection from the next to the same master, so a late report
/// from a replaced connection is recognised as such.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectionId(pub u64);

/// What a shard connection tells its owner.
#[derive(Debug)]
pub(crate) enum ShardEvent {
    /// `SSUBSCRIBE channel` was confirmed.
    Subscribed(String),
    /// `SSUBSCRIBE channel` was refused (`MOVED <slot> <addr>` and the like).
    Refused { channel: String, error: String },
    /// The server dropped the subscription on its own (its slot moved away).
    Dropped(String),
    /// The connection is gone: closed, broken, or a write timed out.
    Lost,
}

/// Where shard events go: the connection they came from, and the event.
pub(crate) type ShardEvents = mpsc::UnboundedSender<(ConnectionId, ShardEvent)>;

/// A request written and not answered yet.
#[derive(Debug)]
enum Request {
    Subscribe(String),
    Unsubscribe(String),
    Ping,
}

/// Requests in the order they were queued, with when.
type InFlight = Arc<Mutex<VecDeque<(Request, Instant)>>>;

/// How to introduce ourselves to every master.
#[derive(Debug, Clone)]
pub(crate) struct ShardLogin {
    pub username: Option<String>,
    pub password: Option<String>,
    pub client_name: String,
    /// For the connection and the login.
    pub connect_timeout: Duration,
    /// For each write; a shard that takes longer is lost.
    pub write_timeout: Duration,
}

/// A live subscriber connection to one master.
pub(crate) struct ShardConnection {
    id: ConnectionId,
    /// Encoded requests, for the writer.
    requests: mpsc::UnboundedSender<Bytes>,
    in_flight: InFlight,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Drop for ShardConnection {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

impl ShardConnection {
    /// Connects to `addr` (`host:port`), logs in and names the connection.
    pub(crate) async fn connect(
        addr: &str,
        id: ConnectionId,
        login: &ShardLogin,
        router: Arc<Router>,
        events: ShardEvents,
    ) -> Result<ShardConnection, BrokerError> {
        let timeout = login.connect_timeout;
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| BrokerError::Timeout(timeout))?
            .map_err(|e| {
                BrokerError::Unavailable(format!("cannot connect to shard {addr}: {e}"))
            })?;
        stream
            .set_nodelay(true)
            .map_err(|e| BrokerError::Unavailable(e.to_string()))?;
        let (mut read, mut write) = stream.into_split();
        let mut hello = BytesMut::new();
        let mut expected = 1;
        match (&login.username, &login.password) {
            (Some(user), Some(password)) => {
                resp::command(&mut hello, &[b"AUTH", user.as_bytes(), password.as_bytes()])
            }
            (None, Some(password)) => resp::command(&mut hello, &[b"AUTH", password.as_bytes()]),
            _ => expected = 0,
        }
        resp::command(
            &mut hello,
            &[b"CLIENT", b"SETNAME", login.client_name.as_bytes()],
        );
        expected += 1;
        let mut buf = BytesMut::with_capacity(4096);
        let login_done = async {
            write.write_all(&hello).await.map_err(io_error)?;
            for _ in 0..expected {
                if let Frame::Error(error) = read_frame(&mut read, &mut buf).await? {
                    return Err(BrokerError::Rejected(error));
                }
            }
            Ok(())
        };
        tokio::time::timeout(timeout, login_done)
            .await
            .map_err(|_| BrokerError::Timeout(timeout))??;
        let in_flight = InFlight::default();
        let (requests, queued) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_loop(
            addr.to_owned(),
            id,
            read,
            buf,
            router,
            in_flight.clone(),
            events.clone(),
        ));
        let writer = tokio::spawn(write_loop(
            addr.to_owned(),
            id,
            write,
            queued,
            login.write_timeout,
            events,
        ));
        Ok(ShardConnection {
            id,
            requests,
            in_flight,
            reader,
            writer,
        })
    }

    pub(crate) fn id(&self) -> ConnectionId {
        self.id
    }

    /// Queues `SSUBSCRIBE` for each channel (answered by [`ShardEvent`]s).
    pub(crate) fn subscribe(&self, channels: impl IntoIterator<Item = String>) {
        self.send(channels.into_iter().map(Request::Subscribe).collect());
    }

    /// Queues `SUNSUBSCRIBE` for `channel`.
    pub(crate) fn unsubscribe(&self, channel: String) {
        self.send(vec![Request::Unsubscribe(channel)]);
    }

    /// Queues a `PING`, unless the oldest request is already older than
    /// `patience`: then the connection is reported dead (`false`).
    pub(crate) fn health_check(&self, patience: Duration) -> bool {
        let stale = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .front()
            .is_some_and(|(_, sent)| sent.elapsed() > patience);
        !stale && self.send(vec![Request::Ping])
    }

    /// Hands `requests` to the writer; `false` if it has stopped (the
    /// connection is lost and says so on its own).
    fn send(&self, requests: Vec<Request>) -> bool {
        let mut out = BytesMut::new();
        for request in &requests {
            encode(request, &mut out);
        }
        {
            // Queued before the bytes leave: no reply can overtake its request.
            let now = Instant::now();
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            in_flight.extend(requests.into_iter().map(|r| (r, now)));
        }
        self.requests.send(out.freeze()).is_ok()
    }
}

/// Writes what is queued, each write within `limit`; reports the
/// connection lost at the first write that fails or times out.
async fn write_loop(
    addr: String,
    id: ConnectionId,
    mut write: OwnedWriteHalf,
    mut queued: mpsc::UnboundedReceiver<Bytes>,
    limit: Duration,
    events: ShardEvents,
) {
    while let Some(bytes) = queued.recv().await {
        let error = match tokio::time::timeout(limit, write.write_all(&bytes)).await {
            Ok(Ok(())) => continue,
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("a write took longer than {limit:?}"),
        };
        tracing::warn!(shard = %addr, %error, "shard subscriber connection lost");
        let _ = events.send((id, ShardEvent::Lost));
        return;
    }
}

fn encode(request: &Request, out: &mut BytesMut) {
    match request {
        Request::Subscribe(channel) => resp::command(out, &[b"SSUBSCRIBE", channel.as_bytes()]),
        Request::Unsubscribe(channel) => resp::command(out, &[b"SUNSUBSCRIBE", channel.as_bytes()]),
        Request::Ping => resp::command(out, &[b"PING"]),
    }
}

/// Reads frames until the connection ends; routes messages, reports the rest.
async fn read_loop(
    addr: String,
    id: ConnectionId,
    mut read: OwnedReadHalf,
    mut buf: BytesMut,
    router: Arc<Router>,
    in_flight: InFlight,
    events: ShardEvents,
) {
    loop {
        let frame = match read_frame(&mut read, &mut buf).await {
            Ok(frame) => frame,
            Err(error) => {
                tracing::warn!(shard = %addr, %error, "shard subscriber connection lost");
                let _ = events.send((id, ShardEvent::Lost));
                return;
            }
        };
        if let Some(event) = handle(frame, &router, &in_flight) {
            let _ = events.send((id, event));
        }
    }
}

/// One frame off the connection: a message is routed, a reply is matched
/// with its request.
fn handle(frame: Frame, router: &Router, in_flight: &InFlight) -> Option<ShardEvent> {
    let answered = || {
        in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
            .map(|(request, _)| request)
    };
    match frame {
        Frame::Array(items) => {
            let mut items = items.into_iter();
            let kind = match items.next() {
                Some(Frame::Bulk(Some(kind))) => kind,
                _ => return None,
            };
            let channel = match items.next() {
                Some(Frame::Bulk(Some(channel))) => channel,
                _ => Bytes::new(),
            };
            let channel_name = || String::from_utf8_lossy(&channel).into_owned();
            match &kind[..] {
                b"smessage" => {
                    if let (Ok(name), Some(Frame::Bulk(Some(payload)))) =
                        (std::str::from_utf8(&channel), items.next())
                    {
                        router.deliver(name, payload);
                    }
                    None
                }
                b"ssubscribe" => {
                    answered();
                    Some(ShardEvent::Subscribed(channel_name()))
                }
                b"sunsubscribe" => {
                    let mut in_flight = in_flight.lock().unwrap_or_else(|p| p.into_inner());
                    let ours = matches!(
                        in_flight.front(),
                        Some((Request::Unsubscribe(c), _)) if c.as_bytes() == &channel[..]
                    );
                    if ours {
                        in_flight.pop_front();
                        None
                    } else {
                        Some(ShardEvent::Dropped(channel_name()))
                    }
                }
                b"pong" => {
                    answered();
                    None
                }
                _ => None,
            }
        }
        Frame::Error(error) => match answered() {
            Some(Request::Subscribe(channel)) => Some(ShardEvent::Refused { channel, error }),
            other => {
                tracing::warn!(?other, %error, "shard subscriber request refused");
                None
            }
        },
        Frame::Simple(_) => {
            answered();
            None
        }
        _ => None,
    }
}

/// Reads until one whole frame is buffered, and takes it.
async fn read_frame(read: &mut OwnedReadHalf, buf: &mut BytesMut) -> Result<Frame, BrokerError> {
    loop {
        if let Some(frame) =
            resp::take_frame(buf).map_err(|e| BrokerError::Unavailable(e.to_string()))?
        {
            return Ok(frame);
        }
        if read.read_buf(buf).await.map_err(io_error)? == 0 {
            return Err(BrokerError::Unavailable(
                "the shard closed the connection".into(),
            ));
        }
    }
}

fn io_error(error: std::io::Error) -> BrokerError {
    BrokerError::Unavailable(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sse_bridge_core::bus::SubscriptionBound;
    use tokio::net::TcpListener;

    /// A shard that logs us in, then never reads again (SIGSTOPped, or
    /// swamped): once the socket's buffers fill, the write times out and
    /// the connection reports itself lost, without its owner waiting.
    #[tokio::test]
    async fn a_write_to_a_stalled_shard_times_out_and_reports_the_loss() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stalled = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut hello = [0u8; 256];
            let _ = socket.read(&mut hello).await.unwrap();
            socket.write_all(b"+OK\r\n").await.unwrap();
            // Holds the socket open, unread.
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let login = ShardLogin {
            username: None,
            password: None,
            client_name: "t".into(),
            connect_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_millis(200),
        };
        let router = Router::new(SubscriptionBound::messages(8), |_| {});
        let (events, mut reports) = mpsc::unbounded_channel();
        let shard = ShardConnection::connect(&addr, ConnectionId(7), &login, router, events)
            .await
            .unwrap();
        let huge_name = "x".repeat(1024 * 1024);
        let started = Instant::now();
        shard.subscribe((0..64).map(|i| format!("{huge_name}{i}")));
        let report = tokio::time::timeout(Duration::from_secs(5), reports.recv()).await;
        assert!(
            matches!(report, Ok(Some((ConnectionId(7), ShardEvent::Lost)))),
            "{report:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            !shard.health_check(Duration::ZERO),
            "its requests went unanswered"
        );
        stalled.abort();
    }
}
