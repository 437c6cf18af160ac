/**
 * The playground page: asks the gateway's demo agent a question and shows
 * the session as it streams — reasoning piece by piece, each tool call as a
 * collapsible step, the answer, a status line, timings and the raw frames
 * (native, AG-UI or AI SDK). `/?session=<id>` follows an existing session,
 * so the page's address after a start is a shareable link. Everything goes
 * through `/assets/sse-bridge.js` (resume, cancel, parsing); this module is
 * only the view.
 *
 * Human in the loop (PROTOCOL §8): every question belongs to a conversation
 * (a thread: its id in `?thread=` and in sessionStorage). A run that ends
 * with an interrupt shows an approval card (the tool, the message, Approve /
 * Deny with an optional reason), or runs a client tool here (`browser_time`:
 * this browser's local time); the answers continue the thread with a resume
 * (`POST /v1/react/sessions {thread_id, resume}`), in the same transcript. A
 * reload asks `GET /v1/threads/{id}` and replays the thread's last run, so a
 * pending approval is shown again.
 *
 * The richer events (PROTOCOL §9, the demo's "research"): each step as a
 * marker in the transcript, a tool input that streams into its step before
 * the call starts, the agent's state on one line, sources as links and the
 * token usage under the answer.
 */
import { SessionError, cancelSession, followSession, getThread, startSession } from '/assets/sse-bridge.js';

const TOKEN_STORAGE_KEY = 'sse-bridge-playground.token';
const THREAD_STORAGE_KEY = 'sse-bridge-playground.thread';
/** Tools the agent may ask this page to run (`"executor": "client"`): name → output. */
const CLIENT_TOOLS = {
  browser_time: () => new Date().toLocaleTimeString(),
};
const KNOWN_EVENT_TYPES = new Set([
  'worker_ack',
  'AgentThoughtStream',
  'AgentToolCallStart',
  'AgentToolCallEnd',
  'FinalAnswerStream',
  'FinalAnswerStreamEnd',
  'error',
  'interrupt',
  // PROTOCOL §9, shown by their own handlers (File and Data as other events).
  'AgentStepStart',
  'AgentStepEnd',
  'AgentToolCallInputStream',
  'StateSnapshot',
  'StateDelta',
  'Source',
  'Usage',
]);
const STATUS_TEXT = {
  idle: 'Ready',
  connecting: 'Connecting…',
  acknowledged: 'Acknowledged — a worker took the job',
  streaming: 'Streaming…',
  reconnecting: 'Connection lost — resuming…',
  done: 'Done',
  interrupted: 'Paused — the agent is waiting for you',
  resuming: 'Continuing the conversation…',
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
  sources: element('sources'),
  sourceList: element('source-list'),
  usage: element('usage'),
  rawFrames: element('raw-frames'),
  frameCount: element('frame-count'),
  framesSource: element('frames-source'),
  tokenInput: element('token-input'),
  tokenClear: element('token-clear'),
  toolStepTemplate: element('tool-step-template'),
  approvals: element('approvals'),
  approvalTemplate: element('approval-template'),
  threadId: element('thread-id'),
  newConversation: element('new-conversation'),
};

