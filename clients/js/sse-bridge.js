/**
 * sse-bridge browser and Node client: one ES module, no dependencies, no
 * build step. It needs only `fetch`, `ReadableStream` and `TextDecoder`
 * (every current browser, Node 20+).
 *
 * - {@link EventStreamParser}: an incremental Server-Sent Events parser that
 *   follows the WHATWG event-stream rules (CR / LF / CRLF line ends, split
 *   anywhere, multi-line `data:`, comments, `id:`, `event:`, `retry:`, a
 *   leading BOM).
 * - {@link startSession}: `POST /v1/react/sessions`, the session's events as
 *   typed callbacks, and an automatic resume through the follow endpoint when
 *   the connection drops before the end.
 * - {@link followSession}: `GET /v1/react/sessions/{id}/events` in any output
 *   format, resuming after network failures.
 * - {@link cancelSession}: `DELETE /v1/react/sessions/{id}`.
 * - {@link getThread}: `GET /v1/threads/{id}` (PROTOCOL §8: a thread's runs
 *   and the interrupts it waits on).
 *
 * How a resume avoids gaps and duplicates: a native follow stream carries an
 * `id:` on every frame, and a resume sends the last one as `Last-Event-ID`.
 * The POST stream (and the AG-UI / AI SDK follow streams) carry no ids; they
 * are resumed from the start of the session instead, which replays exactly
 * the same events in the same order (the gateway serves every follower the
 * session's log), so the client skips as many events as it has already
 * delivered. Both cases are one rule: the client knows its position (events
 * delivered) and the position of the last id it saw; after a resume it skips
 * the difference.
 */

/** Output formats of the follow endpoint (`?format=`). */
export const FORMATS = Object.freeze(['native', 'ag-ui', 'ai-sdk']);

/** Reconnection delay when the server sent no `retry:` hint (the WHATWG default is implementation-defined). */
const DEFAULT_RETRY_MS = 1000;
/** Ceiling of the exponential backoff between reconnections. */
const MAX_RETRY_DELAY_MS = 30_000;
/** Reconnections in a row that deliver nothing before the client gives up. */
const DEFAULT_MAX_RETRIES = 5;
/** Answers of the follow endpoint worth trying again (log unreachable, too many streams, a proxy in trouble). */
const RETRYABLE_STATUSES = new Set([429, 502, 503, 504]);

/**
 * Incremental parser of a `text/event-stream` body. Feed it chunks (strings
 * or bytes, split anywhere); it calls `onEvent` once per dispatched event.
 *
 * `onEvent({type, data, lastEventId, id, raw})`: `type` is the `event:` name
 * (`message` by default), `data` the `data:` lines joined with `\n`,
 * `lastEventId` the WHATWG last-event-ID buffer, `id` the block's own `id:`
 * field (`null` when it had none) and `raw` the block's lines as received.
 * `onComment(text)` gets each comment line after its `:` (`" ping"`), and
 * `onRetry(ms)` each valid `retry:` field.
 */
export class EventStreamParser {
  #onEvent;
  #onComment;
  #onRetry;
  #decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  /** Text not yet ended by a line break. */
  #pending = '';
  /** The last chunk ended with CR: a LF opening the next one belongs to it. */
  #skipLineFeed = false;
  #atStreamStart = true;
  #data = [];
  #eventType = '';
  #blockId = null;
  #rawLines = [];
  /** The WHATWG "last event ID buffer", kept across events. */
  #lastEventIdBuffer = '';
  /** The last event ID as of the last dispatch (what a resume sends). */
  lastEventId = '';

  constructor({ onEvent = () => {}, onComment = () => {}, onRetry = () => {} } = {}) {
    this.#onEvent = onEvent;
    this.#onComment = onComment;
    this.#onRetry = onRetry;
  }

