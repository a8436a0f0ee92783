/**
 * limit-count's fixed-window counters, and how a node's worker processes
 * share them. APISIX keeps them in a shared dict that every nginx worker of
 * the node sees; Node processes share no memory, so with more than one
 * worker the primary holds the counters and each worker asks it over the
 * cluster IPC channel (one round trip per counted request). With one worker
 * (or served in-process) the counting stays in the serving process, with no
 * IPC.
 */
import cluster, { type Worker } from 'node:cluster';
import { LRUCache } from 'lru-cache';

export interface Take {
  /** The request fits in the window. */
  allowed: boolean;
  /** What is left of the window after this request. */
  remaining: number;
  /** When the window ends, in ms since the epoch. */
  resetAt: number;
}

interface Window {
  remaining: number;
  resetAt: number;
}

/**
 * Counters of one process. Windows are fixed and start with a key's first
 * request, as resty.limit.count's. An evicted key only gets a fresh window,
 * so the bound trades exactness under a key flood for memory that cannot
 * grow without limit.
 */
export class LocalCounters {
  private readonly windows = new LRUCache<string, Window>({ max: 100_000, ttlAutopurge: false });

  take(key: string, count: number, windowMs: number, now: number): Take {
    let w = this.windows.get(key);
    if (w === undefined || w.resetAt <= now) {
      w = { remaining: count, resetAt: now + windowMs };
      this.windows.set(key, w, { ttl: windowMs });
    }
    if (w.remaining < 1) return { allowed: false, remaining: 0, resetAt: w.resetAt };
    w.remaining--;
    return { allowed: true, remaining: w.remaining, resetAt: w.resetAt };
  }
}

const MESSAGE = 'portico:limit-count';
/** A primary that does not answer within this is a counter failure (500, or allowed with allow_degradation). */
const ANSWER_MS = 1_000;

interface TakeRequest {
  type: typeof MESSAGE;
  id: number;
  key: string;
  count: number;
  windowMs: number;
}
type TakeReply = { type: typeof MESSAGE; id: number } & Take;

function isTakeRequest(msg: unknown): msg is TakeRequest {
  const m = msg as Partial<TakeRequest> | null;
  return typeof m === 'object' && m !== null && m.type === MESSAGE && typeof m.id === 'number' && typeof m.key === 'string' && typeof m.count === 'number' && typeof m.windowMs === 'number';
}

const primaryCounters = new LocalCounters();
let served = 0;
/** The primary's reply to a worker's message, or undefined when the message is not a take. */
export function replyTo(msg: unknown, counters: LocalCounters, now: number): TakeReply | undefined {
  if (!isTakeRequest(msg)) return undefined;
  const t = counters.take(msg.key, msg.count, msg.windowMs, now);
  return { type: MESSAGE, id: msg.id, allowed: t.allowed, remaining: t.remaining, resetAt: t.resetAt };
}

function answer(this: void, worker: Worker, msg: unknown): void {
  const reply = replyTo(msg, primaryCounters, Date.now());
  if (reply !== undefined && worker.isConnected()) worker.send(reply);
}

/** In the primary: answer the workers' takes. Counted per process, so gateways started in one process share it. */
export function serveWorkers(): () => void {
  if (served++ === 0) cluster.on('message', answer);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    if (--served === 0) cluster.off('message', answer);
  };
}

/** How a worker talks to its primary: the cluster IPC channel, or a stand-in in unit tests. */
export interface PrimaryChannel {
  send(msg: unknown): void;
  on(listener: (msg: unknown) => void): void;
  off(listener: (msg: unknown) => void): void;
}

const processChannel: PrimaryChannel = {
  send: (msg) => void process.send!(msg),
  on: (listener) => void process.on('message', listener),
  off: (listener) => void process.off('message', listener),
};

/** In a worker: takes answered by the primary. */
export class PrimaryCounters {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(t: Take): void; reject(err: Error): void; timer: NodeJS.Timeout }>();
  private readonly onMessage = (msg: unknown): void => {
    const m = msg as Partial<TakeReply> | null;
    if (typeof m !== 'object' || m === null || m.type !== MESSAGE || typeof m.id !== 'number') return;
    const p = this.pending.get(m.id);
    if (p === undefined) return;
    this.pending.delete(m.id);
    clearTimeout(p.timer);
    p.resolve({ allowed: m.allowed === true, remaining: Number(m.remaining), resetAt: Number(m.resetAt) });
  };

  constructor(
    private readonly channel: PrimaryChannel = processChannel,
    private readonly answerMs = ANSWER_MS,
  ) {
    channel.on(this.onMessage);
  }

  take(key: string, count: number, windowMs: number): Promise<Take> {
    const id = this.nextId++;
    return new Promise<Take>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`limit-count: no answer from the primary process in ${this.answerMs} ms`));
      }, this.answerMs);
      this.pending.set(id, { resolve, reject, timer });
      try {
        this.channel.send({ type: MESSAGE, id, key, count, windowMs } satisfies TakeRequest);
      } catch (err) {
        // The IPC channel is gone (the primary died): this worker is about to exit anyway.
        this.pending.delete(id);
        clearTimeout(timer);
        reject(err as Error);
      }
    });
  }

  close(): void {
    this.channel.off(this.onMessage);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error('limit-count: closed'));
    }
    this.pending.clear();
  }
}
