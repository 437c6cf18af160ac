/**
 * The playground page: asks the gateway's demo agent a question and shows
 * the session as it streams — reasoning piece by piece, each tool call as a
 * collapsible step, the answer, a status line, timings and the raw frames
 * (native, AG-UI or AI SDK). `/?session=<id>` follows an existing session,
 * so the page's address after a start is a shareable link. Everything goes
 * through `/assets/sse-bridge.js` (resume, cancel, parsing); this module is
 * only the view.
 */
import { SessionError, cancelSession, followSession, startSession } from '/assets/sse-bridge.js';

const TOKEN_STORAGE_KEY = 'sse-bridge-playground.token';
const KNOWN_EVENT_TYPES = new Set([
  'worker_ack',
  'AgentThoughtStream',
  'AgentToolCallStart',
  'AgentToolCallEnd',
  'FinalAnswerStream',
  'FinalAnswerStreamEnd',
  'error',
]);
const STATUS_TEXT = {
  idle: 'Ready',
  connecting: 'Connecting…',
  acknowledged: 'Acknowledged — a worker took the job',
  streaming: 'Streaming…',
  reconnecting: 'Connection lost — resuming…',
  done: 'Done',
  aborted: 'Stopped following this session',
};

const element = (id) => document.getElementById(id);
const ui = {
  queryForm: element('query-form'),
  queryInput: element('query-input'),
  startButton: element('start-button'),
  stopButton: element('stop-button'),
  status: element('status'),
  statusText: element('status-text'),
  share: element('share'),
  sessionLink: element('session-link'),
  copyLink: element('copy-link'),
  timingAck: element('timing-ack'),
  timingFirstAnswer: element('timing-first-answer'),
  timingTotal: element('timing-total'),
  timingEvents: element('timing-events'),
  transcript: element('transcript'),
  transcriptPlaceholder: element('transcript-placeholder'),
  answer: element('answer'),
  rawFrames: element('raw-frames'),
  frameCount: element('frame-count'),
  framesSource: element('frames-source'),
  tokenInput: element('token-input'),
  tokenClear: element('token-clear'),
  toolStepTemplate: element('tool-step-template'),
};

/** The session on screen: its view and its connection. */
let current = null;
/** The raw-frames panel's own follower, when it shows another format. */
let framesFollower = null;

function authHeaders() {
  const token = ui.tokenInput.value.trim();
  return token ? { authorization: `Bearer ${token}` } : {};
}

function selectedFormat() {
  return document.querySelector('input[name="format"]:checked').value;
}

