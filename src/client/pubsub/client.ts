/**
 * A typed pub/sub client for Portico (and, for list offset and fetch, APISIX)
 * over any WebSocket implementation: `ws` in Node (node.ts), the browser's
 * own (browser.ts). Failed commands throw PubSubError; after a lost
 * connection it reconnects with backoff and resumes every subscription from
 * the offset after the last message it delivered (or, with a group, from the
 * group's committed offset), so nothing is skipped.
 */
import { decodeResponse, encodeRequest, type Message, type ProduceInput, type Request, type Response } from './protocol.js';

export type { Header, Message, ProduceInput } from './protocol.js';

/** The part of a WebSocket this client uses: the browser's and `ws`'s both fit. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason?: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}
export type WebSocketFactory = (url: string) => WebSocketLike;

export class PubSubError extends Error {
  override readonly name = 'PubSubError';
}

/** A produce where some messages failed; `results` holds every message's offset or error, in order. */
export class ProduceError extends PubSubError {
  constructor(
    message: string,
    readonly results: ReadonlyArray<{ offset: bigint; error: string }>,
  ) {
    super(message);
  }
}

export interface ClientOptions {
  /** Reconnect after a lost connection (default true); `maxDelayMs` caps the backoff (default 5000). */
  reconnect?: boolean | { maxDelayMs?: number };
  /** A command without an answer this long fails (default 30000 ms). */
  requestTimeoutMs?: number;
  /** Called with each reconnect attempt's error, and once reconnected (error undefined). */
  onReconnect?: (error: Error | undefined) => void;
}

/** Where to start reading: a named end of the partition, an offset, or the first message at or after a time. */
export type StartAt = 'earliest' | 'latest' | bigint | Date;

export interface SubscribeOptions {
  from?: 'earliest' | 'latest' | bigint;
  /** Consumer group: its committed offset wins over `from`, and ack() commits for it. */
  group?: string;
  /** Messages granted at a time (default 100): the gateway never sends more than the client has not consumed. */
  credit?: number;
  /** Bytes (key + value) granted at a time; 0 = no byte limit (default). */
  creditBytes?: number;
}

const OPEN = 1;

function startOffset(at: StartAt | undefined, fallback: bigint): bigint {
  if (at === undefined) return fallback;
  if (at === 'earliest') return -2n;
  if (at === 'latest') return -1n;
  if (at instanceof Date) return BigInt(at.getTime());
  return at;
}

