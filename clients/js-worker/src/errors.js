/**
 * What the kit throws. A handler needs only one of them: `SessionStopped`,
 * thrown by a publish once the session takes no more events from this run —
 * the session's log refused one (`SessionRefused`, with the log's reason) or
 * the gateway cancelled the session (`SessionCancelled`). Either way the
 * right reaction is to stop working on the job; the worker does the rest.
 */

/** What `sse_bridge_v4_append` answers `[0, reason]` with (PROTOCOL §4). */
export const REFUSAL_REASONS = Object.freeze(['unknown', 'ended', 'not_acked', 'foreign', 'busy', 'lost']);

/** Base class of every error the kit throws. */
export class SseBridgeError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}

/** The session takes no more events from this run: stop working on it. */
export class SessionStopped extends SseBridgeError {}

/** The session's log refused an event; `reason` is one of `REFUSAL_REASONS`. */
export class SessionRefused extends SessionStopped {
  /** @param {string} reason */
  constructor(reason) {
    super(`the session refused the event: ${reason}`);
    /** @type {string} */
    this.reason = reason;
  }
}

/** The gateway cancelled the session (or the worker gave the job up at shutdown). */
export class SessionCancelled extends SessionStopped {
  /** @param {string} [reason] */
  constructor(reason = 'cancelled') {
    super(`the session was cancelled (${reason})`);
    /** @type {string} */
    this.reason = reason;
  }
}

/** Redis answered something the protocol does not allow. */
export class UnexpectedReply extends SseBridgeError {}