/** The conversation's thread id (PROTOCOL §8), kept in the address and in sessionStorage. */
const conversation = {
  id: null,
  /**
   * The thread of the address, else (unless the address is a shared
   * `?session=` link) of this tab's storage; none: a new conversation.
   */
  restore() {
    const address = new URLSearchParams(location.search);
    const id = address.get('thread') ?? (address.has('session') ? null : sessionStorage.getItem(THREAD_STORAGE_KEY));
    if (id) this.set(id);
  },
  /** The thread id, made (and remembered) on first use. */
  ensure() {
    if (!this.id) this.set(`pg-${crypto.randomUUID()}`);
    return this.id;
  },
  set(id) {
    this.id = id || null;
    if (this.id) sessionStorage.setItem(THREAD_STORAGE_KEY, this.id);
    else sessionStorage.removeItem(THREAD_STORAGE_KEY);
    ui.threadId.textContent = this.id ?? 'new';
    const url = new URL(location.href);
    if (this.id) url.searchParams.set('thread', this.id);
    else url.searchParams.delete('thread');
    history.replaceState(null, '', url);
  },
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
  /** Step markers not finished yet, by name. */
  #stepMarkers = new Map();
  /** The agent's state line (PROTOCOL §9), once the agent sent a state. */
  #stateLine = null;

  /**
   * A view of a new session; `continues` (the view of the interrupted run
   * it resumes) keeps the transcript and its open tool steps.
   */
  constructor({ continues = null } = {}) {
    hideApprovals();
    if (continues) {
      this.#openSteps = continues.#openSteps;
    } else {
      ui.transcript.replaceChildren(ui.transcriptPlaceholder);
      ui.transcriptPlaceholder.hidden = false;
    }
    ui.answer.textContent = '';
    ui.answer.classList.remove('live');
    ui.sourceList.replaceChildren();
    ui.sources.hidden = true;
    ui.usage.textContent = '';
    ui.usage.hidden = true;
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
      onInterrupt: (interrupts) => this.#onInterrupt(interrupts),
      onStepStart: ({ name }) => this.#onStepStart(name),
      onStepEnd: ({ name }) => this.#onStepEnd(name),
      onToolInput: (piece) => this.#onToolInput(piece),
      onState: (state) => this.#onState(state),
      onSource: (source) => this.#onSource(source),
      onUsage: (usage) => this.#onUsage(usage),
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

  #onToolStart({ tool_name, tool_input, tool_call_id, executor }) {
    this.#endThought();
    // A call whose input streamed already has its step.
    const streamed = this.stepOf(tool_call_id);
    const step = streamed ?? this.#newToolStep(tool_name, tool_call_id);
    if (executor) step.dataset.executor = executor;
    step.dataset.state = 'running';
    step.querySelector('.tool-state').textContent = 'running…';
    step.querySelector('.tool-input').textContent = displayValue(tool_input ?? {});
  }

  /** A piece of a tool call's input, before the call starts: its step shows the input growing. */
  #onToolInput({ tool_call_id, tool_name, delta }) {
    this.#endThought();
    let step = this.stepOf(tool_call_id);
    if (!step) {
      step = this.#newToolStep(tool_name, tool_call_id);
      step.dataset.state = 'streaming';
      step.querySelector('.tool-state').textContent = 'input streaming…';
    }
    step.querySelector('.tool-input').append(delta);
  }

  #newToolStep(toolName, toolCallId) {
    const step = ui.toolStepTemplate.content.firstElementChild.cloneNode(true);
    step.dataset.toolName = toolName;
    if (toolCallId) step.dataset.toolCallId = toolCallId;
    step.querySelector('.tool-name').textContent = toolName;
    this.#openSteps.push(step);
    this.#appendToTranscript(step);
    return step;
  }

  #onStepStart(name) {
    this.#endThought();
    const marker = document.createElement('p');
    marker.className = 'step-marker';
    marker.dataset.testid = 'step';
    marker.dataset.step = name;
    marker.dataset.state = 'running';
    marker.textContent = name;
    this.#stepMarkers.set(name, marker);
    this.#appendToTranscript(marker);
  }

  #onStepEnd(name) {
    const marker = this.#stepMarkers.get(name);
    if (!marker) return;
    this.#stepMarkers.delete(name);
    marker.dataset.state = 'done';
  }

  /** The agent's state, on one line that each snapshot or patch updates. */
  #onState(state) {
    if (!this.#stateLine) {
      this.#endThought();
      this.#stateLine = document.createElement('p');
      this.#stateLine.className = 'agent-state';
      this.#stateLine.dataset.testid = 'agent-state';
      this.#appendToTranscript(this.#stateLine);
    }
    const code = document.createElement('code');
    code.textContent = JSON.stringify(state);
    this.#stateLine.replaceChildren('state ', code);
  }

  #onSource({ id, url, title }) {
    const item = document.createElement('li');
    const link = document.createElement('a');
    link.dataset.testid = 'source';
    if (id) link.dataset.sourceId = id;
    link.textContent = title || url;
    link.title = url;
    // Only web links are clickable (a worker's source is not trusted).
    if (/^https?:\/\//i.test(url ?? '')) {
      link.href = url;
      link.target = '_blank';
      link.rel = 'noopener noreferrer';
    }
    item.append(link);
    ui.sourceList.append(item);
    ui.sources.hidden = false;
  }

  #onUsage({ input_tokens, output_tokens, reasoning_tokens, model }) {
    const parts = [`${input_tokens ?? 0} in`, `${output_tokens ?? 0} out`];
    if (reasoning_tokens) parts.push(`${reasoning_tokens} reasoning`);
    ui.usage.textContent = `Tokens: ${parts.join(' · ')}${model ? ` (${model})` : ''}`;
    ui.usage.dataset.inputTokens = String(input_tokens ?? 0);
    ui.usage.dataset.outputTokens = String(output_tokens ?? 0);
    ui.usage.hidden = false;
  }

  #onToolEnd({ tool_name, output, tool_call_id, error, denied }) {
    // By its call id when the worker sent one (the call may have started in
    // the run this one resumed), else the oldest open call of that tool.
    const index = this.#openSteps.findIndex((step) =>
      tool_call_id ? step.dataset.toolCallId === tool_call_id : step.dataset.toolName === tool_name,
    );
    if (index === -1) return; // a result without its call: nothing to attach it to
    const [step] = this.#openSteps.splice(index, 1);
    const state = denied ? 'denied' : error !== undefined && output === undefined ? 'error' : 'done';
    endStep(step, state, state === 'done' ? output : error);
  }

  /** The run paused: each interrupt is answered here (a client tool) or by the user (a card). */
  #onInterrupt(interrupts) {
    this.#endThought();
    showApprovals(this, interrupts);
  }

  /** The open step of tool call `id`, if this view has one. */
  stepOf(id) {
    return id ? this.#openSteps.find((step) => step.dataset.toolCallId === id) ?? null : null;
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

/** Marks a tool step ended: `state` (done, denied, error, waiting) and what it showed. */
function endStep(step, state, shown) {
  step.dataset.state = state;
  step.querySelector('.tool-state').textContent = state;
  if (shown !== undefined) step.querySelector('.tool-output').textContent = displayValue(shown);
}

/**
 * The interrupts the conversation waits on: client tools are run at once,
 * the others get a card; once every one is answered, the thread continues
 * with a resume in the same view.
 */
function showApprovals(view, interrupts) {
  hideApprovals();
  // A shared link to another conversation's run: shown, not answerable here.
  const answerable = conversation.id !== null;
  const answers = new Map();
  const answer = (interrupt, status, payload) => {
    answers.set(interrupt.id, { interrupt_id: interrupt.id, status, payload });
    if (answers.size === interrupts.length) {
      hideApprovals();
      continueConversation(view, [...answers.values()]);
    }
  };
  for (const interrupt of interrupts) {
    const step = view.stepOf(interrupt.tool_call_id);
    const toolName = step?.dataset.toolName ?? interrupt.metadata?.tool_name;
    // A client tool: the replayed or live call says so; with no call to
    // look at (a reload whose replay is gone), a tool this page knows.
    const runsHere = step ? step.dataset.executor === 'client' : Object.hasOwn(CLIENT_TOOLS, toolName ?? '');
    if (runsHere && answerable) {
      const run = CLIENT_TOOLS[toolName];
      if (step) endStep(step, 'waiting', run ? undefined : `this page has no tool ${toolName}`);
      if (run) answer(interrupt, 'resolved', run());
      else answer(interrupt, 'cancelled', null);
      continue;
    }
    if (step) endStep(step, 'waiting');
    const card = ui.approvalTemplate.content.firstElementChild.cloneNode(true);
    card.dataset.interruptId = interrupt.id;
    card.querySelector('.approval-tool').textContent = toolName ?? interrupt.reason;
    card.querySelector('.approval-message').textContent = interrupt.message ?? `The agent asks to continue (${interrupt.reason}).`;
    if (!answerable) {
      for (const control of card.querySelectorAll('button, input')) control.disabled = true;
      card.querySelector('.approval-message').append(' (Answer it in the conversation that asked.)');
    }
    card.addEventListener('submit', (event) => {
      event.preventDefault();
      const approved = event.submitter?.value !== 'deny';
      const reason = card.querySelector('.approval-reason').value.trim();
      for (const button of card.querySelectorAll('button')) button.disabled = true;
      card.dataset.answered = approved ? 'approved' : 'denied';
      answer(interrupt, 'resolved', reason ? { approved, reason } : { approved });
    });
    ui.approvals.append(card);
    ui.approvals.hidden = false;
  }
}

function hideApprovals() {
  ui.approvals.replaceChildren();
  ui.approvals.hidden = true;
}

/** Shows the session's shareable address and puts it in the address bar. */
function showShareLink(sessionId) {
  const url = new URL(location.href);
  url.search = new URLSearchParams(conversation.id ? { thread: conversation.id, session: sessionId } : { session: sessionId }).toString();
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
function openSession(connection, continues = null) {
  current?.connection?.abort();
  framesFollower?.abort();
  framesFollower = null;
  const session = { view: new SessionView({ continues }), connection: null };
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
  await runSession({ user_query: query, thread_id: conversation.ensure() });
}

/** Continues the conversation: the answers to the interrupts `view` showed, in the same transcript. */
async function continueConversation(view, resume) {
  setStatus('resuming');
  await runSession({ thread_id: conversation.ensure(), resume }, view);
}

/** Starts a session with `body` (continuing `continues`' view for a resume) and shows it to its end. */
async function runSession(body, continues = null) {
  const session = openSession('POST /v1/react/sessions', continues);
  const { view } = session;
  try {
    session.connection = await startSession(location.origin, body, view.handlers(), {
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
  return session.view;
}

/**
 * A reload: what the conversation's thread stands at (`GET /v1/threads/{id}`).
 * Its last run is replayed (a run that paused ends with its interrupt, which
 * shows the card again); the thread's open interrupts are shown even when
 * that replay is gone. An unknown thread starts a new conversation.
 */
async function restoreConversation(sharedSession) {
  let thread;
  try {
    thread = await getThread(location.origin, conversation.id, { headers: authHeaders() });
  } catch (error) {
    showFailure(error);
    return;
  }
  if (!thread) {
    conversation.set(null);
    if (sharedSession) await followExistingSession(sharedSession);
    return;
  }
  const last = thread.runs.at(-1);
  if (!last) return;
  const view = await followExistingSession(last.session_id);
  if (thread.interrupts.length > 0 && view.onScreen && ui.approvals.hidden) {
    setStatus('interrupted');
    showApprovals(view, thread.interrupts);
  }
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
  ui.newConversation.addEventListener('click', () => {
    current?.connection?.abort();
    current = null;
    conversation.set(null);
    hideApprovals();
    new SessionView().finish();
    ui.share.hidden = true;
    setStatus('idle');
    const url = new URL(location.href);
    url.searchParams.delete('session');
    history.replaceState(null, '', url);
  });
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
conversation.restore();
if (conversation.id) restoreConversation(sharedSession);
else if (sharedSession) followExistingSession(sharedSession);
