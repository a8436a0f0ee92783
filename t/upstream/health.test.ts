import { afterEach, describe, expect, it } from 'vitest';
import { createUpstreamRuntime, type UpstreamRuntime, type UpstreamTarget } from '../../src/core/upstream/index.js';
import type { HealthCheckConf, UpstreamConf } from '../../src/core/model.js';
import { fakeCtx, startServer, waitFor, type TestServer } from './support.js';

const runtimes: UpstreamRuntime[] = [];
const servers: TestServer[] = [];
const countsAtFlip: Array<Map<string, number>> = [];
afterEach(async () => {
  countsAtFlip.length = 0;
  await Promise.all(runtimes.splice(0).map((r) => r.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

interface Flip {
  key: string;
  healthy: boolean;
}

function rt(conf: UpstreamConf, key = `/apisix/upstreams/h${runtimes.length}-${Math.random()}`): { r: UpstreamRuntime; flips: Flip[] } {
  const flips: Flip[] = [];
  const r = createUpstreamRuntime(conf, key, {
    onHealthChange: (node, healthy) => {
      flips.push({ key: node.key, healthy });
      // Request counts at the moment of the flip: later probes must not blur the count.
      countsAtFlip.push(new Map(servers.map((s) => [s.key, s.requests])));
    },
  });
  runtimes.push(r);
  return { r, flips };
}

async function serve(n: number): Promise<TestServer[]> {
  const list = await Promise.all(Array.from({ length: n }, (_, i) => startServer(`s${i}`)));
  servers.push(...list);
  return list;
}

function nodesOf(list: TestServer[]): UpstreamConf['nodes'] {
  return list.map((s) => ({ host: '127.0.0.1', port: s.port, weight: 1 }));
}

function pickedKeys(r: UpstreamRuntime, n = 20): Set<string> {
  const out = new Set<string>();
  for (let i = 0; i < n; i++) {
    const t = r.pick(fakeCtx());
    out.add(t ? t.key : 'none');
    if (t) r.release(t);
  }
  return out;
}

/** Fast active checks: APISIX's thresholds are kept unless a test overrides them. */
function active(extra: NonNullable<HealthCheckConf['active']> = {}): HealthCheckConf['active'] {
  return {
    timeout: 0.2,
    http_path: '/status',
    ...extra,
    healthy: { interval: 0.03, ...extra.healthy },
    unhealthy: { interval: 0.03, ...extra.unhealthy },
  };
}

describe('active health checks', () => {
  it('marks a node unhealthy after http_failures bad statuses and back after `successes` good ones', async () => {
    const [a, b] = await serve(2);
    const { r, flips } = rt({
      nodes: nodesOf([a!, b!]),
      checks: { active: active({ healthy: { successes: 3 }, unhealthy: { http_failures: 2 }, req_headers: ['X-Probe: yes'] }) },
    });
    await waitFor(() => a!.requests >= 2);
    expect(a!.last!.url).toBe('/status');
    expect(a!.last!.headers['x-probe']).toBe('yes');
    expect(a!.last!.headers.host).toBe('127.0.0.1');
    expect(pickedKeys(r)).toEqual(new Set([a!.key, b!.key]));

    const before = a!.requests;
    a!.status = 500;
    await waitFor(() => flips.length === 1);
    expect(flips[0]).toEqual({ key: a!.key, healthy: false });
    // Exactly http_failures probes saw 500 before the flip: probes of one node never overlap.
    expect(countsAtFlip[0]!.get(a!.key)! - before).toBe(2);
    expect(pickedKeys(r)).toEqual(new Set([b!.key]));

    // Statuses in neither list (418) neither restore nor count.
    a!.status = 418;
    const mark = a!.requests;
    await waitFor(() => a!.requests >= mark + 4);
    expect(flips.length).toBe(1);

    const back = a!.requests;
    a!.status = 200;
    await waitFor(() => flips.length === 2);
    expect(flips[1]).toEqual({ key: a!.key, healthy: true });
    // Counted at the flip, as above: a probe landing before waitFor polls again must not count.
    expect(countsAtFlip[1]!.get(a!.key)! - back).toBe(3);
    expect(pickedKeys(r)).toEqual(new Set([a!.key, b!.key]));
  });

  it('counts connection resets as tcp failures and hangs as timeouts', async () => {
    const [a, b, c] = await serve(3);
    const { r, flips } = rt({
      nodes: nodesOf([a!, b!, c!]),
      checks: { active: active({ timeout: 0.1, unhealthy: { tcp_failures: 2, timeouts: 2, http_failures: 0 } }) },
    });
    a!.status = -1;
    b!.status = 0;
    c!.status = 500; // http_failures 0 disables that counter.
    await waitFor(() => flips.length === 2);
    expect(new Set(flips.map((f) => f.key))).toEqual(new Set([a!.key, b!.key]));
    expect(pickedKeys(r)).toEqual(new Set([c!.key]));
  });

  it('tcp probes: a closed port goes unhealthy, a listening one comes back', async () => {
    const [a, b] = await serve(2);
    const port = a!.port;
    const { r, flips } = rt({ nodes: nodesOf([a!, b!]), checks: { active: active({ type: 'tcp' }) } });
    await a!.close();
    servers.splice(servers.indexOf(a!), 1);
    await waitFor(() => flips.length === 1);
    expect(flips[0]).toEqual({ key: `127.0.0.1:${port}`, healthy: false });
    expect(pickedKeys(r)).toEqual(new Set([b!.key]));

    // Listen again on the same (ephemeral, formerly ours) port.
    servers.push(await startServer('again', port));
    await waitFor(() => flips.length === 2);
    expect(flips[1]!.healthy).toBe(true);
  });

  it('probes active.port with active.host as Host, and applies the verdict to the node', async () => {
    const [node, probe] = await serve(2);
    const { r, flips } = rt({
      nodes: nodesOf([node!]),
      checks: { active: active({ port: probe!.port, host: 'health.example', unhealthy: { http_failures: 1 } }) },
    });
    await waitFor(() => probe!.requests >= 1);
    expect(probe!.last!.headers.host).toBe('health.example');
    expect(node!.requests).toBe(0);
    probe!.status = 503;
    await waitFor(() => flips.length === 1);
    expect(flips[0]!.key).toBe(node!.key);
    // Every node unhealthy: fail fast rather than try dead nodes (documented difference from APISIX).
    expect(r.pick(fakeCtx())).toBeUndefined();
  });

  it('stops probing on close()', async () => {
    const [a] = await serve(1);
    const { r } = rt({ nodes: nodesOf([a!]), checks: { active: active() } });
    await waitFor(() => a!.requests >= 2);
    await r.close();
    const after = a!.requests;
    await new Promise((res) => setTimeout(res, 200));
    expect(a!.requests).toBe(after);
  });
});

describe('passive health checks', () => {
  async function send(r: UpstreamRuntime, t: UpstreamTarget): Promise<void> {
    try {
      const res = await t.pool.request({ path: '/', method: 'GET', headersTimeout: 300 });
      await res.body.text();
      r.report(t, { status: res.statusCode, latencyMs: 1 });
    } catch (err) {
      const code = (err as { code?: string }).code;
      r.report(t, { failure: code === 'UND_ERR_HEADERS_TIMEOUT' ? 'timeout' : 'reset' });
    } finally {
      r.release(t);
    }
  }

  /** Active probes effectively off (one probe a minute), passive on: the APISIX-valid shape. */
  const quietActive = { healthy: { interval: 60 }, unhealthy: { interval: 60 } };

  it('takes a node out after unhealthy.http_failures consecutive bad statuses from real traffic', async () => {
    const [a, b] = await serve(2);
    const { r, flips } = rt({
      type: 'least_conn',
      nodes: nodesOf([a!, b!]),
      checks: { active: quietActive, passive: { unhealthy: { http_statuses: [500], http_failures: 3 } } },
    });
    const ta = () => {
      const t = r.pick(fakeCtx(), new Set([b!.key]))!;
      expect(t.key).toBe(a!.key);
      return t;
    };
    a!.status = 500;
    await send(r, ta());
    await send(r, ta());
    a!.status = 200; // a success resets the failure count
    await send(r, ta());
    a!.status = 500;
    await send(r, ta());
    await send(r, ta());
    expect(flips).toEqual([]);
    await send(r, ta());
    expect(flips).toEqual([{ key: a!.key, healthy: false }]);
    expect(pickedKeys(r)).toEqual(new Set([b!.key]));
  });

  it('counts resets (tcp_failures) and timeouts, and without active probes never restores a node', async () => {
    const [a, b] = await serve(2);
    const { r, flips } = rt({
      nodes: nodesOf([a!, b!]),
      checks: { active: quietActive, passive: { unhealthy: { tcp_failures: 2, timeouts: 2 } } },
    });
    a!.status = -1;
    b!.status = 0;
    for (let i = 0; i < 2; i++) {
      await send(r, r.pick(fakeCtx(), new Set([b!.key]))!);
      await send(r, r.pick(fakeCtx(), new Set([a!.key]))!);
    }
    expect(new Set(flips.map((f) => `${f.key}:${f.healthy}`))).toEqual(new Set([`${a!.key}:false`, `${b!.key}:false`]));
    a!.status = 200;
    b!.status = 200;
    await new Promise((res) => setTimeout(res, 150));
    expect(r.pick(fakeCtx())).toBeUndefined();
  });

  it('ignores reports when checks.passive is not configured', async () => {
    const [a] = await serve(1);
    const { r, flips } = rt({ nodes: nodesOf([a!]), checks: { active: quietActive } });
    a!.status = 500;
    for (let i = 0; i < 10; i++) await send(r, r.pick(fakeCtx())!);
    expect(flips).toEqual([]);
  });
});

describe('health status across config versions', () => {
  it('a new runtime for the same key inherits node status; another key starts healthy', async () => {
    const [a, b] = await serve(2);
    const conf: UpstreamConf = {
      nodes: nodesOf([a!, b!]),
      checks: { active: { healthy: { interval: 60 }, unhealthy: { interval: 60 } }, passive: { unhealthy: { http_failures: 1 } } },
    };
    const { r: v1 } = rt(conf, '/apisix/upstreams/keep');
    const t = v1.pick(fakeCtx(), new Set([b!.key]))!;
    v1.report(t, { status: 500 });
    v1.release(t);
    const { r: v2 } = rt({ ...conf, retries: 1 }, '/apisix/upstreams/keep');
    await v1.close();
    expect(pickedKeys(v2)).toEqual(new Set([b!.key]));
    const { r: other } = rt(conf, '/apisix/upstreams/other');
    expect(pickedKeys(other)).toEqual(new Set([a!.key, b!.key]));
  });
});
