//! The native format: the worker's own JSON (PROTOCOL §3.5, §4).

use bytes::BytesMut;

use super::Encoder;
use crate::protocol::Event;
use crate::sse::{self, Framing};

/// `data: <event json>` frames, with `id: <log id>` when `framing` asks.
#[derive(Debug)]
pub struct Native {
    framing: Framing,
}

impl Native {
    pub fn new(framing: Framing) -> Self {
        Native { framing }
    }
}

impl Encoder for Native {
    fn event(&mut self, event: &Event, out: &mut BytesMut) {
        sse::write_event(out, event, self.framing);
    }
}
