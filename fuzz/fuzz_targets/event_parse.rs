//! The gateway's per-event hot path on arbitrary channel messages: parsing
//! never panics, and an accepted event re-parses to itself and frames as one
//! `data:` line with no raw newline.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_bridge_core::protocol::Event;

fuzz_target!(|raw: &[u8]| {
    if let Ok(event) = Event::parse(raw, 1 << 20) {
        assert!(!event.json().contains(&b'\n'));
        let again = Event::parse(event.json(), 1 << 20).expect("compact JSON re-parses");
        assert_eq!(again.json(), event.json());
    }
});
