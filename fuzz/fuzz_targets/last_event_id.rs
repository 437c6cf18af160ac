//! `Last-Event-ID` parsing on arbitrary text: never a panic, and an accepted
//! id prints back to a form that parses to the same id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_bridge_core::log::LogId;

fuzz_target!(|text: &str| {
    if let Ok(id) = text.parse::<LogId>() {
        assert_eq!(id.to_string().parse::<LogId>(), Ok(id));
    }
});
