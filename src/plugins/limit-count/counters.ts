/**
 * limit-count's fixed-window counters. APISIX keeps them in a shared dict
 * that every nginx worker of the node sees; here they are the plugin's
 * per-node `owned` state (the core's shared state): with more than one
 * worker the primary holds them and each worker asks it over the IPC channel
 * (one round trip per counted request); with one serving process the
 * counting stays in it, with no IPC.
 */
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
 * Counters of one process. Fixed windows start with a key's first request, as
 * resty.limit.count's; sliding ones are below. An evicted key only gets a fresh window,
 * so the bound trades exactness under a key flood for memory that cannot
 * grow without limit.
 */
export class LocalCounters {
  private readonly windows = new LRUCache<string, Window>({ max: 100_000, ttlAutopurge: false });
  /** Sliding windows' counts, by key and window number. */
  private readonly slides = new LRUCache<string, number>({ max: 100_000, ttlAutopurge: false });

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

  /**
   * APISIX's sliding window (apisix/plugins/limit-count/sliding-window/):
   * windows aligned on the epoch, and a request passes while this window's
   * count plus the previous window's, weighted by how much of it still
   * overlaps the last `windowMs`, stays under `count`.
   */
  takeSliding(key: string, count: number, windowMs: number, now: number): Take {
    const id = Math.floor(now / windowMs);
    const left = windowMs - (now % windowMs);
    const cur = this.slides.get(`${key}\n${id}`) ?? 0;
    const last = Math.min(this.slides.get(`${key}\n${id - 1}`) ?? 0, count);
    const verdict = slidingVerdict(cur, last, count, windowMs, left);
    if (verdict.allowed) this.slides.set(`${key}\n${id}`, cur + 1, { ttl: windowMs * 2 });
    return { ...verdict, resetAt: now + verdict.resetMs };
  }
}

/**
 * The sliding window's decision from this window's count `cur` and the
 * previous one's `last` (capped at `count`), `left` ms before this window
 * ends. A refusal's reset is when the previous window's share will have
 * shrunk enough for one more request.
 */
export function slidingVerdict(cur: number, last: number, count: number, windowMs: number, left: number): { allowed: boolean; remaining: number; resetMs: number } {
  const lastShare = (last / windowMs) * left;
  if (cur >= count || cur + lastShare >= count) {
    const wait = cur >= count || last === 0 ? left : Math.max(0, left - (count - cur) / (last / windowMs));
    return { allowed: false, remaining: 0, resetMs: Math.ceil(wait / 10) * 10 };
  }
  return { allowed: true, remaining: Math.max(0, Math.floor(count - (cur + 1) - lastShare)), resetMs: left };
}

/** One take as the process holding the counters is asked for it. */
export interface TakeRequest {
  key: string;
  count: number;
  windowMs: number;
  /** window_type sliding. */
  sliding?: boolean;
}

/** Takes from `counters` with the holder's clock. */
export function takeFrom(counters: LocalCounters): (req: TakeRequest) => Take {
  return (req) => (req.sliding === true ? counters.takeSliding(req.key, req.count, req.windowMs, Date.now()) : counters.take(req.key, req.count, req.windowMs, Date.now()));
}