  /** Parses the next piece of the stream: a string, or bytes of UTF-8 (a character may be split between chunks). */
  feed(chunk) {
    const text = typeof chunk === 'string' ? chunk : this.#decoder.decode(chunk, { stream: true });
    this.#feedText(text);
  }

  /**
   * The stream ended: flushes the decoder, and discards an event whose
   * closing blank line never came (as the WHATWG rules require).
   */
  end() {
    this.#feedText(this.#decoder.decode());
    this.#pending = '';
    this.#resetBlock();
  }

  #feedText(text) {
    if (this.#atStreamStart && text.length > 0) {
      this.#atStreamStart = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (this.#skipLineFeed && text.length > 0) {
      this.#skipLineFeed = false;
      if (text[0] === '\n') text = text.slice(1);
    }
    let buffer = this.#pending + text;
    let start = 0;
    for (;;) {
      const end = nextLineBreak(buffer, start);
      if (end === -1) break;
      this.#processLine(buffer.slice(start, end));
      if (buffer[end] === '\r') {
        if (end + 1 === buffer.length) {
          this.#skipLineFeed = true;
          start = end + 1;
          break;
        }
        start = buffer[end + 1] === '\n' ? end + 2 : end + 1;
      } else {
        start = end + 1;
      }
    }
    this.#pending = buffer.slice(start);
  }

  #processLine(line) {
    if (line === '') {
      this.#dispatch();
      return;
    }
    this.#rawLines.push(line);
    if (line[0] === ':') {
      this.#onComment(line.slice(1));
      return;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    switch (field) {
      case 'event':
        this.#eventType = value;
        break;
      case 'data':
        this.#data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) {
          this.#lastEventIdBuffer = value;
          this.#blockId = value;
        }
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) this.#onRetry(Number(value));
        break;
      default: // unknown fields are ignored
    }
  }

  #dispatch() {
    this.lastEventId = this.#lastEventIdBuffer;
    if (this.#data.length > 0) {
      this.#onEvent({
        type: this.#eventType || 'message',
        data: this.#data.join('\n'),
        lastEventId: this.lastEventId,
        id: this.#blockId,
        raw: this.#rawLines.join('\n'),
      });
    }
    this.#resetBlock();
  }

  #resetBlock() {
    this.#data = [];
    this.#eventType = '';
    this.#blockId = null;
    this.#rawLines = [];
  }
}

/** Index of the next CR or LF in `text` at or after `from`, or -1. */
function nextLineBreak(text, from) {
  const cr = text.indexOf('\r', from);
  const lf = text.indexOf('\n', from);
  if (cr === -1) return lf;
  if (lf === -1) return cr;
  return Math.min(cr, lf);
}

/** A refused request: `message` is the gateway's `detail`, `status` the HTTP status (0: no answer at all). */
export class SessionError extends Error {
  constructor(detail, status, options) {
    super(detail, options);
    this.name = 'SessionError';
    this.detail = detail;
    this.status = status;
  }
}

