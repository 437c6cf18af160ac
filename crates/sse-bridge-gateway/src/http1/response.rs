//! The response side of the HTTP/1.1 fast path: the status line and
//! headers, and the body's framing — a known length as is, anything else
//! (every event stream) in chunked encoding, one chunk per body frame.

use std::io::{IoSlice, Write};
use std::time::SystemTime;

use axum::http::{HeaderValue, StatusCode, header, response};
use bytes::Bytes;

/// How the body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all (1xx, 204, 304).
    Empty,
    /// `Content-Length: n`, the bytes as they are.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

impl Framing {
    /// The framing of a response with `status` whose body is `exact` bytes
    /// long when known.
    pub fn of(status: StatusCode, exact: Option<u64>) -> Framing {
        if status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return Framing::Empty;
        }
        match exact {
            Some(length) => Framing::Length(length),
            None => Framing::Chunked,
        }
    }

    /// What ends the body on the wire.
    pub fn trailer(self) -> &'static [u8] {
        match self {
            Framing::Chunked => b"0\r\n\r\n",
            Framing::Empty | Framing::Length(_) => b"",
        }
    }
}

/// The status line and headers of `parts`, with the framing headers this
/// connection decides (any the handler set are replaced), a `date`, and
/// `connection: close` when the connection ends after this response.
pub fn encode_head(parts: &response::Parts, framing: Framing, close: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(parts.status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if matches!(
            *name,
            header::CONNECTION | header::TRANSFER_ENCODING | header::CONTENT_LENGTH
        ) {
            continue;
        }
        push_header(&mut out, name.as_str(), value);
    }
    if !parts.headers.contains_key(header::DATE) {
        let date = httpdate::fmt_http_date(SystemTime::now());
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(date.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Empty => {}
        Framing::Length(length) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(length.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &HeaderValue) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A chunk's size line at most: 16 hex digits (a `usize`) and CRLF.
const SIZE_LINE_MAX: usize = 18;

/// One body frame on its way to the socket: in chunked encoding its size
/// line, the data, and the CRLF after it, written with one vectored write
/// where the socket allows, without copying the data.
pub struct Frame {
    size_line: [u8; SIZE_LINE_MAX],
    size_line_len: u8,
    data: Bytes,
    suffix: &'static [u8],
    /// Bytes of the three parts written so far.
    written: usize,
}

impl Frame {
    pub fn new(data: Bytes, framing: Framing) -> Frame {
        let mut size_line = [0u8; SIZE_LINE_MAX];
        let mut size_line_len = 0;
        let mut suffix: &'static [u8] = b"";
        if framing == Framing::Chunked {
            // Written in place: no allocation per chunk.
            let mut line = &mut size_line[..];
            write!(line, "{:x}\r\n", data.len()).expect("a usize in hex and CRLF fit");
            size_line_len = (SIZE_LINE_MAX - line.len()) as u8;
            suffix = b"\r\n";
        }
        Frame {
            size_line,
            size_line_len,
            data,
            suffix,
            written: 0,
        }
    }

    /// Bytes as they are, in no body framing (a response head, a trailer).
    pub fn raw(data: Bytes) -> Frame {
        Frame::new(data, Framing::Length(0))
    }

    /// The parts still to write.
    pub fn remaining(&self) -> [IoSlice<'_>; 3] {
        let mut skip = self.written;
        self.parts().map(|part| {
            let skipped = skip.min(part.len());
            skip -= skipped;
            IoSlice::new(&part[skipped..])
        })
    }

    /// The first part not fully written (for sockets without vectored writes).
    pub fn first_remaining(&self) -> &[u8] {
        let mut skip = self.written;
        for part in self.parts() {
            if skip < part.len() {
                return &part[skip..];
            }
            skip -= part.len();
        }
        &[]
    }

    fn parts(&self) -> [&[u8]; 3] {
        [
            &self.size_line[..usize::from(self.size_line_len)],
            &self.data,
            self.suffix,
        ]
    }

    pub fn advance(&mut self, written: usize) {
        self.written += written;
    }

    pub fn is_done(&self) -> bool {
        self.first_remaining().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(frame: &Frame) -> Vec<u8> {
        frame.remaining().iter().flat_map(|s| s.to_vec()).collect()
    }

    #[test]
    fn a_chunk_is_its_hex_size_the_data_and_crlf() {
        let frame = Frame::new(Bytes::from_static(b"data: {}\n\n"), Framing::Chunked);
        assert_eq!(wire(&frame), b"a\r\ndata: {}\n\n\r\n");
        let frame = Frame::new(Bytes::from(vec![b'x'; 300]), Framing::Chunked);
        assert!(wire(&frame).starts_with(b"12c\r\nxxx"));
    }

    #[test]
    fn partial_writes_resume_where_they_stopped_in_any_part() {
        let expected = b"5\r\nhello\r\n";
        for step in 1..=expected.len() {
            let mut frame = Frame::new(Bytes::from_static(b"hello"), Framing::Chunked);
            let mut out = Vec::new();
            while !frame.is_done() {
                let part = frame.first_remaining();
                let n = step.min(part.len());
                out.extend_from_slice(&part[..n]);
                frame.advance(n);
            }
            assert_eq!(out, expected, "written {step} bytes at a time");
            assert!(wire(&frame).is_empty());
        }
    }

    #[test]
    fn a_known_length_body_goes_as_it_is() {
        let frame = Frame::new(
            Bytes::from_static(b"{\"detail\":\"x\"}"),
            Framing::Length(14),
        );
        assert_eq!(wire(&frame), b"{\"detail\":\"x\"}");
        assert_eq!(Framing::Length(14).trailer(), b"");
        assert_eq!(Framing::Chunked.trailer(), b"0\r\n\r\n");
    }

    #[test]
    fn the_head_sets_its_own_framing_and_a_date() {
        let (mut parts, ()) = axum::http::Response::new(()).into_parts();
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        let head = String::from_utf8(encode_head(&parts, Framing::Chunked, true)).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ndate: "));
        assert!(head.ends_with("\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"));
        assert!(!head.contains("999"));
        assert_eq!(Framing::of(StatusCode::NO_CONTENT, Some(0)), Framing::Empty);
        assert_eq!(Framing::of(StatusCode::OK, None), Framing::Chunked);
    }
}
