//! Output formats (PROTOCOL §5): the same worker events, three wire
//! vocabularies.
//!
//! An [`Encoder`] turns the events a session forwards into SSE frames, and
//! keeps the per-stream state a format needs (which reasoning, text or tool
//! call is open, which ids it gave them). Formats are applied on output
//! only: the log holds worker events, so a session started through one
//! endpoint can be followed in any format.
//!
//! * [`Native`] — the worker's JSON, `data:` frames (with `id:` for followers).
//! * [`AgUi`] — AG-UI events (`RUN_STARTED`, `REASONING_*`, `TOOL_CALL_*`,
//!   `TEXT_MESSAGE_*`, `RUN_FINISHED` / `RUN_ERROR`, `CUSTOM`).
//! * [`AiSdk`] — the Vercel AI SDK UI message stream (`start`, `reasoning-*`,
//!   `tool-input-available` / `tool-output-available`, `text-*`, `finish`,
//!   `[DONE]`).
//!
//! Ids an encoder makes (message, reasoning, tool call) are derived from the
//! session id and a counter, so a replay of the same log yields the same ids
//! — what the AI SDK's `reconnectToStream` relies on. Frames are LF-only.
//! `requests` turns the AG-UI and AI SDK request bodies into a session request.

mod ag_ui;
mod ai_sdk;
mod native;
mod parts;
mod requests;

use bytes::{BufMut, BytesMut};
use serde::Serialize;
use serde_json::Value;

use crate::log::SessionMeta;
use crate::protocol::{Event, SessionId, text_of};
use crate::sse::Framing;

pub use ag_ui::AgUi;
pub use ai_sdk::AiSdk;
pub use native::Native;
pub use requests::{AgUiRun, AiSdkChat};

/// Turns a session's forwarded events into frames of one format.
pub trait Encoder: Send + Sync + std::fmt::Debug + 'static {
    /// Frames that open the stream, before any event (AG-UI `RUN_STARTED`,
    /// AI SDK `start`); nothing for the native format.
    fn start(&mut self, _out: &mut BytesMut) {}

    /// The frames of one forwarded event, the terminal one included.
    fn event(&mut self, event: &Event, out: &mut BytesMut);
}

/// Which encoder an endpoint asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Native,
    AgUi,
    AiSdk,
}

impl Format {
    /// The name stored in session metadata and accepted as `?format=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Native => "native",
            Format::AgUi => "ag-ui",
            Format::AiSdk => "ai-sdk",
        }
    }

    pub fn from_label(label: &str) -> Option<Self> {
        [Format::Native, Format::AgUi, Format::AiSdk]
            .into_iter()
            .find(|f| f.as_str() == label)
    }

    /// The encoder of a stream of session `id` in this format, named by the
    /// ids its client knows (`meta`); `framing` is the native format's.
    pub fn encoder(self, id: SessionId, meta: &SessionMeta, framing: Framing) -> Box<dyn Encoder> {
        let id = id.to_string();
        match self {
            Format::Native => Box::new(Native::new(framing)),
            Format::AgUi => Box::new(AgUi::new(
                meta.thread_id.as_deref().unwrap_or(&id),
                meta.run_id.as_deref().unwrap_or(&id),
                &id,
            )),
            Format::AiSdk => Box::new(AiSdk::new(
                meta.message_id.as_deref().unwrap_or(&format!("msg-{id}")),
            )),
        }
    }
}

/// Appends `data: <json>\n\n`, serialised straight into `out`.
fn write_data(out: &mut BytesMut, value: &impl Serialize) {
    out.put_slice(b"data: ");
    serde_json::to_writer((&mut *out).writer(), value).expect("serialising to memory cannot fail");
    out.put_slice(b"\n\n");
}

/// A `Usage` payload's counts in the agent-UI clients' spelling
/// (`inputTokens`, `outputTokens`, `totalTokens`, `reasoningTokens`).
fn token_counts(payload: &Value) -> serde_json::Map<String, Value> {
    let count = |name: &str| payload.get(name).and_then(Value::as_u64);
    let (input, output) = (count("input_tokens"), count("output_tokens"));
    [
        ("inputTokens", input),
        ("outputTokens", output),
        ("totalTokens", input.zip(output).map(|(i, o)| i + o)),
        ("reasoningTokens", count("reasoning_tokens")),
    ]
    .into_iter()
    .filter_map(|(field, value)| Some((field.to_owned(), value?.into())))
    .collect()
}
