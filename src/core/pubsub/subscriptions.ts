/**
 * Subscriptions with credit-based flow control, for any backend: a backend
 * says how to find a start offset, how to wait for records and (optionally)
 * how to keep a group's offsets; this module answers cmd_subscribe,
 * cmd_credit, cmd_unsubscribe and cmd_ack and pushes records.
 *
 * Flow control: a subscription never pushes beyond the credit the client
 * granted (messages, and key+value bytes when a byte credit is set), each
 * push fits one frame, and a push waits while the socket's send buffer is
 * above the session's high-water mark. So a session holds at most one
 * frame of records per subscription plus that buffer, whatever the client
 * does (t/pubsub/subscribe.test.ts measures it).
 */
import type { KafkaMessage, PubSubResponseBody } from './codec.js';
import type { PubSubSession } from './session.js';
import { recordWireSize } from './wire.js';

export interface PollLimits {
  /** At most this many records. */
  readonly maxMessages: number;
  /** Stop adding records past this many key+value bytes (at least one record is returned anyway). */
  readonly maxBytes: number;
  /** Wait this long for a first record; return [] after it. */
  readonly maxWaitMs: number;
  /** Aborted when the subscription ends; the poll should give up soon after. */
  readonly signal: AbortSignal;
}

/** The backend side of subscriptions. Errors thrown end the subscription with their message. */
export interface SubscriptionSource {
  /** The offset to start from: `offset` itself when >= 0, -1 = the next one to be written, -2 = the earliest kept. */
  resolveOffset(topic: string, partition: number, offset: bigint): Promise<bigint>;
  /** Records at or after `offset`, in order, never an older one. */
  poll(topic: string, partition: number, offset: bigint, limits: PollLimits): Promise<readonly KafkaMessage[]>;
  /** The group's committed offset (the next to deliver), or undefined when it has none. Absent = groups unsupported. */
  committed?(group: string, topic: string, partition: number): Promise<bigint | undefined>;
  /** Commits `offset` (the next to deliver) for the group. */
  commit?(group: string, topic: string, partition: number, offset: bigint): Promise<void>;
}

export interface SubscriptionOptions {
  /** Longest single wait inside poll(); the loop polls again after it. Default 1000 ms. */
  maxWaitMs?: number;
  /** Subscriptions one session may hold at once. Default 16. */
  maxSubscriptions?: number;
  /** Records asked for per poll at most, whatever the credit. Default 5000. */
  maxBatch?: number;
}

const NO_BYTE_LIMIT = Number.MAX_SAFE_INTEGER;

function clampCredit(v: bigint): number {
  return v > BigInt(NO_BYTE_LIMIT) ? NO_BYTE_LIMIT : v < 0n ? 0 : Number(v);
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

class Subscription {
  readonly abort = new AbortController();
  /** The next offset to push. */
  next: bigint;
  /** The highest offset pushed so far, -1n before the first push. */
  lastPushed = -1n;
  messages: number;
  /** Byte credit left; NO_BYTE_LIMIT when the client set none. */
  bytes: number;
  private wake: (() => void) | undefined;

  constructor(
    readonly id: number,
    readonly topic: string,
    readonly partition: number,
    readonly group: string,
    start: bigint,
    messages: bigint,
    bytes: bigint,
  ) {
    this.next = start;
    this.messages = clampCredit(messages);
    this.bytes = bytes === 0n ? NO_BYTE_LIMIT : clampCredit(bytes);
  }

  grant(messages: bigint, bytes: bigint): void {
    this.messages = Math.min(NO_BYTE_LIMIT, this.messages + clampCredit(messages));
    if (this.bytes !== NO_BYTE_LIMIT) this.bytes = Math.min(NO_BYTE_LIMIT - 1, this.bytes + clampCredit(bytes));
    this.wakeUp();
  }

  wakeUp(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Resolves on the next grant or when the subscription ends. */
  waitForCredit(): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      if (this.abort.signal.aborted) resolve();
    });
  }
}

/**
 * Registers the subscription commands on `session`, served from `source`.
 * A backend calls this once per session, next to its own command handlers.
 */
