/**
 * limit-count's worker side of the shared counters, against a stand-in IPC
 * channel: the paths a real primary cannot be made to take on demand (a
 * primary that stops answering while its worker lives, a worker closing
 * with takes in flight). The counting through real worker processes is in
 * limit-count-workers.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { LocalCounters, PrimaryCounters, replyTo, type PrimaryChannel } from '../../src/plugins/limit-count/counters.js';

/** A channel whose "primary" answers with `counters`, after `delayMs`, or never when `silent`. */
function channel(opts: { counters?: LocalCounters; silent?: boolean; delayMs?: number } = {}): PrimaryChannel & { sent: unknown[] } {
  const listeners = new Set<(msg: unknown) => void>();
  const counters = opts.counters ?? new LocalCounters();
  const sent: unknown[] = [];
  return {
    sent,
    send(msg) {
      sent.push(msg);
      if (opts.silent) return;
      const reply = replyTo(msg, counters, Date.now());
      setTimeout(() => {
        for (const l of listeners) l(reply);
      }, opts.delayMs ?? 0);
    },
    on: (l) => void listeners.add(l),
    off: (l) => void listeners.delete(l),
  };
}

describe('limit-count shared counters (worker side)', () => {
  it('takes are answered by the primary, each matched to its own request', async () => {
    const c = new PrimaryCounters(channel());
    const takes = await Promise.all([c.take('k', 2, 60_000), c.take('k', 2, 60_000), c.take('k', 2, 60_000), c.take('other', 2, 60_000)]);
    expect(takes.map((t) => t.allowed)).toEqual([true, true, false, true]);
    expect(takes.map((t) => t.remaining)).toEqual([1, 0, 0, 1]);
    c.close();
  });

  it('a primary that does not answer fails the take after the answer time, and forgets it', async () => {
    const ch = channel({ silent: true });
    const c = new PrimaryCounters(ch, 50);
    const started = Date.now();
    await expect(c.take('k', 1, 60_000)).rejects.toThrow(/no answer from the primary process in 50 ms/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    expect(ch.sent).toHaveLength(1);
    c.close();
  });

  it('a late answer after the timeout is ignored; close() fails what is still in flight', async () => {
    const c = new PrimaryCounters(channel({ delayMs: 100 }), 20);
    await expect(c.take('k', 1, 60_000)).rejects.toThrow(/no answer/);
    await new Promise((r) => setTimeout(r, 120)); // the late reply arrives and must not throw or resolve anything
    const inFlight = c.take('k', 1, 60_000);
    c.close();
    await expect(inFlight).rejects.toThrow(/closed/);
  });

  it('a send that throws (IPC channel gone) fails the take at once', async () => {
    const c = new PrimaryCounters({
      send: () => {
        throw new Error('channel closed');
      },
      on: () => undefined,
      off: () => undefined,
    });
    await expect(c.take('k', 1, 60_000)).rejects.toThrow('channel closed');
    c.close();
  });

  it('the primary ignores messages that are not takes', () => {
    expect(replyTo({ type: 'events' }, new LocalCounters(), Date.now())).toBeUndefined();
    expect(replyTo({ type: 'portico:limit-count', id: 1, key: 'k' }, new LocalCounters(), Date.now())).toBeUndefined();
  });
});
