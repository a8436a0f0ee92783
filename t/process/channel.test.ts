/**
 * The IPC channel between a primary and its workers (src/core/process/channel.ts),
 * its two ends joined in memory: requests matched to answers by id, a bounded
 * answer time, late answers dropped, close() and a lost peer settling what is in
 * flight, unknown namespaces answered at once, other protocols' messages left alone.
 * The same channel between real processes is exercised by t/dataplane/workers.test.ts,
 * t/plugins/limit-count-workers.test.ts and t/plugins/prometheus.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { Channel, ChannelError, service, topic, type Peer } from '../../src/core/process/channel.js';
import { link } from './link.js';

const echo = service<{ n: number }, { twice: number }>('test:echo', 50);

describe('IPC channel', () => {
  it('answers each request with its own answer, in any order', async () => {
    const { worker, primary, primarySide } = link();
    primarySide.serve(echo, (req) => (req.n % 2 === 0 ? { twice: req.n * 2 } : Promise.resolve({ twice: req.n * 2 })));
    const answers = await Promise.all([1, 2, 3, 4].map((n) => worker.request(primary, echo, { n })));
    expect(answers).toEqual([{ twice: 2 }, { twice: 4 }, { twice: 6 }, { twice: 8 }]);
  });

  it('a peer that does not answer fails the request after the answer time', async () => {
    const { worker, primary, sent } = link({ silent: true });
    const started = Date.now();
    const err = await worker.request(primary, echo, { n: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChannelError);
    expect((err as Error).message).toBe('ipc test:echo: no answer from the primary process in 50 ms');
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    expect(sent).toHaveLength(1);
  });

  it('an answer after the timeout is dropped; the next request gets its own answer', async () => {
    const { worker, primary, primarySide } = link({ delayMs: 40 });
    const slow = service<{ n: number }, number>('test:slow', 60);
    primarySide.serve(slow, (req) => req.n);
    // 40 ms each way: the first answer arrives after 80 ms, 20 ms late.
    await expect(worker.request(primary, slow, { n: 1 })).rejects.toThrow(/no answer/);
    const next = worker.request(primary, service<{ n: number }, number>('test:slow', 500), { n: 2 });
    await new Promise((r) => setTimeout(r, 40)); // the late answer to n=1 lands meanwhile
    await expect(next).resolves.toBe(2);
  });

  it('close() fails what is in flight, and refuses new requests', async () => {
    const { worker, primary } = link({ silent: true });
    const inFlight = worker.request(primary, echo, { n: 1 });
    worker.close();
    await expect(inFlight).rejects.toThrow('ipc test:echo: closed');
    await expect(worker.request(primary, echo, { n: 2 })).rejects.toThrow('ipc test:echo: closed');
  });

  it('a request to a namespace nobody serves is refused at once, naming it', async () => {
    const { worker, primary } = link();
    const started = Date.now();
    await expect(worker.request(primary, service<null, null>('test:nobody', 5_000), null)).rejects.toThrow('ipc test:nobody: unknown namespace');
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("a handler's error is the requester's error", async () => {
    const { worker, primary, primarySide } = link();
    primarySide.serve(echo, () => {
      throw new Error('no such thing');
    });
    await expect(worker.request(primary, echo, { n: 1 })).rejects.toThrow('no such thing');
  });

  it('a send that throws (the IPC channel is gone) fails the request at once', async () => {
    const ch = new Channel();
    const gone: Peer = {
      name: 'the primary process',
      send: () => {
        throw new Error('channel closed');
      },
    };
    const started = Date.now();
    await expect(ch.request(gone, echo, { n: 1 })).rejects.toThrow('channel closed');
    expect(Date.now() - started).toBeLessThan(45);
  });

  it('requestAll leaves out a peer that goes away, and fails on one that does not answer', async () => {
    const primarySide = new Channel();
    const answering: Peer = { name: 'worker 1', send: (msg) => void queueMicrotask(() => msg.ipc === 'request' && primarySide.receive({ ipc: 'answer', ns: msg.ns, id: msg.id, body: 1 }, answering)) };
    const dying: Peer = { name: 'worker 2', send: () => void setTimeout(() => primarySide.removePeer(dying), 5) };
    primarySide.addPeer(answering);
    primarySide.addPeer(dying);
    await expect(primarySide.requestAll(service<null, number>('test:gather', 200), null)).resolves.toEqual([1]);

    const silent: Peer = { name: 'worker 3', send: () => undefined };
    primarySide.addPeer(silent);
    await expect(primarySide.requestAll(service<null, number>('test:gather', 50), null)).rejects.toThrow('ipc test:gather: no answer from worker 3 in 50 ms');
  });

  it('notices reach the listener of their topic; messages of other protocols are not taken', () => {
    const ch = new Channel();
    const from: Peer = { name: 'worker 1', send: () => undefined };
    const seen: string[] = [];
    ch.on(topic<string>('test:notes'), (msg, peer) => seen.push(`${peer.name}: ${msg}`));
    expect(ch.receive({ ipc: 'notice', ns: 'test:notes', body: 'hello' }, from)).toBe(true);
    expect(seen).toEqual(['worker 1: hello']);
    expect(ch.receive({ type: 'prom-client:getMetricsReq', requestId: 1 }, from)).toBe(false);
    expect(ch.receive({ ipc: 'bogus', ns: 'x' }, from)).toBe(false);
    expect(ch.receive(null, from)).toBe(false);
    expect(() => ch.on(topic<string>('test:notes'), () => undefined)).toThrow('ipc test:notes: already taken');
  });
});
