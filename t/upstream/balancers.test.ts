import { afterEach, describe, expect, it } from 'vitest';
import { createUpstreamRuntime, type UpstreamRuntime } from '../../src/core/upstream/index.js';
import type { UpstreamConf } from '../../src/core/model.js';
import { count, fakeCtx, startServer, type TestServer } from './support.js';

const runtimes: UpstreamRuntime[] = [];
const servers: TestServer[] = [];
function rt(conf: UpstreamConf, key = `/apisix/upstreams/${runtimes.length}`): UpstreamRuntime {
  const r = createUpstreamRuntime(conf, key);
  runtimes.push(r);
  return r;
}
afterEach(async () => {
  await Promise.all(runtimes.splice(0).map((r) => r.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** Picks n times, releasing each pick at once; returns the node keys in order. */
function picks(r: UpstreamRuntime, n: number, ctx = fakeCtx()): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const t = r.pick(ctx);
    out.push(t ? t.key : 'none');
    if (t) r.release(t);
  }
  return out;
}

describe('roundrobin', () => {
  it("follows nginx's smooth weighted order", () => {
    const r = rt({ type: 'roundrobin', nodes: { 'a:1': 5, 'b:1': 1, 'c:1': 1 } });
    expect(picks(r, 14)).toEqual(['a:1', 'a:1', 'b:1', 'a:1', 'c:1', 'a:1', 'a:1', 'a:1', 'a:1', 'b:1', 'a:1', 'c:1', 'a:1', 'a:1']);
  });

  it('spreads real requests by weight and never sends to weight 0', async () => {
    const [a, b, c, z] = await Promise.all([startServer('a'), startServer('b'), startServer('c'), startServer('z')]);
    servers.push(a!, b!, c!, z!);
    const r = rt({
      nodes: [
        { host: '127.0.0.1', port: a!.port, weight: 3 },
        { host: '127.0.0.1', port: b!.port, weight: 2 },
        { host: '127.0.0.1', port: c!.port, weight: 1 },
        { host: '127.0.0.1', port: z!.port, weight: 0 },
      ],
    });
    for (let i = 0; i < 60; i++) {
      const t = r.pick(fakeCtx())!;
      const res = await t.pool.request({ path: '/', method: 'GET' });
      await res.body.text();
      r.report(t, { status: res.statusCode });
      r.release(t);
    }
    expect([a!.requests, b!.requests, c!.requests, z!.requests]).toEqual([30, 20, 10, 0]);
  });

  it('skips excluded nodes for retries and returns undefined when all were tried', () => {
    const r = rt({ nodes: { 'a:1': 1, 'b:1': 1 } });
    const first = r.pick(fakeCtx())!;
    const second = r.pick(fakeCtx(), new Set([first.key]))!;
    expect(second.key).not.toBe(first.key);
    expect(r.pick(fakeCtx(), new Set([first.key, second.key]))).toBeUndefined();
  });

  it('returns undefined for an empty node list or only weight 0', () => {
    expect(rt({ nodes: {} }).pick(fakeCtx())).toBeUndefined();
    expect(rt({ nodes: [] }).pick(fakeCtx())).toBeUndefined();
    expect(rt({ nodes: { 'a:1': 0 } }).pick(fakeCtx())).toBeUndefined();
  });

  it('unknown types (none, unknown) balance as roundrobin', () => {
    for (const type of ['none', 'unknown']) {
      const r = rt({ type, nodes: { 'a:1': 1, 'b:1': 1 } });
      expect(picks(r, 4)).toEqual(['a:1', 'b:1', 'a:1', 'b:1']);
    }
  });
});

describe('priority groups', () => {
  it('uses the highest priority group and falls to the next only when it has nothing usable', () => {
    const r = rt({
      nodes: [
        { host: 'low', port: 1, weight: 1, priority: -1 },
        { host: 'high1', port: 1, weight: 1, priority: 10 },
        { host: 'high2', port: 1, weight: 1, priority: 10 },
        { host: 'mid', port: 1, weight: 1 },
      ],
    });
    expect(new Set(picks(r, 20))).toEqual(new Set(['high1:1', 'high2:1']));
    expect(r.pick(fakeCtx(), new Set(['high1:1', 'high2:1']))!.key).toBe('mid:1');
    expect(r.pick(fakeCtx(), new Set(['high1:1', 'high2:1', 'mid:1']))!.key).toBe('low:1');
    expect(r.pick(fakeCtx(), new Set(['high1:1', 'high2:1', 'mid:1', 'low:1']))).toBeUndefined();
  });
});

describe('chash', () => {
  const nodes = (n: number): Record<string, number> =>
    Object.fromEntries(Array.from({ length: n }, (_, i) => [`10.0.0.${i + 1}:80`, 1]));

  it('maps the same key to the same node, and adding a node moves about 1/N of the keys', () => {
    const before = rt({ type: 'chash', hash_on: 'vars', key: 'arg_id', nodes: nodes(4) });
    const after = rt({ type: 'chash', hash_on: 'vars', key: 'arg_id', nodes: nodes(5) });
    const keys = Array.from({ length: 5000 }, (_, i) => `user-${i}`);
    let moved = 0;
    const spread = new Map<string, number>();
    for (const id of keys) {
      const ctx = fakeCtx({ arg_id: id });
      const a = before.pick(ctx)!;
      before.release(a);
      expect(before.pick(ctx)!.key).toBe(a.key);
      const b = after.pick(ctx)!;
      after.release(b);
      spread.set(b.key, (spread.get(b.key) ?? 0) + 1);
      if (a.key !== b.key) {
        moved++;
        // Keys only ever move to the new node.
        expect(b.key).toBe('10.0.0.5:80');
      }
    }
    // Ideal is 1/5 = 1000 keys.
    expect(moved).toBeGreaterThan(600);
    expect(moved).toBeLessThan(1400);
    for (const n of spread.values()) expect(n).toBeGreaterThan(600);
  });

  it('gives a node with twice the weight about twice the keys', () => {
    const r = rt({ type: 'chash', key: 'arg_id', nodes: { 'a:1': 2, 'b:1': 1 } });
    const got = count(Array.from({ length: 6000 }, (_, i) => r.pick(fakeCtx({ arg_id: String(i) }))!.key));
    const ratio = got.get('a:1')! / got.get('b:1')!;
    // A ring of a few hundred points is uneven by up to ~15% per node; equal weights would give ~1.
    expect(ratio).toBeGreaterThan(1.5);
    expect(ratio).toBeLessThan(2.6);
  });

  it('reads header, cookie, consumer and vars_combinations keys', () => {
    const cases: Array<[UpstreamConf, (v: string) => ReturnType<typeof fakeCtx>]> = [
      [{ hash_on: 'header', key: 'X-User' }, (v) => fakeCtx({ http_x_user: v })],
      [{ hash_on: 'cookie', key: 'sid' }, (v) => fakeCtx({ cookie_sid: v })],
      [{ hash_on: 'consumer' }, (v) => fakeCtx({}, v)],
      [{ hash_on: 'vars_combinations', key: '$host-${arg_x}' }, (v) => fakeCtx({ host: 'h', arg_x: v })],
    ];
    for (const [extra, make] of cases) {
      const r = rt({ type: 'chash', nodes: nodes(8), ...extra });
      const seen = new Set<string>();
      for (let i = 0; i < 200; i++) {
        const k = r.pick(make(`v${i}`))!.key;
        // Stable per key...
        expect(r.pick(make(`v${i}`))!.key).toBe(k);
        seen.add(k);
      }
      // ...and the key really is what is hashed: 200 values spread over several nodes.
      expect(seen.size).toBeGreaterThan(4);
    }
  });

  it('falls back to remote_addr when the key is missing or empty', () => {
    const r = rt({ type: 'chash', hash_on: 'header', key: 'x-user', nodes: nodes(8) });
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const addr = `192.168.1.${i}`;
      const k = r.pick(fakeCtx({ remote_addr: addr }))!.key;
      expect(r.pick(fakeCtx({ remote_addr: addr, http_x_user: '' }))!.key).toBe(k);
      seen.add(k);
    }
    expect(seen.size).toBeGreaterThan(4);
  });

  it('on retry moves to the next node on the ring, not to a random one', () => {
    const r = rt({ type: 'chash', key: 'arg_id', nodes: nodes(5) });
    const ctx = fakeCtx({ arg_id: 'abc' });
    const first = r.pick(ctx)!;
    const second = r.pick(ctx, new Set([first.key]))!;
    expect(second.key).not.toBe(first.key);
    expect(r.pick(ctx, new Set([first.key]))!.key).toBe(second.key);
  });
});

describe('least_conn', () => {
  it('sends to the node with the fewest active requests per weight', () => {
    const r = rt({ type: 'least_conn', nodes: { 'a:1': 2, 'b:1': 1 } });
    const held = Array.from({ length: 9 }, () => r.pick(fakeCtx())!);
    const got = count(held.map((t) => t.key));
    expect(got.get('a:1')).toBe(6);
    expect(got.get('b:1')).toBe(3);
    // Finish all of a's requests: the next picks go to a until it catches up.
    for (const t of held) if (t.key === 'a:1') r.release(t);
    expect(picks(r, 1)).toEqual(['a:1']);
    const next = Array.from({ length: 6 }, () => r.pick(fakeCtx())!.key);
    expect(next).toEqual(Array(6).fill('a:1'));
  });

  it('spreads an idle upstream evenly', () => {
    const r = rt({ type: 'least_conn', nodes: { 'a:1': 1, 'b:1': 1, 'c:1': 1 } });
    const got = count(picks(r, 30));
    expect([...got.values()]).toEqual([10, 10, 10]);
  });
});

describe('ewma', () => {
  it('prefers the node with the lower reported latency', () => {
    const r = rt({ type: 'ewma', nodes: { 'fast:1': 1, 'slow:1': 1, 'mid:1': 1 } });
    const latency: Record<string, number> = { 'fast:1': 5, 'slow:1': 500, 'mid:1': 50 };
    const got: string[] = [];
    for (let i = 0; i < 600; i++) {
      const t = r.pick(fakeCtx())!;
      r.report(t, { status: 200, latencyMs: latency[t.key]! });
      r.release(t);
      if (i >= 100) got.push(t.key);
    }
    const c = count(got);
    // With two random choices the slowest node only wins when drawn against itself, which cannot happen.
    expect(c.get('slow:1') ?? 0).toBe(0);
    expect(c.get('fast:1')!).toBeGreaterThan(c.get('mid:1')!);
  });

  it('tries unmeasured nodes and honours exclude', () => {
    const r = rt({ type: 'ewma', nodes: { 'a:1': 1, 'b:1': 1 } });
    const t = r.pick(fakeCtx())!;
    r.report(t, { status: 200, latencyMs: 100 });
    r.release(t);
    const other = t.key === 'a:1' ? 'b:1' : 'a:1';
    expect(picks(r, 5)).toEqual(Array(5).fill(other));
    expect(r.pick(fakeCtx(), new Set([other]))!.key).toBe(t.key);
    expect(r.pick(fakeCtx(), new Set(['a:1', 'b:1']))).toBeUndefined();
  });
});
