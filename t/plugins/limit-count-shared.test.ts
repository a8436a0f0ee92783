/**
 * limit-count's counters shared through the core's per-node state, with the
 * worker's and the primary's ends of the IPC channel joined in memory: the
 * paths a real primary cannot be made to take on demand (a primary that stops
 * answering while its worker lives, a worker closing with takes in flight).
 * The counting through real worker processes is in limit-count-workers.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { sharedStateHub } from '../../src/core/process/shared-state.js';
import type { Peer } from '../../src/core/process/channel.js';
import { Channel } from '../../src/core/process/channel.js';
import type { PluginInitContext, RequestContext } from '../../src/core/plugin/index.js';
import limitCount, { type LimitCountConf } from '../../src/plugins/limit-count.js';
import { LocalCounters, takeFrom, type Take, type TakeRequest } from '../../src/plugins/limit-count/counters.js';
import { link, type LinkOptions } from '../process/link.js';

/** A worker's counters whose "primary" answers from `counters`, after `delayMs`, or never when `silent`. */
function workerCounters(opts: LinkOptions & { counters?: LocalCounters; answerMs?: number } = {}) {
  const l = link(opts);
  sharedStateHub({ channel: l.primarySide, role: 'main', workers: 2 })
    .forPlugin('limit-count')
    .owned<TakeRequest, Take>('counters', takeFrom(opts.counters ?? new LocalCounters()), opts.answerMs ?? 1_000);
  const owned = sharedStateHub({ channel: l.worker, role: 'worker', workers: 2, primary: l.primary })
    .forPlugin('limit-count')
    .owned<TakeRequest, Take>('counters', () => {
      throw new Error('a worker of several never counts itself');
    }, opts.answerMs ?? 1_000);
  return { ...l, take: (key: string, count: number, windowMs: number) => Promise.resolve(owned.call({ key, count, windowMs })) };
}

describe('limit-count shared counters (worker side)', () => {
  it('takes are answered by the primary, each matched to its own request', async () => {
    const c = workerCounters();
    const takes = await Promise.all([c.take('k', 2, 60_000), c.take('k', 2, 60_000), c.take('k', 2, 60_000), c.take('other', 2, 60_000)]);
    expect(takes.map((t) => t.allowed)).toEqual([true, true, false, true]);
    expect(takes.map((t) => t.remaining)).toEqual([1, 0, 0, 1]);
    c.worker.close();
  });

  it('a primary that does not answer fails the take after the answer time, and forgets it', async () => {
    const c = workerCounters({ silent: true, answerMs: 50 });
    const started = Date.now();
    await expect(c.take('k', 1, 60_000)).rejects.toThrow(/no answer from the primary process in 50 ms/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    expect(c.sent).toHaveLength(1);
    c.worker.close();
  });

  it('a late answer after the timeout is ignored; close() fails what is still in flight', async () => {
    const c = workerCounters({ delayMs: 100, answerMs: 20 });
    await expect(c.take('k', 1, 60_000)).rejects.toThrow(/no answer/);
    await new Promise((r) => setTimeout(r, 220)); // the late reply arrives and must not throw or resolve anything
    const inFlight = c.take('k', 1, 60_000);
    c.worker.close();
    await expect(inFlight).rejects.toThrow(/closed/);
  });

  it('a send that throws (IPC channel gone) fails the take at once', async () => {
    const gone: Peer = {
      name: 'the primary process',
      send: () => {
        throw new Error('channel closed');
      },
    };
    const owned = sharedStateHub({ channel: new Channel(), role: 'worker', workers: 2, primary: gone })
      .forPlugin('limit-count')
      .owned<TakeRequest, Take>('counters', takeFrom(new LocalCounters()), 1_000);
    await expect(Promise.resolve(owned.call({ key: 'k', count: 1, windowMs: 60_000 }))).rejects.toThrow('channel closed');
  });

  it('the primary answers only its own namespace: another plugin cannot take from its counters', async () => {
    const c = workerCounters();
    const other = sharedStateHub({ channel: c.worker, role: 'worker', workers: 2, primary: c.primary }).forPlugin('other');
    await expect(Promise.resolve(other.owned<TakeRequest, Take>('counters', () => ({ allowed: true, remaining: 0, resetAt: 0 }), 1_000).call({ key: 'k', count: 1, windowMs: 1 }))).rejects.toThrow(
      'ipc plugin:other:counters: unknown namespace',
    );
  });

  it('with one serving process the take is a plain call, no IPC', () => {
    const ch = new Channel();
    const owned = sharedStateHub({ channel: ch, role: 'worker', workers: 1 }).forPlugin('limit-count').owned<TakeRequest, Take>('counters', takeFrom(new LocalCounters()), 1_000);
    const t = owned.call({ key: 'k', count: 2, windowMs: 60_000 });
    expect(t).not.toBeInstanceOf(Promise);
    expect((t as Take).remaining).toBe(1);
  });
});

describe('limit-count plugin with a silent primary', () => {
  /** Inits the plugin in a worker of two whose primary never answers, and runs access() once. */
  async function accessWithSilentPrimary(conf: LimitCountConf): Promise<{ result: unknown; ms: number }> {
    const l = link({ silent: true });
    const cleanup = limitCount.init!({
      shared: sharedStateHub({ channel: l.worker, role: 'worker', workers: 2, primary: l.primary }).forPlugin('limit-count'),
      workers: 2,
      process: 'worker',
    } as unknown as PluginInitContext);
    try {
      const compiled = limitCount.compile!(conf, { upstream: () => { throw new Error('limit-count builds no upstream'); } });
      // Only what access() reads before it asks for a take; the take never comes back.
      const ctx = { method: 'GET', remoteAddr: '127.0.0.1', route: { id: 'r1' }, getData: () => undefined, var: { get: () => '127.0.0.1' } } as unknown as RequestContext;
      const started = Date.now();
      const result = await limitCount.access!(compiled, ctx);
      return { result, ms: Date.now() - started };
    } finally {
      if (typeof cleanup === 'function') await cleanup();
      l.worker.close();
    }
  }

  it("answers 500 `failed to limit count` after 1 s, or lets the request through with allow_degradation", async () => {
    const [strict, degraded] = await Promise.all([
      accessWithSilentPrimary({ count: 1, time_window: 60 }),
      accessWithSilentPrimary({ count: 1, time_window: 60, allow_degradation: true }),
    ]);
    expect(strict.result).toEqual({ status: 500, body: { error_msg: 'failed to limit count' } });
    expect(strict.ms).toBeGreaterThanOrEqual(950);
    expect(strict.ms).toBeLessThan(3_000);
    expect(degraded.result).toBeUndefined();
    expect(degraded.ms).toBeGreaterThanOrEqual(950);
  });
});