function formatDuration(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** A value as a tool step shows it: strings as they are, the rest as JSON. */
function displayValue(value) {
  return typeof value === 'string' ? value : JSON.stringify(value, null, 2);
}

function setStatus(state, text = STATUS_TEXT[state], code = '') {
  ui.status.dataset.state = state;
  ui.status.dataset.code = code;
  ui.statusText.textContent = text;
}

/**
 * The raw-frames panel: appends frames as received (field names
 * highlighted), keeping the view at the bottom if it was there.
 */
const framesPanel = {
  count: 0,
  clear(source) {
    this.count = 0;
    ui.rawFrames.textContent = '';
    ui.frameCount.textContent = '0';
    ui.framesSource.textContent = source;
  },
  append(frame) {
    const pre = ui.rawFrames;
    const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
    for (const line of frame.split('\n')) {
      const colon = line.indexOf(':');
      const field = document.createElement('span');
      field.className = 'field';
      field.textContent = colon === -1 ? line : line.slice(0, colon + 1);
      pre.append(field, line.slice(field.textContent.length), '\n');
    }
    pre.append('\n');
    this.count += 1;
    ui.frameCount.textContent = String(this.count);
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  },
};

/**
 * One session's view: resets the page, renders the events the client
 * dispatches and keeps the timings.
 */
class SessionView {
  id = null;
  #startedAt = performance.now();
  #events = 0;
  #acknowledged = false;
  #answered = false;
  /** The reasoning paragraph being written, until a tool call interrupts it. */
  #thought = null;
  /** Tool steps waiting for their result, oldest first. */
  #openSteps = [];

  constructor() {
    ui.transcript.replaceChildren(ui.transcriptPlaceholder);
    ui.transcriptPlaceholder.hidden = false;
    ui.answer.textContent = '';
    ui.answer.classList.remove('live');
    ui.timingAck.textContent = '–';
    ui.timingFirstAnswer.textContent = '–';
    ui.timingTotal.textContent = '–';
    ui.timingEvents.textContent = '0';
    ui.stopButton.disabled = true;
  }

  /** Whether this view is still the one on screen (a session left behind says nothing more). */
  get onScreen() {
    return current?.view === this;
  }

  /**
   * The client's handlers, bound to this view while it is on screen. The
   * frames panel shows this connection's frames unless it follows the
   * session itself (another format was selected).
   */
  handlers() {
    const handlers = {
      onStatus: (status) => this.#onStatus(status),
      onEvent: (event) => this.#onEvent(event),
      onThought: (char) => this.#onThought(char),
      onToolStart: (call) => this.#onToolStart(call),
      onToolEnd: (result) => this.#onToolEnd(result),
      onAnswer: (char) => this.#onAnswer(char),
      onError: ({ error, code }) => setStatus('error', `Error · ${code ?? 'unknown'} — ${error ?? ''}`, code ?? ''),
      onFrame: (frame) => {
        if (framesFollower === null) framesPanel.append(frame);
      },
    };
    for (const [name, handler] of Object.entries(handlers)) {
      handlers[name] = (argument) => {
        if (this.onScreen) handler(argument);
      };
    }
    return handlers;
  }

  /** The session has an id: it can be shared, stopped and followed in another format. */
  identified(sessionId) {
    this.id = sessionId;
    showShareLink(sessionId);
    ui.stopButton.disabled = false;
    if (selectedFormat() !== 'native') followFramesOf(sessionId);
  }

  /** The session is over (whatever the outcome): final timings, controls back. */
  finish() {
    if (!this.onScreen) return;
    this.#thought?.classList.remove('live');
    ui.answer.classList.remove('live');
    ui.stopButton.disabled = true;
    this.#updateTotal();
  }

  #elapsed() {
    return performance.now() - this.#startedAt;
  }

  #updateTotal() {
    ui.timingTotal.textContent = formatDuration(this.#elapsed());
  }

  #onStatus(status) {
    if (status === 'error') return; // onError says which error
    setStatus(status);
  }

  #onEvent(event) {
    this.#events += 1;
    ui.timingEvents.textContent = String(this.#events);
    this.#updateTotal();
    if (event?.event_type === 'worker_ack' && !this.#acknowledged) {
      this.#acknowledged = true;
      ui.timingAck.textContent = formatDuration(this.#elapsed());
    }
    if (event && !KNOWN_EVENT_TYPES.has(event.event_type)) this.#showOtherEvent(event);
  }

  #onThought(char) {
    if (!this.#thought) {
      this.#thought = document.createElement('p');
      this.#thought.className = 'thought live';
      this.#thought.dataset.testid = 'reasoning';
      this.#appendToTranscript(this.#thought);
    }
    this.#thought.append(char);
  }

  #onToolStart({ tool_name, tool_input }) {
    this.#endThought();
    const step = ui.toolStepTemplate.content.firstElementChild.cloneNode(true);
    step.dataset.toolName = tool_name;
    step.dataset.state = 'running';
    step.querySelector('.tool-name').textContent = tool_name;
    step.querySelector('.tool-input').textContent = displayValue(tool_input ?? {});
    this.#openSteps.push(step);
    this.#appendToTranscript(step);
  }

  #onToolEnd({ tool_name, output }) {
    const index = this.#openSteps.findIndex((step) => step.dataset.toolName === tool_name);
    if (index === -1) return; // a result without its call: nothing to attach it to
    const [step] = this.#openSteps.splice(index, 1);
    step.dataset.state = 'done';
    step.querySelector('.tool-state').textContent = 'done';
    step.querySelector('.tool-output').textContent = displayValue(output);
  }

  #onAnswer(char) {
    this.#endThought();
    if (!this.#answered) {
      this.#answered = true;
      ui.timingFirstAnswer.textContent = formatDuration(this.#elapsed());
      ui.answer.classList.add('live');
    }
    ui.answer.append(char);
  }

  #showOtherEvent(event) {
    this.#endThought();
    const line = document.createElement('p');
    line.className = 'other-event';
    line.dataset.testid = 'other-event';
    const name = document.createElement('code');
    name.textContent = typeof event === 'string' ? event : event.event_type;
    line.append(name, ` ${typeof event === 'string' ? '' : JSON.stringify(event.payload)}`);
    this.#appendToTranscript(line);
  }

  #endThought() {
    this.#thought?.classList.remove('live');
    this.#thought = null;
  }

  #appendToTranscript(node) {
    ui.transcriptPlaceholder.hidden = true;
    ui.transcript.append(node);
  }
}

/** Shows the session's shareable address and puts it in the address bar. */
function showShareLink(sessionId) {
  const url = new URL(location.href);
  url.search = new URLSearchParams({ session: sessionId }).toString();
  history.replaceState(null, '', url);
  ui.sessionLink.href = url.href;
  ui.sessionLink.textContent = url.href;
  ui.share.hidden = false;
}

