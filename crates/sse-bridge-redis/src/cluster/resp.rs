//! Just enough RESP2 to read a subscriber connection: the replies and
//! pushes of `SSUBSCRIBE` / `SUNSUBSCRIBE` / `PING` and `smessage`s.
//!
//! redis-rs sends sharded subscriptions only through its cluster client,
//! whose resubscribe after a reconnect fails silently when channels span
//! slots (see `../../shared/CRATES.md`); a connection of our own per shard
//! is a few frames of protocol. The parser is incremental (a frame split
//! anywhere waits for more bytes) and bounded (a frame larger than
//! [`MAX_FRAME_BYTES`] is a protocol error, not an allocation).

use bytes::{Buf, Bytes, BytesMut};

/// Largest frame accepted: a message up to the gateway's `max_event_bytes`
/// is far below it; anything larger means a broken stream.
pub(crate) const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;
/// Deepest array nesting accepted (subscriber frames are flat).
const MAX_DEPTH: usize = 4;

/// One RESP2 value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Bytes>),
    Array(Vec<Frame>),
}

/// The peer sent something that is not RESP2.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed RESP frame: {0}")]
pub(crate) struct ProtocolError(&'static str);

/// Takes the first complete frame off `buf`; `Ok(None)` until one is there.
pub(crate) fn take_frame(buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
    match parse(buf, 0, 0)? {
        Some((frame, used)) => {
            buf.advance(used);
            Ok(Some(frame))
        }
        None if buf.len() > MAX_FRAME_BYTES => Err(ProtocolError("frame too large")),
        None => Ok(None),
    }
}

/// Encodes a command as a RESP array of bulk strings.
pub(crate) fn command(out: &mut BytesMut, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses the frame at `at`; returns it and the offset just past it.
fn parse(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Frame, usize)>, ProtocolError> {
    let Some((line, next)) = line(buf, at)? else {
        return Ok(None);
    };
    let (&kind, rest) = line.split_first().ok_or(ProtocolError("empty line"))?;
    let text = || std::str::from_utf8(rest).map_err(|_| ProtocolError("non-UTF-8 line"));
    let frame = match kind {
        b'+' => (Frame::Simple(text()?.to_owned()), next),
        b'-' => (Frame::Error(text()?.to_owned()), next),
        b':' => (Frame::Integer(number(rest)?), next),
        b'$' => {
            let len = number(rest)?;
            if len < 0 {
                return Ok(Some((Frame::Bulk(None), next)));
            }
            let len = usize::try_from(len).map_err(|_| ProtocolError("bulk length"))?;
            if len > MAX_FRAME_BYTES {
                return Err(ProtocolError("bulk string too large"));
            }
            let end = next + len;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ProtocolError("bulk string not followed by CRLF"));
            }
            (
                Frame::Bulk(Some(Bytes::copy_from_slice(&buf[next..end]))),
                end + 2,
            )
        }
        b'*' => {
            let count = number(rest)?;
            if count < 0 {
                return Ok(Some((Frame::Array(Vec::new()), next)));
            }
            if depth >= MAX_DEPTH || count > 1024 {
                return Err(ProtocolError("array too deep or too long"));
            }
            let mut items = Vec::with_capacity(count as usize);
            let mut offset = next;
            for _ in 0..count {
                let Some((item, after)) = parse(buf, offset, depth + 1)? else {
                    return Ok(None);
                };
                items.push(item);
                offset = after;
            }
            (Frame::Array(items), offset)
        }
        _ => return Err(ProtocolError("unknown frame type")),
    };
    Ok(Some(frame))
}

/// The line at `at` without its CRLF, and the offset after it.
fn line(buf: &[u8], at: usize) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    let rest = buf.get(at..).unwrap_or_default();
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(end) => Ok(Some((&rest[..end], at + end + 2))),
        None if rest.len() > 64 * 1024 => Err(ProtocolError("line too long")),
        None => Ok(None),
    }
}

fn number(digits: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(ProtocolError("not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Frame {
        Frame::Bulk(Some(Bytes::copy_from_slice(s.as_bytes())))
    }

    #[test]
    fn frames_split_anywhere_parse_once_complete() {
        let wire = b"*3\r\n$8\r\nsmessage\r\n$5\r\nch{1}\r\n$5\r\na\r\nbc\r\n*3\r\n$10\r\nssubscribe\r\n$1\r\nx\r\n:1\r\n-MOVED 12 127.0.0.1:7001\r\n";
        let expected = vec![
            Frame::Array(vec![bulk("smessage"), bulk("ch{1}"), bulk("a\r\nbc")]),
            Frame::Array(vec![bulk("ssubscribe"), bulk("x"), Frame::Integer(1)]),
            Frame::Error("MOVED 12 127.0.0.1:7001".into()),
        ];
        for split in 0..wire.len() {
            let mut buf = BytesMut::from(&wire[..split]);
            let mut frames = Vec::new();
            while let Some(frame) = take_frame(&mut buf).unwrap() {
                frames.push(frame);
            }
            buf.extend_from_slice(&wire[split..]);
            while let Some(frame) = take_frame(&mut buf).unwrap() {
                frames.push(frame);
            }
            assert_eq!(frames, expected, "split at {split}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for wire in [
            &b"?\r\n"[..],
            b"$abc\r\n",
            b"$3\r\nabcXY",
            b"*99999\r\n",
            b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
        ] {
            assert!(take_frame(&mut BytesMut::from(wire)).is_err(), "{wire:?}");
        }
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = BytesMut::new();
        command(&mut out, &[b"SSUBSCRIBE", b"sse_session:{1}"]);
        assert_eq!(
            &out[..],
            b"*2\r\n$10\r\nSSUBSCRIBE\r\n$15\r\nsse_session:{1}\r\n"
        );
    }
}
