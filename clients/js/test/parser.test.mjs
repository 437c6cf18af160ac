/**
 * The event-stream parser against the WHATWG rules: line ends, fields,
 * comments, ids, retry, the BOM, and chunks split at every offset (inside a
 * CRLF pair or a multi-byte UTF-8 character too).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventStreamParser } from '../sse-bridge.js';

/** Feeds `chunks` (strings or bytes) and returns what the parser reported. */
function parse(chunks) {
  const events = [];
  const comments = [];
  const retries = [];
  const parser = new EventStreamParser({
    onEvent: (event) => events.push(event),
    onComment: (text) => comments.push(text),
    onRetry: (ms) => retries.push(ms),
  });
  for (const chunk of chunks) parser.feed(chunk);
  parser.end();
  return { events, comments, retries, lastEventId: parser.lastEventId };
}

/** Just `type` and `data` of each event. */
const essentials = (events) => events.map(({ type, data }) => ({ type, data }));

const bytes = (text) => new TextEncoder().encode(text);

test('data-only frames, as the POST stream sends them', () => {
  const { events } = parse(['data: {"a":1}\n\ndata: {"b":2}\n\n']);
  assert.deepEqual(essentials(events), [
    { type: 'message', data: '{"a":1}' },
    { type: 'message', data: '{"b":2}' },
  ]);
  assert.equal(events[0].raw, 'data: {"a":1}');
});

test('LF, CRLF and CR line ends, mixed', () => {
  const { events } = parse(['data: one\r\n\r\ndata: two\r\rdata: three\n\ndata: four\r\n\n']);
  assert.deepEqual(events.map((e) => e.data), ['one', 'two', 'three', 'four']);
});

test('multi-line data is joined with \\n; one leading space is stripped, not two', () => {
  const { events } = parse(['data: line 1\ndata:line 2\ndata:  indented\ndata\n\n']);
  assert.equal(events[0].data, 'line 1\nline 2\n indented\n');
});

test('comments are reported and never dispatched', () => {
  const { events, comments } = parse([': ping\n\n:\n\ndata: x\n: inside\n\n']);
  assert.deepEqual(comments, [' ping', '', ' inside']);
  assert.deepEqual(events.map((e) => e.data), ['x']);
  assert.equal(events[0].raw, 'data: x\n: inside');
});

test('event names, ids and the last-event-ID buffer', () => {
  const { events, lastEventId } = parse([
    'event: tick\nid: 1-0\ndata: a\n\n',
    'data: b\n\n', // no id of its own: keeps the buffer, id null
    'id: 2-0\ndata: c\n\n',
    'id: bad\0id\ndata: d\n\n', // an id with NUL is ignored
    'id\ndata: e\n\n', // an empty id resets the buffer
  ]);
  assert.deepEqual(
    events.map(({ type, data, id, lastEventId }) => ({ type, data, id, lastEventId })),
    [
      { type: 'tick', data: 'a', id: '1-0', lastEventId: '1-0' },
      { type: 'message', data: 'b', id: null, lastEventId: '1-0' },
      { type: 'message', data: 'c', id: '2-0', lastEventId: '2-0' },
      { type: 'message', data: 'd', id: null, lastEventId: '2-0' },
      { type: 'message', data: 'e', id: '', lastEventId: '' },
    ],
  );
  assert.equal(lastEventId, '');
});

test('an id-only block moves lastEventId without an event', () => {
  const { events, lastEventId } = parse(['id: 7-1\n\n']);
  assert.deepEqual(events, []);
  assert.equal(lastEventId, '7-1');
});

test('retry takes digits only', () => {
  const { retries, events } = parse(['retry: 1000\n\nretry: 1.5\nretry: x\nretry:250\n\n']);
  assert.deepEqual(retries, [1000, 250]);
  assert.deepEqual(events, []);
});

test('unknown fields and a field without colon are ignored', () => {
  const { events } = parse(['foo: bar\nevent\ndata: kept\n\n']);
  assert.deepEqual(essentials(events), [{ type: 'message', data: 'kept' }]);
});

test('a leading BOM is stripped once; a later one is data', () => {
  assert.equal(parse(['\uFEFFdata: a\n\n']).events[0].data, 'a');
  assert.equal(parse([bytes('\uFEFFdata: a\n\n')]).events[0].data, 'a');
  assert.equal(parse([new Uint8Array([0xef, 0xbb]), new Uint8Array([0xbf]), bytes('data: a\n\n')]).events[0].data, 'a');
  // A second BOM is not the stream's start: "\uFEFFdata" is an unknown field.
  assert.deepEqual(parse(['\uFEFF\uFEFFdata: a\n\n']).events, []);
  assert.equal(parse(['data: \uFEFFa\n\n']).events[0].data, '\uFEFFa');
});

test('an event without its closing blank line is discarded at the end', () => {
  const { events } = parse(['data: complete\n\ndata: cut off\n']);
  assert.deepEqual(events.map((e) => e.data), ['complete']);
});

const stream =
  '\uFEFFretry: 1000\r\n\r\n: ping\r\n\r\nid: 1-0\r\nevent: note\r\ndata: {"char":"é"}\r\ndata: second line 🦀\r\n\r\n' +
  'id: 2-0\rdata: {"char":"日本"}\r\r' +
  'data: crlf last\r\n\r\n';

const expected = parse([stream]);

test('the reference stream parses as expected', () => {
  assert.deepEqual(expected.retries, [1000]);
  assert.deepEqual(expected.comments, [' ping']);
  assert.deepEqual(
    expected.events.map(({ type, data, lastEventId }) => ({ type, data, lastEventId })),
    [
      { type: 'note', data: '{"char":"é"}\nsecond line 🦀', lastEventId: '1-0' },
      { type: 'message', data: '{"char":"日本"}', lastEventId: '2-0' },
      { type: 'message', data: 'crlf last', lastEventId: '2-0' },
    ],
  );
});

test('string chunks split at every offset (inside CRLF pairs too) parse the same', () => {
  for (let cut = 0; cut <= stream.length; cut += 1) {
    assert.deepEqual(parse([stream.slice(0, cut), stream.slice(cut)]), expected, `cut at ${cut}`);
  }
});

test('byte chunks split at every offset (inside UTF-8 characters too) parse the same', () => {
  const encoded = bytes(stream);
  for (let cut = 0; cut <= encoded.length; cut += 1) {
    const chunks = [encoded.slice(0, cut), encoded.slice(cut)];
    assert.deepEqual(parse(chunks), expected, `cut at byte ${cut}`);
  }
});

test('one byte at a time parses the same', () => {
  const encoded = bytes(stream);
  const chunks = Array.from(encoded, (byte) => new Uint8Array([byte]));
  assert.deepEqual(parse(chunks), expected);
});

test('every pair of cut points parses the same', () => {
  const encoded = bytes(stream);
  for (let first = 0; first <= encoded.length; first += 3) {
    for (let second = first; second <= encoded.length; second += 2) {
      const chunks = [encoded.slice(0, first), encoded.slice(first, second), encoded.slice(second)];
      assert.deepEqual(parse(chunks), expected, `cuts at ${first} and ${second}`);
    }
  }
});

test('a CR at a chunk end followed by a chunk without LF ends the line once', () => {
  const { events } = parse(['data: a\r', '\r', 'data: b\r', '\n', '\r\n']);
  assert.deepEqual(events.map((e) => e.data), ['a', 'b']);
});