/**
 * Starts a session: `POST {baseUrl}/v1/react/sessions` with `body` (JSON,
 * at least `user_query`), then streams its events to `handlers`.
 *
 * Resolves once the response head arrived, with `{sessionId, done, abort,
 * cancel}`; rejects with a {@link SessionError} carrying the gateway's
 * `detail` and status for a non-2xx answer. If the stream drops before the
 * terminal event, the session continues through {@link followSession}
 * (from the start, skipping the events already delivered: see the module doc).
 *
 * `body` may carry `thread_id` and, to continue an interrupted run,
 * `resume` (`[{interrupt_id, status, payload}]`; `user_query` is optional
 * then).
 *
 * Handlers (all optional): `onAck(payload)`, `onThought(char)`,
 * `onToolStart({tool_name, tool_input, tool_call_id?, executor?})`,
 * `onToolEnd({tool_name, output, tool_call_id?, error?, denied?})`,
 * `onAnswer(char)`, `onEnd()`, `onError({error, code})`,
 * `onInterrupt(interrupts)` (the run paused: PROTOCOL §8), the richer
 * events of PROTOCOL §9 — `onStepStart({name})`, `onStepEnd({name})`,
 * `onToolInput({tool_call_id, tool_name, delta})` (a call's input as it
 * streams, before its `onToolStart`), `onState(state)` (the agent's state,
 * `StateDelta` patches applied), `onSource({id, url, title?})`,
 * `onFile({media_type, url})`, `onData({name, data, id?, transient?})`,
 * `onUsage({input_tokens, output_tokens, reasoning_tokens?, model?})` —
 * `onEvent(event)` for every event (unknown types too), `onFrame(rawText)` for every frame as
 * received, `onComment(text)` and `onStatus(status)` with `connecting`,
 * `acknowledged`, `streaming`, `reconnecting`, `done`, `interrupted`,
 * `error` or `aborted`.
 *
 * `done` resolves to the outcome, `{status: 'done'}`, `{status:
 * 'interrupted', interrupts}`, `{status: 'error', error, code}` or
 * `{status: 'aborted'}`, and rejects with a
 * {@link SessionError} when the session cannot be reached any more.
 * `abort()` closes the connection (the gateway cancels the worker only if
 * nobody follows the session within its grace period); `cancel()` stops the
 * session for everyone (`DELETE`): the stream then ends with `error`/`cancelled`.
 *
 * Options: `signal` (aborts like `abort()`), `headers` (e.g.
 * `{authorization: 'Bearer …'}`, sent on every request), `maxRetries`.
 */