interface Pending {
  /** Runs as the answer is read, before the next frame of the same read (which may be a push it announces). */
  onAnswer?: (r: Response) => void;
  resolve(r: Response): void;
  reject(e: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

export class Subscription implements AsyncIterable<Message> {
  /** The server's id of this subscription on the current connection. */
  id = 0;
  /** The offset of the next message to deliver. */
  next: bigint;
  private readonly queue: Message[] = [];
  private waiter: { resolve(m: IteratorResult<Message>): void; reject(e: Error): void } | undefined;
  private failure: Error | undefined;
  private done = false;
  /** Messages taken by the consumer since the last grant. */
  private consumed = 0;

  constructor(
    private readonly client: PubSubClient,
    readonly topic: string,
    readonly partition: number,
    readonly opts: Required<Pick<SubscribeOptions, 'credit' | 'creditBytes'>> & { group: string },
    start: bigint,
  ) {
    this.next = start;
  }

  /** @internal */
  deliver(messages: Message[]): void {
    for (const m of messages) {
      if (m.offset < this.next) continue; // a resumed subscription may overlap
      this.next = m.offset + 1n;
      const w = this.waiter;
      if (w) {
        this.waiter = undefined;
        this.taken();
        w.resolve({ value: m, done: false });
      } else this.queue.push(m);
    }
  }

  /** @internal Ends the iteration with an error (the server ended the subscription). */
  fail(e: Error): void {
    this.failure = e;
    this.done = true;
    this.client.forget(this);
    this.waiter?.reject(e);
    this.waiter = undefined;
  }

  /** @internal Credit to grant after a reconnect: the window minus what waits unconsumed. */
  get window(): number {
    return Math.max(0, this.opts.credit - this.queue.length);
  }

  /** Refills the credit once half the window was consumed, so the gateway keeps sending while we read. */
  private taken(): void {
    if (++this.consumed * 2 < this.opts.credit) return;
    const n = this.consumed;
    this.consumed = 0;
    if (this.id !== 0) this.client.grant(this, n).catch((e: Error) => this.fail(e));
  }

  /** The next message; waits for one. Rejects with PubSubError when the subscription failed. */
  nextMessage(): Promise<Message> {
    const m = this.queue.shift();
    if (m) {
      this.taken();
      return Promise.resolve(m);
    }
    if (this.failure) return Promise.reject(this.failure);
    if (this.done) return Promise.reject(new PubSubError('subscription closed'));
    return new Promise((resolve, reject) => {
      this.waiter = { resolve: (r) => (r.done ? reject(new PubSubError('subscription closed')) : resolve(r.value)), reject };
    });
  }

  [Symbol.asyncIterator](): AsyncIterator<Message> {
    return {
      next: () =>
        this.nextMessage().then(
          (value) => ({ value, done: false }),
          (e: Error) => {
            if (this.done && !this.failure) return { value: undefined, done: true };
            throw e;
          },
        ),
      return: async () => {
        await this.unsubscribe();
        return { value: undefined, done: true };
      },
    };
  }

  /** Commits every message up to and including `offset` for the subscription's group. */
  ack(offset: bigint): Promise<bigint> {
    return this.client.ackFor(this, offset);
  }

  /** Stops the subscription; resolves with the offset it would have delivered next. */
  async unsubscribe(): Promise<bigint> {
    if (this.done) return this.next;
    this.done = true;
    this.client.forget(this);
    const w = this.waiter;
    this.waiter = undefined;
    w?.resolve({ value: undefined, done: true });
    return this.client.unsubscribeFor(this);
  }
}

export class PubSubClient {
  private ws: WebSocketLike | undefined;
  private seq = 0n;
  private readonly pending = new Map<bigint, Pending>();
  private readonly subs = new Set<Subscription>();
  private readonly byId = new Map<number, Subscription>();
  private closedByUser = false;
  private connecting: Promise<void> | undefined;
  private readonly timeoutMs: number;
  private readonly maxDelayMs: number;
  private readonly reconnect: boolean;

  private constructor(
    readonly url: string,
    private readonly factory: WebSocketFactory,
    private readonly opts: ClientOptions,
  ) {
    this.timeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.reconnect = opts.reconnect !== false;
    this.maxDelayMs = typeof opts.reconnect === 'object' ? (opts.reconnect.maxDelayMs ?? 5000) : 5000;
  }

  /** Opens the connection; rejects with PubSubError when it cannot be opened. */
  static async connect(url: string, factory: WebSocketFactory, opts: ClientOptions = {}): Promise<PubSubClient> {
    const c = new PubSubClient(url, factory, opts);
    await c.open();
    return c;
  }

  private open(): Promise<void> {
    return new Promise((resolve, reject) => {
      let ws: WebSocketLike;
      try {
        ws = this.factory(this.url);
      } catch (e) {
        return reject(new PubSubError(`cannot connect to ${this.url}: ${(e as Error).message}`));
      }
      // Node's ws hands over Buffers (no copy); browsers give ArrayBuffers.
      if (ws.binaryType !== 'nodebuffer') ws.binaryType = 'arraybuffer';
      let opened = false;
      ws.onopen = () => {
        opened = true;
        this.ws = ws;
        resolve();
      };
      ws.onerror = () => {
        if (!opened) reject(new PubSubError(`cannot connect to ${this.url}`));
      };
      ws.onclose = (ev) => {
        if (!opened) return reject(new PubSubError(`cannot connect to ${this.url} (closed with ${ev.code})`));
        this.lost(ev.code);
      };
      ws.onmessage = (ev) => this.onFrame(ev.data);
    });
  }

  private onFrame(data: unknown): void {
    const frame = data instanceof ArrayBuffer ? new Uint8Array(data) : (data as Uint8Array);
    let decoded: ReturnType<typeof decodeResponse>;
    try {
      decoded = decodeResponse(frame);
    } catch {
      return; // not ours to answer; a conforming server never sends it
    }
    const { sequence, response } = decoded;
    if (response.kind === 'push') {
      const s = this.byId.get(response.subscription);
      if (!s) return;
      if (response.messages.length > 0) s.deliver(response.messages);
      if (response.error) s.fail(new PubSubError(response.error));
      return;
    }
    const p = this.pending.get(sequence);
    if (!p) return;
    this.pending.delete(sequence);
    clearTimeout(p.timer);
    p.onAnswer?.(response);
    p.resolve(response);
  }

  private lost(code: number): void {
    this.ws = undefined;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new PubSubError(`connection lost (${code})`));
    }
    this.pending.clear();
    this.byId.clear();
    if (this.closedByUser) return;
    if (!this.reconnect) {
      for (const s of [...this.subs]) s.fail(new PubSubError(`connection lost (${code})`));
      return;
    }
    this.connecting = this.reopen();
  }

  private async reopen(): Promise<void> {
    let delay = 100;
    for (;;) {
      if (this.closedByUser) return;
      await new Promise((r) => setTimeout(r, delay));
      try {
        await this.open();
        break;
      } catch (e) {
        this.opts.onReconnect?.(e as Error);
        delay = Math.min(delay * 2, this.maxDelayMs);
      }
    }
    // Resume: from the next offset we owe the consumer; with a group, the group's commit decides.
    for (const s of [...this.subs]) {
      try {
        await this.start(s, s.next, true);
      } catch (e) {
        s.fail(e as Error);
      }
    }
    this.connecting = undefined;
    this.opts.onReconnect?.(undefined);
  }

