/**
 * The control channels of the jobs in flight, on one Pub/Sub connection.
 *
 * The gateway publishes `{"event_type": "cancel", ...}` on
 * `sse_control:<session id>` when a session's client is gone, the session
 * was deleted or it ended on a timeout (PROTOCOL §2, §4). A worker
 * subscribes *before* it sends `worker_ack`, so a cancel cannot slip
 * through between the two: `watch` resolves once Redis confirmed the
 * subscription. ioredis re-subscribes after a dropped connection; a cancel
 * published meanwhile is lost, and the session's log then stops the handler
 * at its next publish instead.
 */
import { controlChannel } from './publish.js';

export class ControlChannels {
  /** @param {import('ioredis').Redis} subscriber a connection of its own (subscriber mode) */
  constructor(subscriber) {
    this.subscriber = subscriber;
    /** @type {Map<string, (reason: string) => void>} */
    this.watches = new Map();
    subscriber.on('message', (channel, message) => {
      const onCancel = this.watches.get(channel);
      if (!onCancel) return;
      let event;
      try {
        event = JSON.parse(message);
      } catch {
        return;
      }
      if (event && event.event_type === 'cancel') onCancel(String(event.payload?.reason ?? 'cancelled'));
    });
  }

  /**
   * Calls `onCancel` when the session's `cancel` arrives; resolves once the
   * subscription is confirmed (rejects after `timeoutMs`).
   * @param {string} sessionId
   * @param {(reason: string) => void} onCancel
   * @param {number} timeoutMs
   */
  async watch(sessionId, onCancel, timeoutMs) {
    const channel = controlChannel(sessionId);
    this.watches.set(channel, onCancel);
    /** @type {NodeJS.Timeout | undefined} */
    let timer;
    try {
      await Promise.race([
        this.subscriber.subscribe(channel),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no subscription to ${channel} within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (error) {
      await this.unwatch(sessionId);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** @param {string} sessionId stops watching the session's channel */
  async unwatch(sessionId) {
    const channel = controlChannel(sessionId);
    if (!this.watches.delete(channel)) return;
    try {
      await this.subscriber.unsubscribe(channel);
    } catch {
      // The connection is gone: nothing to unsubscribe from.
    }
  }
}