export async function startSession(baseUrl, body, handlers = {}, options = {}) {
  const { headers = {}, maxRetries = DEFAULT_MAX_RETRIES } = options;
  const controller = linkedController(options.signal);
  const delivery = new Delivery('native', handlers);
  delivery.status('connecting');
  let response;
  try {
    response = await fetch(endpoint(baseUrl, '/v1/react/sessions'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
  } catch (error) {
    throw controller.signal.aborted ? error : new SessionError(`the gateway did not answer: ${error.message}`, 0, { cause: error });
  }
  if (!response.ok) throw await refusal(response);
  const sessionId = response.headers.get('x-session-id');

  const done = (async () => {
    if (await delivery.read(response)) return delivery.outcome;
    if (controller.signal.aborted) return delivery.aborted();
    if (!sessionId) {
      throw new SessionError('the stream dropped and the response had no x-session-id to resume it with', 0);
    }
    return resume(baseUrl, sessionId, delivery, { headers, maxRetries, signal: controller.signal, reconnecting: true });
  })();
  return {
    sessionId,
    done,
    abort: () => controller.abort(),
    cancel: () => cancelSession(baseUrl, sessionId, { headers }),
  };
}

/**
 * Follows a session: `GET {baseUrl}/v1/react/sessions/{sessionId}/events`
 * in `format` (`native`, `ag-ui` or `ai-sdk`), from the start or after
 * `lastEventId`, with the handlers of {@link startSession} (the typed ones
 * for the native format; `onAck`, `onEnd`, `onError`, `onEvent`, `onFrame`
 * and `onStatus` for every format).
 *
 * Returns `{done, abort}` at once. A dropped connection (network error, or
 * the body ending before the terminal event) is resumed after the server's
 * `retry:` delay with exponential backoff, at most `maxRetries` times in a
 * row without progress. `done` resolves like {@link startSession}'s, with
 * `{status: 'over'}` when the gateway answers `204` (the session had ended
 * at `lastEventId`), and rejects with a {@link SessionError} for `404`
 * (unknown or expired session), other refusals, or when retries ran out.
 */
export function followSession(baseUrl, sessionId, handlers = {}, options = {}) {
  const { format = 'native', lastEventId = null, headers = {}, maxRetries = DEFAULT_MAX_RETRIES } = options;
  if (!FORMATS.includes(format)) throw new TypeError(`unknown format ${JSON.stringify(format)}; one of ${FORMATS.join(', ')}`);
  const controller = linkedController(options.signal);
  const delivery = new Delivery(format, handlers, lastEventId);
  delivery.status('connecting');
  const done = resume(baseUrl, sessionId, delivery, { headers, maxRetries, signal: controller.signal, reconnecting: false });
  return { done, abort: () => controller.abort() };
}

/**
 * Cancels a session (`DELETE`): resolves to the gateway's answer,
 * `{session_id, status: 'cancelled' | 'already_ended'}`; rejects with a
 * {@link SessionError} (`404`: unknown or expired).
 */
export async function cancelSession(baseUrl, sessionId, { headers = {}, signal } = {}) {
  const response = await fetch(endpoint(baseUrl, `/v1/react/sessions/${encodeURIComponent(sessionId)}`), {
    method: 'DELETE',
    headers,
    signal,
  });
  if (!response.ok) throw await refusal(response);
  return response.json();
}

/**
 * A thread (PROTOCOL §8): `GET {baseUrl}/v1/threads/{threadId}` resolves to
 * `{thread_id, runs: [{session_id, status, created_at}], interrupts}` (the
 * open interrupts: what a reloaded page must ask again), or `null` when the
 * gateway does not know the thread (`404`: unknown, expired or another
 * caller's); rejects with a {@link SessionError} for other refusals.
 */
export async function getThread(baseUrl, threadId, { headers = {}, signal } = {}) {
  let response;
  try {
    response = await fetch(endpoint(baseUrl, `/v1/threads/${encodeURIComponent(threadId)}`), {
      headers,
      signal,
      cache: 'no-store',
    });
  } catch (error) {
    throw new SessionError(`the gateway did not answer: ${error.message}`, 0, { cause: error });
  }
  if (response.status === 404) return null;
  if (!response.ok) throw await refusal(response);
  return response.json();
}

/**
 * The follow loop shared by {@link followSession} and a dropped POST stream:
 * connects (after the retry delay when `reconnecting`), reads until the
 * terminal event, and reconnects after failures.
 */
async function resume(baseUrl, sessionId, delivery, { headers, maxRetries, signal, reconnecting }) {
  let failures = 0;
  for (;;) {
    if (reconnecting) {
      failures += 1;
      if (failures > maxRetries) {
        throw new SessionError(`the connection dropped and ${maxRetries} reconnections failed`, 0);
      }
      delivery.status('reconnecting');
      const delay = Math.min(delivery.retryMs * 2 ** (failures - 1), MAX_RETRY_DELAY_MS);
      if (!(await sleep(delay, signal))) return delivery.aborted();
    }
    reconnecting = true;
    const url = new URL(endpoint(baseUrl, `/v1/react/sessions/${encodeURIComponent(sessionId)}/events`));
    if (delivery.format !== 'native') url.searchParams.set('format', delivery.format);
    const requestHeaders = { accept: 'text/event-stream', ...headers };
    const cursor = delivery.resumeCursor();
    if (cursor) requestHeaders['last-event-id'] = cursor;
    let response;
    try {
      response = await fetch(url, { headers: requestHeaders, signal, cache: 'no-store' });
    } catch {
      if (signal.aborted) return delivery.aborted();
      continue; // network failure: try again
    }
    if (response.status === 204) return delivery.over();
    if (!response.ok) {
      if (RETRYABLE_STATUSES.has(response.status)) continue;
      throw await refusal(response);
    }
    const deliveredBefore = delivery.delivered;
    if (await delivery.read(response)) return delivery.outcome;
    if (signal.aborted) return delivery.aborted();
    if (delivery.delivered > deliveredBefore) failures = 0;
  }
}

/**
 * One session's events on their way to the handlers, across connections:
 * the position (events delivered), the resume cursor, the format's terminal
 * rule and the typed dispatch.
 */
class Delivery {
  /** Events handed to the handlers so far. */
  delivered = 0;
  /** The last `id:` seen and how many events of the stream it covers. */
  #cursor;
  retryMs = DEFAULT_RETRY_MS;
  /** Set when the terminal event arrived. */
  outcome = null;
  #statusNow = null;
  /** The AI SDK's `error` chunk, waiting for its `[DONE]`. */
  #aiSdkError = null;
  /** The agent's state (PROTOCOL §9): the last `StateSnapshot` with the `StateDelta`s after it applied. */
  #state = null;
  #handlers;

  constructor(format, handlers, lastEventId = null) {
    this.format = format;
    this.#handlers = handlers;
    this.#cursor = lastEventId ? { id: lastEventId, position: 0 } : null;
  }

  /** The `Last-Event-ID` for the next connection, if it can resume after an id. */
  resumeCursor() {
    return this.#cursor?.id ?? null;
  }

  status(next) {
    if (next === this.#statusNow) return;
    this.#statusNow = next;
    this.#handlers.onStatus?.(next);
  }

  aborted() {
    this.status('aborted');
    return { status: 'aborted' };
  }

  /** `204`: nothing more to come. */
  over() {
    this.status('done');
    return { status: 'over' };
  }

  /**
   * Reads one response body to its end: `true` when the terminal event came.
   * A connection resumed without an id replays events this client already
   * delivered; they are skipped (counted, not dispatched).
   */
  async read(response) {
    let position = this.#cursor?.position ?? 0;
    const parser = new EventStreamParser({
      onEvent: (message) => {
        position += 1;
        // An empty id resets the cursor: a resume then starts from the beginning.
        if (message.id !== null) this.#cursor = message.id ? { id: message.id, position } : null;
        if (position > this.delivered) {
          this.delivered = position;
          this.#dispatch(message);
        }
      },
      onComment: (text) => {
        this.#handlers.onComment?.(text);
        this.#handlers.onFrame?.(`:${text}`);
      },
      onRetry: (ms) => {
        this.retryMs = ms;
        this.#handlers.onFrame?.(`retry: ${ms}`);
      },
    });
    const reader = response.body.getReader();
    try {
      while (!this.outcome) {
        let chunk;
        try {
          chunk = await reader.read();
        } catch {
          break; // the connection failed (or was aborted): the caller decides
        }
        if (chunk.done) break;
        parser.feed(chunk.value); // an exception of a handler is not a network failure: it propagates
      }
    } finally {
      reader.cancel().catch(() => {});
    }
    parser.end();
    return this.outcome !== null;
  }

  #dispatch(message) {
    const h = this.#handlers;
    h.onFrame?.(message.raw);
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      event = message.data; // e.g. the AI SDK's `[DONE]`
    }
    h.onEvent?.(event);
    switch (this.format) {
      case 'native':
        this.#dispatchNative(event);
        break;
      case 'ag-ui':
        this.#dispatchAgUi(event);
        break;
      default:
        this.#dispatchAiSdk(event);
    }
  }

  #dispatchNative(event) {
    const h = this.#handlers;
    const payload = event?.payload ?? {};
    switch (event?.event_type) {
      case 'worker_ack':
        this.#acknowledged(payload);
        break;
      case 'AgentThoughtStream':
        this.status('streaming');
        h.onThought?.(payload.char ?? '');
        break;
      case 'AgentToolCallStart':
        this.status('streaming');
        h.onToolStart?.(
          withPresent({ tool_name: payload.tool_name, tool_input: payload.tool_input }, payload, ['tool_call_id', 'executor']),
        );
        break;
      case 'AgentToolCallEnd':
        this.status('streaming');
        h.onToolEnd?.(
          withPresent({ tool_name: payload.tool_name, output: payload.output }, payload, ['tool_call_id', 'error', 'denied']),
        );
        break;
      case 'FinalAnswerStream':
        this.status('streaming');
        h.onAnswer?.(payload.char ?? '');
        break;
      case 'FinalAnswerStreamEnd':
        this.#finished();
        break;
      case 'error':
        this.#failed(payload.error, payload.code);
        break;
      case 'interrupt':
        this.#interrupted(payload.interrupts ?? []);
        break;
      // The richer events (PROTOCOL §9).
      case 'AgentStepStart':
        this.status('streaming');
        h.onStepStart?.({ name: payload.name });
        break;
      case 'AgentStepEnd':
        this.status('streaming');
        h.onStepEnd?.({ name: payload.name });
        break;
      case 'AgentToolCallInputStream':
        this.status('streaming');
        h.onToolInput?.({ tool_call_id: payload.tool_call_id, tool_name: payload.tool_name, delta: payload.delta ?? '' });
        break;
      case 'StateSnapshot':
        this.status('streaming');
        this.#state = structuredClone(payload.state ?? null);
        h.onState?.(this.#state);
        break;
      case 'StateDelta': {
        this.status('streaming');
        let next;
        try {
          next = applyJsonPatch(this.#state, payload.patch ?? []);
        } catch {
          break; // a patch of a state this connection never saw (a resume after an id): nothing to show
        }
        this.#state = next;
        h.onState?.(this.#state);
        break;
      }
      case 'Source':
        this.status('streaming');
        h.onSource?.(withPresent({ id: payload.id, url: payload.url }, payload, ['title']));
        break;
      case 'File':
        this.status('streaming');
        h.onFile?.({ media_type: payload.media_type, url: payload.url });
        break;
      case 'Data':
        this.status('streaming');
        h.onData?.(withPresent({ name: payload.name, data: payload.data }, payload, ['id', 'transient']));
        break;
      case 'Usage':
        h.onUsage?.(withPresent({ input_tokens: payload.input_tokens, output_tokens: payload.output_tokens }, payload, ['reasoning_tokens', 'model']));
        break;
      default: // unknown types reach onEvent only
    }
  }

  #dispatchAgUi(event) {
    switch (event?.type) {
      case 'CUSTOM':
        if (event.name === 'worker_ack') this.#acknowledged(event.value);
        break;
      case 'RUN_STARTED':
        break;
      case 'RUN_FINISHED':
        if (event.outcome?.type === 'interrupt') this.#interrupted(event.outcome.interrupts ?? []);
        else this.#finished();
        break;
      case 'RUN_ERROR':
        this.#failed(event.message, event.code);
        break;
      default:
        if (this.#statusNow === 'acknowledged') this.status('streaming');
    }
  }

  #dispatchAiSdk(event) {
    if (event === '[DONE]') {
      if (this.#aiSdkError) this.#failed(this.#aiSdkError.error, this.#aiSdkError.code);
      else this.#finished();
      return;
    }
    switch (event?.type) {
      case 'data-worker_ack':
        this.#acknowledged(event.data);
        break;
      case 'error': {
        // errorText is "<error> (<code>)"; reported with the terminal [DONE].
        const match = /^(.*) \(([a-z_]+)\)$/s.exec(event.errorText ?? '');
        this.#aiSdkError = match ? { error: match[1], code: match[2] } : { error: event.errorText, code: undefined };
        break;
      }
      case 'start':
      case 'start-step':
        break;
      default:
        if (this.#statusNow === 'acknowledged') this.status('streaming');
    }
  }

  #acknowledged(payload) {
    this.status('acknowledged');
    this.#handlers.onAck?.(payload ?? {});
  }

  #finished() {
    this.outcome = { status: 'done' };
    this.status('done');
    this.#handlers.onEnd?.();
  }

  #interrupted(interrupts) {
    this.outcome = { status: 'interrupted', interrupts };
    this.status('interrupted');
    this.#handlers.onInterrupt?.(interrupts);
  }

  #failed(error, code) {
    this.outcome = { status: 'error', error, code };
    this.status('error');
    this.#handlers.onError?.({ error, code });
  }
}

