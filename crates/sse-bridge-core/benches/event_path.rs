//! The per-event hot path of the gateway: parse a worker message and frame
//! it for the client, in each output format. Compares the shipped `Event::parse` (validate without a
//! tree, keep the minified text) with the straightforward alternative it
//! replaced (parse into a `serde_json::Value`, serialise it again).

use bytes::BytesMut;
use criterion::{Criterion, criterion_group, criterion_main};
use sse_bridge_core::format::Format;
use sse_bridge_core::log::SessionMeta;
use sse_bridge_core::protocol::OnDisconnect;
use sse_bridge_core::sse::{Framing, write_event};
use sse_bridge_core::{Event, SessionId};
use std::hint::black_box;

const PIECE: &[u8] =
    br#"{"event_type":"FinalAnswerStream","payload":{"char":"x","seq":42,"t":1234567890}}"#;
/// A piece as the log publishes it: reserved `attempt` and `log_id` to cut.
const LOGGED_PIECE: &[u8] = br#"{"event_type":"FinalAnswerStream","payload":{"char":"x","seq":42,"t":1234567890},"attempt":"4f1c2a9e","log_id":"1764000000000-17"}"#;
const TOOL: &[u8] = br#"{"event_type":"AgentToolCallEnd","payload":{"tool_name":"web_search","output":{"results":[{"title":"Paris weather","url":"https://example.com/paris","snippet":"Sunny, 21 \u00b0C, light wind from the west.\nHumidity 40%."},{"title":"Forecast","url":"https://example.com/f","snippet":"Rain expected tomorrow."}]}}}"#;

fn via_value(raw: &[u8], out: &mut BytesMut) {
    let value: serde_json::Value = serde_json::from_slice(raw).unwrap();
    assert!(value.get("event_type").and_then(|t| t.as_str()).is_some());
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&serde_json::to_vec(&value).unwrap());
    out.extend_from_slice(b"\n\n");
}

fn bench(c: &mut Criterion) {
    for (name, raw) in [
        ("piece", PIECE),
        ("logged_piece", LOGGED_PIECE),
        ("tool_result", TOOL),
    ] {
        let mut group = c.benchmark_group(name);
        let mut out = BytesMut::with_capacity(64 * 1024);
        group.bench_function("Event::parse + frame", |b| {
            b.iter(|| {
                out.clear();
                let event = Event::parse(black_box(raw), 1 << 20).unwrap();
                write_event(&mut out, &event, Framing::WithIds);
            })
        });
        group.bench_function("Value round trip + frame", |b| {
            b.iter(|| {
                out.clear();
                via_value(black_box(raw), &mut out);
            })
        });
        group.finish();
    }
}

/// A streamed answer of 100 one-word pieces, as the log publishes them.
fn answer_pieces() -> Vec<Vec<u8>> {
    (0..100)
        .map(|i| {
            format!(
                r#"{{"event_type":"FinalAnswerStream","payload":{{"char":"word{i} "}},"attempt":"4f1c2a9e","log_id":"1764000000000-{i}"}}"#
            )
            .into_bytes()
        })
        .collect()
}

/// Parse and encode a streamed answer in each format: what a stream's
/// driver does per event.
fn formats(c: &mut Criterion) {
    let pieces = answer_pieces();
    let mut group = c.benchmark_group("answer_100_pieces");
    for format in [Format::Native, Format::AgUi, Format::AiSdk] {
        let mut out = BytesMut::with_capacity(64 * 1024);
        group.bench_function(format.as_str(), |b| {
            b.iter(|| {
                out.clear();
                let id = SessionId::new();
                let mut encoder = format.encoder(
                    id,
                    &SessionMeta::new("bench", format.as_str(), OnDisconnect::Cancel),
                    Framing::WithIds,
                );
                for raw in &pieces {
                    let event = Event::parse(black_box(raw), 1 << 20).unwrap();
                    encoder.event(&event, &mut out);
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench, formats);
criterion_main!(benches);
