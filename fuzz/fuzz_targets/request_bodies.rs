//! The request-body validators of every endpoint (native, AG-UI, AI SDK) on
//! arbitrary bytes: a 422 or a request, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_bridge_core::format::{AgUiRun, AiSdkChat};
use sse_bridge_core::protocol::SessionRequest;

fuzz_target!(|raw: &[u8]| {
    let _ = SessionRequest::parse(raw);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(raw) {
        let _ = AgUiRun::parse(value.clone());
        let _ = AiSdkChat::parse(value);
    }
});