/**
 * `document` with the RFC 6902 `patch` applied (a copy; `add`, `remove`,
 * `replace`, `move`, `copy`, `test`). A patch that does not apply throws.
 */
export function applyJsonPatch(document, patch) {
  let root = structuredClone(document ?? null);
  const parse = (pointer) => {
    if (pointer === '') return [];
    if (!pointer.startsWith('/')) throw new Error(`not a JSON pointer: ${pointer}`);
    return pointer.slice(1).split('/').map((token) => token.replaceAll('~1', '/').replaceAll('~0', '~'));
  };
  const get = (tokens) => tokens.reduce((value, token) => {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, token)) throw new Error(`no value at /${tokens.join('/')}`);
    return value[token];
  }, root);
  const put = (tokens, value, insert) => {
    if (tokens.length === 0) return void (root = value);
    const parent = get(tokens.slice(0, -1));
    const key = tokens.at(-1);
    if (Array.isArray(parent)) {
      const index = key === '-' ? parent.length : Number(key);
      if (!Number.isInteger(index) || index < 0 || index > parent.length) throw new Error(`bad array index ${key}`);
      parent.splice(index, insert ? 0 : 1, value);
    } else if (parent !== null && typeof parent === 'object') {
      if (!insert && !Object.hasOwn(parent, key)) throw new Error(`no value at ${key}`);
      parent[key] = value;
    } else {
      throw new Error(`cannot set ${key} of a ${typeof parent}`);
    }
  };
  const remove = (tokens) => {
    const value = get(tokens);
    if (tokens.length === 0) return void (root = null);
    const parent = get(tokens.slice(0, -1));
    if (Array.isArray(parent)) parent.splice(Number(tokens.at(-1)), 1);
    else delete parent[tokens.at(-1)];
    return value;
  };
  for (const op of patch) {
    const path = parse(op.path);
    switch (op.op) {
      case 'add':
        put(path, structuredClone(op.value), true);
        break;
      case 'remove':
        remove(path);
        break;
      case 'replace':
        put(path, structuredClone(op.value), false);
        break;
      case 'move':
        put(path, remove(parse(op.from)), true);
        break;
      case 'copy':
        put(path, structuredClone(get(parse(op.from))), true);
        break;
      case 'test':
        if (JSON.stringify(get(path)) !== JSON.stringify(op.value)) throw new Error(`test failed at ${op.path}`);
        break;
      default:
        throw new Error(`unknown patch op ${op.op}`);
    }
  }
  return root;
}