export function serveSubscriptions(session: PubSubSession, source: SubscriptionSource, opts: SubscriptionOptions = {}): void {
  const maxWaitMs = opts.maxWaitMs ?? 1000;
  const maxSubs = opts.maxSubscriptions ?? 16;
  const maxBatch = opts.maxBatch ?? 5000;
  const subs = new Map<number, Subscription>();
  let lastId = 0;

  session.signal.addEventListener('abort', () => {
    for (const s of subs.values()) {
      s.abort.abort();
      s.wakeUp();
    }
    subs.clear();
  });

  const error = (msg: string): PubSubResponseBody => ({ error_resp: { code: 0, message: msg } });

  const find = (id: number): Subscription => {
    const s = subs.get(id);
    if (!s) throw new Error(`no subscription ${id}`);
    return s;
  };

  async function run(s: Subscription): Promise<void> {
    const signal = s.abort.signal;
    try {
      while (!signal.aborted) {
        if (s.messages <= 0 || s.bytes <= 0) {
          await s.waitForCredit();
          continue;
        }
        const records = await source.poll(s.topic, s.partition, s.next, {
          maxMessages: Math.min(s.messages, maxBatch),
          maxBytes: Math.min(s.bytes, session.maxBytes),
          maxWaitMs,
          signal,
        });
        if (signal.aborted) return;
        if (records.length === 0) continue;
        // Cut to the credit and to one frame; the poll may return more than asked.
        let room = session.maxBytes - 12; // the subscription id's field
        let n = 0;
        let bytes = 0;
        for (const r of records) {
          if (r.offset < s.next) continue; // never below what the client is owed
          const size = (r.key?.length ?? 0) + (r.value?.length ?? 0);
          const wire = recordWireSize(r);
          if (n >= s.messages || bytes + size > s.bytes || wire > room) break;
          room -= wire;
          bytes += size;
          n++;
        }
        const first = records.findIndex((r) => r.offset >= s.next);
        if (n === 0) {
          const r = records[first];
          if (!r) continue;
          if (recordWireSize(r) > session.maxBytes - 12) {
            throw new Error(`MESSAGE_TOO_LARGE (offset ${r.offset} does not fit the frame limit)`);
          }
          // The next record is bigger than the byte credit left: wait for more credit.
          await s.waitForCredit();
          continue;
        }
        const batch = first === 0 && n === records.length ? (records as KafkaMessage[]) : records.slice(first, first + n);
        s.messages -= n;
        if (s.bytes !== NO_BYTE_LIMIT) s.bytes -= bytes;
        s.lastPushed = batch[batch.length - 1]!.offset;
        s.next = s.lastPushed + 1n;
        await session.push({ subscription: s.id, messages: batch });
      }
    } catch (e) {
      if (signal.aborted) return;
      subs.delete(s.id);
      s.abort.abort();
      await session.push({ subscription: s.id, messages: [], error: `failed to read, topic: ${s.topic}, partition: ${s.partition}, err: ${message(e)}` });
    }
  }

  session.on('cmd_subscribe', async (p, ctx) => {
    const { topic, partition, group } = p;
    if (subs.size >= maxSubs) return error(`too many subscriptions: at most ${maxSubs} per connection`);
    if (partition < 0) return error(`failed to subscribe, topic: ${topic}, partition: ${partition}, err: partition must not be negative`);
    if (p.offset < -2n) return error(`failed to subscribe, topic: ${topic}, partition: ${partition}, err: offset must be -2 (earliest), -1 (latest) or >= 0`);
    if (p.credit_messages < 0n || p.credit_bytes < 0n) return error('failed to subscribe: credit must not be negative');
    let start: bigint | undefined;
    try {
      if (group !== '') {
        if (!source.committed || !source.commit) return error(`failed to subscribe, topic: ${topic}, partition: ${partition}, err: consumer groups are not supported here`);
        start = await source.committed(group, topic, partition);
      }
      start ??= await source.resolveOffset(topic, partition, p.offset);
    } catch (e) {
      return error(`failed to subscribe, topic: ${topic}, partition: ${partition}, err: ${message(e)}`);
    }
    if (session.closed) return error('session closed');
    const s = new Subscription(++lastId, topic, partition, group, start, p.credit_messages, p.credit_bytes);
    subs.set(s.id, s);
    // Pushes start once subscribe_resp is on its way, so the client knows the id first.
    ctx.afterAnswer(() => void run(s));
    return { subscribe_resp: { subscription: s.id, offset: start } };
  });

  session.on('cmd_credit', ({ subscription, messages, bytes }) => {
    if (messages < 0n || bytes < 0n) return error('credit must not be negative');
    const s = find(subscription);
    s.grant(messages, bytes);
    return { credit_resp: { messages: BigInt(s.messages), bytes: s.bytes === NO_BYTE_LIMIT ? 0n : BigInt(s.bytes) } };
  });

  session.on('cmd_unsubscribe', ({ subscription }) => {
    const s = find(subscription);
    subs.delete(subscription);
    s.abort.abort();
    s.wakeUp();
    return { unsubscribe_resp: { offset: s.next } };
  });

  session.on('cmd_ack', async ({ subscription, offset }) => {
    const s = find(subscription);
    if (s.group === '') return error(`subscription ${subscription} has no group: nothing to commit`);
    if (offset > s.lastPushed) return error(`cannot ack offset ${offset}: subscription ${subscription} delivered up to ${s.lastPushed}`);
    try {
      await source.commit!(s.group, s.topic, s.partition, offset + 1n);
    } catch (e) {
      return error(`failed to commit, group: ${s.group}, topic: ${s.topic}, partition: ${s.partition}, err: ${message(e)}`);
    }
    return { ack_resp: { committed: offset + 1n } };
  });
}