/** A failure of the whole session (refused, unreachable) on the status line. */
function showFailure(error) {
  if (error instanceof SessionError) {
    const code = error.status ? `HTTP ${error.status}` : 'connection';
    setStatus('error', `Error · ${code} — ${error.detail}`, code);
  } else {
    setStatus('error', `Error — ${error.message}`, 'client');
  }
}

/**
 * Puts a new session on screen in place of the current one (which is left,
 * not cancelled); `connection` names the page's request for the frames panel.
 */
function openSession(connection) {
  current?.connection?.abort();
  framesFollower?.abort();
  framesFollower = null;
  const session = { view: new SessionView(), connection: null };
  current = session;
  ui.share.hidden = true;
  framesPanel.clear(`The frames of this page's connection (${connection}).`);
  return session;
}

/** Runs `connection.done` to its end and updates the view. */
async function watch(session) {
  try {
    await session.connection.done;
  } catch (error) {
    if (session.view.onScreen) showFailure(error);
  } finally {
    session.view.finish();
  }
}

/** The frames panel follows `sessionId` itself, in the selected format (`?format=`). */
function followFramesOf(sessionId) {
  framesFollower?.abort();
  const format = selectedFormat();
  const query = format === 'native' ? '' : `?format=${format}`;
  framesPanel.clear(`GET /v1/react/sessions/${sessionId}/events${query}`);
  framesFollower = followSession(location.origin, sessionId, { onFrame: (frame) => framesPanel.append(frame) }, {
    format,
    headers: authHeaders(),
  });
  const follower = framesFollower;
  follower.done.catch((error) => {
    if (framesFollower === follower) ui.framesSource.textContent = `Could not follow: ${error.message}`;
  });
}

async function startNewSession(query) {
  const session = openSession('POST /v1/react/sessions');
  const { view } = session;
  try {
    session.connection = await startSession(location.origin, { user_query: query }, view.handlers(), {
      headers: authHeaders(),
    });
  } catch (error) {
    if (view.onScreen) showFailure(error);
    view.finish();
    return;
  }
  if (!view.onScreen) {
    session.connection.abort(); // another session took the screen meanwhile
    return;
  }
  view.identified(session.connection.sessionId);
  await watch(session);
}

async function followExistingSession(sessionId) {
  const session = openSession(`GET /v1/react/sessions/${sessionId}/events`);
  session.connection = followSession(location.origin, sessionId, session.view.handlers(), { headers: authHeaders() });
  session.view.identified(sessionId);
  await watch(session);
}

async function stopCurrentSession() {
  const sessionId = current?.view.id;
  if (!sessionId) return;
  ui.stopButton.disabled = true;
  ui.statusText.textContent = 'Cancelling…';
  try {
    // The stream then ends with error/cancelled, which the view shows.
    await cancelSession(location.origin, sessionId, { headers: authHeaders() });
  } catch (error) {
    showFailure(error);
  }
}

function wireControls() {
  ui.queryForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const query = ui.queryInput.value.trim();
    if (query) startNewSession(query);
  });
  ui.stopButton.addEventListener('click', () => stopCurrentSession());
  for (const chip of document.querySelectorAll('[data-query]')) {
    chip.addEventListener('click', () => {
      ui.queryInput.value = chip.dataset.query;
      startNewSession(chip.dataset.query);
    });
  }
  for (const radio of document.querySelectorAll('input[name="format"]')) {
    radio.addEventListener('change', () => {
      if (current?.view.id) followFramesOf(current.view.id);
    });
  }
  ui.copyLink.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(ui.sessionLink.href);
      ui.copyLink.textContent = 'Copied';
    } catch {
      getSelection().selectAllChildren(ui.sessionLink);
      ui.copyLink.textContent = 'Selected';
    }
    setTimeout(() => (ui.copyLink.textContent = 'Copy'), 1500);
  });
  ui.tokenInput.value = localStorage.getItem(TOKEN_STORAGE_KEY) ?? '';
  ui.tokenInput.addEventListener('change', () => {
    const token = ui.tokenInput.value.trim();
    if (token) localStorage.setItem(TOKEN_STORAGE_KEY, token);
    else localStorage.removeItem(TOKEN_STORAGE_KEY);
  });
  ui.tokenClear.addEventListener('click', () => {
    ui.tokenInput.value = '';
    localStorage.removeItem(TOKEN_STORAGE_KEY);
  });
}

wireControls();
const sharedSession = new URLSearchParams(location.search).get('session');
if (sharedSession) followExistingSession(sharedSession);