/** `fields` plus those of `names` that `payload` has (not null). */
function withPresent(fields, payload, names) {
  for (const name of names) {
    if (payload[name] !== undefined && payload[name] !== null) fields[name] = payload[name];
  }
  return fields;
}

/** `baseUrl` + `path`, tolerating a trailing slash (and an empty base: same origin). */
function endpoint(baseUrl, path) {
  const base = (baseUrl ?? '').replace(/\/+$/, '');
  if (base) return `${base}${path}`;
  return new URL(path, globalThis.location?.href).href;
}

/** A controller that also aborts when `signal` does. */
function linkedController(signal) {
  const controller = new AbortController();
  if (signal) {
    if (signal.aborted) controller.abort(signal.reason);
    else signal.addEventListener('abort', () => controller.abort(signal.reason), { once: true });
  }
  return controller;
}

/** Waits `ms`; `false` if `signal` aborted first. */
function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** A non-2xx answer as a {@link SessionError} with the gateway's `detail`. */
async function refusal(response) {
  const text = await response.text().catch(() => '');
  let detail = text || response.statusText || `HTTP ${response.status}`;
  try {
    const body = JSON.parse(text);
    if (body && body.detail !== undefined) {
      detail = typeof body.detail === 'string' ? body.detail : JSON.stringify(body.detail);
    }
  } catch {
    // not JSON: the text itself
  }
  return new SessionError(detail, response.status);
}
