//! The HTTP/1.1 fast path's request-head parser on arbitrary bytes: never a
//! panic, and what it calls plain is plain — the head lies within the
//! input and the head limit, carries no `Transfer-Encoding` and at most one
//! `Content-Length` within the fast path's body limit, and bytes after the
//! head (a pipelined request) do not change the verdict.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_bridge_gateway::http1::head::{Head, MAX_FAST_BODY_BYTES, MAX_HEAD_BYTES, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(Head::Plain(request)) = parse(data) else {
        return;
    };
    assert!(request.head_len <= data.len().min(MAX_HEAD_BYTES));
    assert!(data[..request.head_len].ends_with(b"\n"));
    assert!(!request.headers.contains_key("transfer-encoding"));
    assert!(request.headers.get_all("content-length").iter().count() <= 1);
    assert!(request.content_length <= MAX_FAST_BODY_BYTES);
    let mut pipelined = data[..request.head_len].to_vec();
    pipelined.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    match parse(&pipelined) {
        Ok(Head::Plain(again)) => {
            assert_eq!(again.head_len, request.head_len);
            assert_eq!(again.content_length, request.content_length);
            assert_eq!(again.uri, request.uri);
        }
        other => panic!("the verdict changed with bytes after the head: {other:?}"),
    }
});
