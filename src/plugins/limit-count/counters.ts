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

/** One take as the process holding the counters is asked for it. */
export interface TakeRequest {
  key: string;
  count: number;
  windowMs: number;
}

/** Takes from `counters` with the holder's clock. */
export function takeFrom(counters: LocalCounters): (req: TakeRequest) => Take {
  return (req) => counters.take(req.key, req.count, req.windowMs, Date.now());
}