  private async request(r: Request, onAnswer?: (r: Response) => void): Promise<Response> {
    if (!this.ws && this.connecting) await this.connecting;
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) throw new PubSubError(this.closedByUser ? 'client closed' : 'not connected');
    const sequence = ++this.seq;
    const response = await new Promise<Response>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(sequence);
        reject(new PubSubError(`no answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.pending.set(sequence, { onAnswer, resolve, reject, timer });
      ws.send(encodeRequest(sequence, r));
    });
    if (response.kind === 'error') throw new PubSubError(response.message);
    return response;
  }

  private async expect<K extends Response['kind']>(r: Request, kind: K, onAnswer?: (r: Response) => void): Promise<Extract<Response, { kind: K }>> {
    const res = await this.request(r, onAnswer);
    if (res.kind !== kind) throw new PubSubError(`expected a ${kind} answer, got ${res.kind}`);
    return res as Extract<Response, { kind: K }>;
  }

  async ping(state: Uint8Array = new Uint8Array(0)): Promise<Uint8Array> {
    return (await this.expect({ cmd: 'ping', state }, 'pong')).state;
  }

  /** The offset at `at`: -1 when no message is that recent. */
  async listOffset(topic: string, partition: number, at: StartAt): Promise<bigint> {
    return (await this.expect({ cmd: 'list_offset', topic, partition, timestamp: startOffset(at, -1n) }, 'list_offset')).offset;
  }

  /** Messages at or after `offset` (never an earlier one), as many as one frame holds; possibly none. */
  async fetch(topic: string, partition: number, offset: bigint): Promise<Message[]> {
    const { messages } = await this.expect({ cmd: 'fetch', topic, partition, offset }, 'fetch');
    let i = 0;
    while (i < messages.length && messages[i]!.offset < offset) i++;
    return i === 0 ? messages : messages.slice(i);
  }

  /** Writes the messages in order; resolves with their offsets (-1 with acks "none"), throws ProduceError when any failed. */
  async produce(topic: string, partition: number, messages: ProduceInput[], opts: { acks?: 'all' | 'leader' | 'none' } = {}): Promise<bigint[]> {
    const { results } = await this.expect({ cmd: 'produce', topic, partition, acks: opts.acks ?? '', messages }, 'produce');
    const failed = results.find((r) => r.error !== '');
    if (failed) throw new ProduceError(failed.error, results);
    return results.map((r) => r.offset);
  }

  /** Subscribes; iterate the result (for await) to receive messages. */
  async subscribe(topic: string, partition: number, opts: SubscribeOptions = {}): Promise<Subscription> {
    const s = new Subscription(this, topic, partition, { credit: opts.credit ?? 100, creditBytes: opts.creditBytes ?? 0, group: opts.group ?? '' }, startOffset(opts.from, -1n));
    await this.start(s, s.next, false);
    this.subs.add(s);
    return s;
  }

  /** On a resume, messages already handed to the consumer are not delivered twice (a group may restart lower). */
  private async start(s: Subscription, from: bigint, resume: boolean): Promise<void> {
    // Registered as the answer is read: the gateway pushes right behind it, often in the same read, and a
    // push for an id not yet known would be dropped.
    await this.expect(
      { cmd: 'subscribe', topic: s.topic, partition: s.partition, offset: from, group: s.opts.group, messages: BigInt(s.window), bytes: BigInt(s.opts.creditBytes) },
      'subscribe',
      (res) => {
        if (res.kind !== 'subscribe') return;
        s.id = res.subscription;
        if (!resume || res.offset > s.next) s.next = res.offset;
        this.byId.set(s.id, s);
      },
    );
  }

  /** @internal */
  async grant(s: Subscription, messages: number): Promise<void> {
    if (!this.ws) return; // the resubscription after a reconnect grants afresh
    await this.expect({ cmd: 'credit', subscription: s.id, messages: BigInt(messages), bytes: BigInt(s.opts.creditBytes > 0 ? s.opts.creditBytes : 0) }, 'credit');
  }

  /** @internal */
  async ackFor(s: Subscription, offset: bigint): Promise<bigint> {
    return (await this.expect({ cmd: 'ack', subscription: s.id, offset }, 'ack')).committed;
  }

  /** @internal */
  async unsubscribeFor(s: Subscription): Promise<bigint> {
    const id = s.id;
    this.byId.delete(id);
    if (!this.ws) return s.next;
    return (await this.expect({ cmd: 'unsubscribe', subscription: id }, 'unsubscribe')).offset;
  }

  /** @internal */
  forget(s: Subscription): void {
    this.subs.delete(s);
    if (this.byId.get(s.id) === s) this.byId.delete(s.id);
  }

  /** Closes the connection for good; pending commands fail, subscriptions end. */
  close(): void {
    this.closedByUser = true;
    for (const s of [...this.subs]) void s.unsubscribe().catch(() => undefined);
    this.ws?.close(1000);
  }
}
