//! One subscriber connection to one shard master, in RESP2 subscribed mode.
//!
//! The [`super::subscriber`] task owns it and writes `SSUBSCRIBE`,
//! `SUNSUBSCRIBE` and `PING` (one channel per command, so every reply
//! answers exactly one request, in order). A reader task of its own routes
//! each `smessage` straight to the [`Router`] (the hot path: no hop through
//! the subscriber task) and reports everything else as a [`ShardEvent`].

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

/// What a shard connection tells its owner.
#[derive(Debug)]
pub(crate) enum ShardEvent {
    /// `SSUBSCRIBE channel` was confirmed.
    Subscribed(String),
    /// `SSUBSCRIBE channel` was refused (`MOVED <slot> <addr>` and the like).
    Refused { channel: String, error: String },
    /// The server dropped the subscription on its own (its slot moved away).
    Dropped(String),
    /// The connection to `addr` is gone.
    Lost(String),
}

/// A request written and not answered yet.
#[derive(Debug)]
enum Request {
    Subscribe(String),
    Unsubscribe(String),
    Ping,
}

/// Requests in the order they were written, with when.
type InFlight = Arc<Mutex<VecDeque<(Request, Instant)>>>;

/// Where to connect and how to introduce ourselves.
pub(crate) struct ShardLogin<'a> {
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub client_name: &'a str,
    pub timeout: Duration,
}

/// A live subscriber connection to one master.
pub(crate) struct ShardConnection {
    addr: String,
    writer: OwnedWriteHalf,
    in_flight: InFlight,
    reader: JoinHandle<()>,
}

impl Drop for ShardConnection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl ShardConnection {
    /// Connects to `addr` (`host:port`), logs in and names the connection.
    pub(crate) async fn connect(
        addr: &str,
        login: &ShardLogin<'_>,
        router: Arc<Router>,
        events: mpsc::UnboundedSender<ShardEvent>,
    ) -> Result<ShardConnection, BrokerError> {
        let timeout = login.timeout;
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| BrokerError::Timeout(timeout))?
            .map_err(|e| {
                BrokerError::Unavailable(format!("cannot connect to shard {addr}: {e}"))
            })?;
        stream
            .set_nodelay(true)
            .map_err(|e| BrokerError::Unavailable(e.to_string()))?;
        let (mut read, mut writer) = stream.into_split();
        let mut hello = BytesMut::new();
        let mut expected = 1;
        match (login.username, login.password) {
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
            writer.write_all(&hello).await.map_err(io_error)?;
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
        let reader = tokio::spawn(read_loop(
            addr.to_owned(),
            read,
            buf,
            router,
            in_flight.clone(),
            events,
        ));
        Ok(ShardConnection {
            addr: addr.to_owned(),
            writer,
            in_flight,
            reader,
        })
    }

    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// Writes `SSUBSCRIBE` for each channel (answered by [`ShardEvent`]s).
    pub(crate) async fn subscribe(&mut self, channels: &[String]) -> Result<(), BrokerError> {
        let requests = channels.iter().map(|c| Request::Subscribe(c.clone()));
        self.write(requests.collect()).await
    }

    /// Writes `SUNSUBSCRIBE` for each channel.
    pub(crate) async fn unsubscribe(&mut self, channels: &[String]) -> Result<(), BrokerError> {
        let requests = channels.iter().map(|c| Request::Unsubscribe(c.clone()));
        self.write(requests.collect()).await
    }

    /// Writes a `PING`, unless the oldest request is already older than
    /// `patience`: then the connection is reported dead (`false`).
    pub(crate) async fn health_check(&mut self, patience: Duration) -> bool {
        let stale = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .front()
            .is_some_and(|(_, sent)| sent.elapsed() > patience);
        !stale && self.write(vec![Request::Ping]).await.is_ok()
    }

    async fn write(&mut self, requests: Vec<Request>) -> Result<(), BrokerError> {
        let mut out = BytesMut::new();
        for request in &requests {
            match request {
                Request::Subscribe(channel) => {
                    resp::command(&mut out, &[b"SSUBSCRIBE", channel.as_bytes()])
                }
                Request::Unsubscribe(channel) => {
                    resp::command(&mut out, &[b"SUNSUBSCRIBE", channel.as_bytes()])
                }
                Request::Ping => resp::command(&mut out, &[b"PING"]),
            }
        }
        {
            // Queued before the bytes leave: no reply can overtake its request.
            let now = Instant::now();
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            in_flight.extend(requests.into_iter().map(|r| (r, now)));
        }
        self.writer.write_all(&out).await.map_err(io_error)
    }
}

/// Reads frames until the connection ends; routes messages, reports the rest.
async fn read_loop(
    addr: String,
    mut read: OwnedReadHalf,
    mut buf: BytesMut,
    router: Arc<Router>,
    in_flight: InFlight,
    events: mpsc::UnboundedSender<ShardEvent>,
) {
    loop {
        let frame = match read_frame(&mut read, &mut buf).await {
            Ok(frame) => frame,
            Err(error) => {
                tracing::warn!(shard = %addr, %error, "shard subscriber connection lost");
                let _ = events.send(ShardEvent::Lost(addr));
                return;
            }
        };
        if let Some(event) = handle(frame, &router, &in_flight) {
            let _ = events.send(event);
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
