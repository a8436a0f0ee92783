/**
 * prometheus: APISIX's metric names and labels, scraped over HTTP from the
 * export listener (port 0 here, found through exportServerAddress()), with a
 * global rule and route confs, statuses from the upstream, the router (404)
 * and plugins (401, 403), a consumer, and with worker_processes 2 the sum over
 * the workers. Bandwidth is checked byte for byte against raw sockets.
 */
import { request as httpRequest } from 'node:http';
import { connect, createServer as createNetServer } from 'node:net';
import { hostname } from 'node:os';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { send, startUpstream as startUpstreamServer } from '../dataplane/helpers.js';
import { startTestGateway, useGatewayWithEcho } from '../helpers/gateway.js';
import { exportServerAddress } from '../../src/plugins/prometheus.js';
import { startEtcd } from '../helpers/etcd.js';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const EXPORT = { plugin_attr: { prometheus: { export_addr: { ip: '127.0.0.1', port: 0 } } } };
const URI = '/apisix/prometheus/metrics';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** GET on a fresh connection (so connection counts are predictable). */
function get(port: number, path: string): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    httpRequest({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body, type: String(res.headers['content-type']) }));
    })
      .on('error', reject)
      .end();
  });
}

function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

async function scrape(port = exportServerAddress()!.port): Promise<Sample[]> {
  const res = await get(port, URI);
  expect(res.status).toBe(200);
  expect(res.type).toMatch(/^text\/plain/);
  return parse(res.body);
}

const pick = (samples: Sample[], name: string, want: Record<string, string> = {}) =>
  samples.filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v));
const value = (samples: Sample[], name: string, want: Record<string, string> = {}) => pick(samples, name, want).reduce((n, s) => n + s.value, 0);

/** Sends `raw` requests one after another on one connection; resolves with every byte the gateway answered. */
function rawExchange(port: number, requests: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let next = 0;
    let seen = 0;
    const sendNext = () => socket.write(requests[next++]!);
    socket.on('connect', sendNext);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      const all = Buffer.concat(chunks).toString('latin1');
      // One more complete response (by Content-Length) than before: send the next request.
      let count = 0;
      let at = 0;
      for (;;) {
        const end = all.indexOf('\r\n\r\n', at);
        if (end < 0) break;
        const len = Number(/content-length: (\d+)/i.exec(all.slice(at, end))?.[1] ?? 0);
        if (all.length < end + 4 + len) break;
        count++;
        at = end + 4 + len;
      }
      if (count > seen) {
        seen = count;
        if (next < requests.length) sendNext();
      }
    });
    socket.on('end', () => resolve(Buffer.concat(chunks)));
    socket.on('error', reject);
  });
}

describe('prometheus: one process', () => {
  const env = useGatewayWithEcho({ config: { plugins: ['ip-restriction', 'key-auth', 'prometheus'], ...EXPORT } });
  const routes = async () => {
    const { gw, up } = env;
    const upstream = { nodes: { [`127.0.0.1:${up.port}`]: 1 } };
    expect((await gw.admin('PUT', '/apisix/admin/global_rules/1', { plugins: { prometheus: {} } })).status).toBeLessThan(300);
    // On the route too, with prefer_name: counted once, with the route's conf (run_policy prefer_route).
    expect((await gw.admin('PUT', '/apisix/admin/routes/1', { name: 'hello-route', uri: '/hello', upstream, plugins: { prometheus: { prefer_name: true } } })).status).toBeLessThan(300);
    expect((await gw.admin('PUT', '/apisix/admin/services/s1', { upstream })).status).toBeLessThan(300);
    expect((await gw.admin('PUT', '/apisix/admin/routes/2', { uris: ['/auth', '/auth2'], host: 'api.test', service_id: 's1', plugins: { 'key-auth': {} } })).status).toBeLessThan(300);
    expect((await gw.admin('PUT', '/apisix/admin/routes/3', { uri: '/deny/*', upstream, plugins: { 'ip-restriction': { blacklist: ['127.0.0.1'] } } })).status).toBeLessThan(300);
    expect((await gw.admin('PUT', '/apisix/admin/consumers', { username: 'jack', plugins: { 'key-auth': { key: 'jack-key' } } })).status).toBeLessThan(300);
  };
  let before: Sample[];
  let after: Sample[];
  let helloIn = 0;
  let helloOut = 0;

  beforeAll(async () => {
    await routes();
    // The plugin subscribes to Node's http channels on its first recorded request (so a gateway that lists
    // but never uses it pays nothing): one request first, then the measured ones are fully stamped.
    expect((await env.gw.admin('PUT', '/apisix/admin/routes/warm', { uri: '/warm', upstream: { nodes: { [`127.0.0.1:${env.up.port}`]: 1 } } })).status).toBeLessThan(300);
    expect((await send(env.gw.dataPort, { path: '/warm', headers: { connection: 'close' } })).status).toBe(200);
    before = await scrape();
    const port = env.gw.dataPort;
    const req = (path: string, close: boolean) => `GET ${path} HTTP/1.1\r\nHost: h.test\r\nUser-Agent: t\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;
    // 3 requests to route 1: two on one keep-alive connection, one on its own.
    const reqs = [[req('/hello', false), req('/hello?x=1', true)], [req('/hello', true)]];
    for (const r of reqs) {
      helloIn += r.reduce((n, s) => n + Buffer.byteLength(s), 0);
      helloOut += (await rawExchange(port, r)).length;
    }
    for (let i = 0; i < 2; i++) expect((await send(port, { path: '/nope' })).status).toBe(404);
    expect((await send(port, { path: '/auth', headers: { host: 'api.test' } })).status).toBe(401);
    expect((await send(port, { path: '/auth2', headers: { host: 'api.test', apikey: 'jack-key' } })).status).toBe(200);
    expect((await send(port, { path: '/auth2', headers: { host: 'api.test', apikey: 'jack-key' } })).status).toBe(200);
    expect((await send(port, { path: '/deny/x' })).status).toBe(403);
    after = await scrape();
  });

  it('apisix_http_status: one series per code, route, matched uri/host, service, consumer and node, counted exactly', () => {
    const status = pick(after, 'apisix_http_status').map((s) => ({ ...s.labels, n: s.value }));
    const none = { matched_host: '', service: '', consumer: '' };
    expect(status.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)))).toEqual(
      [
        { code: '200', route: 'hello-route', matched_uri: '/hello', ...none, node: '127.0.0.1', n: 3 },
        { code: '404', route: '', matched_uri: '', ...none, node: '', n: 2 },
        { code: '401', route: '2', matched_uri: '/auth', matched_host: 'api.test', service: 's1', consumer: '', node: '', n: 1 },
        { code: '200', route: '2', matched_uri: '/auth2', matched_host: 'api.test', service: 's1', consumer: 'jack', node: '127.0.0.1', n: 2 },
        { code: '403', route: '3', matched_uri: '/deny/*', ...none, node: '', n: 1 },
        { code: '200', route: 'warm', matched_uri: '/warm', ...none, node: '127.0.0.1', n: 1 },
      ].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
    );
    expect(pick(before, 'apisix_http_status').map((x) => x.labels.route)).toEqual(['warm']);
  });

  it('apisix_http_latency: request, upstream and apisix histograms with APISIX buckets; no upstream series without an upstream', () => {
    const hello = { route: 'hello-route', service: '', consumer: '', node: '127.0.0.1' };
    for (const type of ['request', 'upstream', 'apisix']) {
      expect(value(after, 'apisix_http_latency_count', { ...hello, type })).toBe(3);
      expect(value(after, 'apisix_http_latency_bucket', { ...hello, type, le: '+Inf' })).toBe(3);
      expect(value(after, 'apisix_http_latency_sum', { ...hello, type })).toBeGreaterThanOrEqual(0);
    }
    const les = pick(after, 'apisix_http_latency_bucket', { ...hello, type: 'request' }).map((s) => s.labels.le);
    expect(les).toEqual(['1', '2', '5', '10', '20', '50', '100', '200', '500', '1000', '2000', '5000', '10000', '30000', '60000', '+Inf']);
    expect(value(after, 'apisix_http_latency_sum', { ...hello, type: 'request' })).toBeGreaterThanOrEqual(
      value(after, 'apisix_http_latency_sum', { ...hello, type: 'upstream' }),
    );
    const notFound = { route: '', node: '' };
    expect(value(after, 'apisix_http_latency_count', { ...notFound, type: 'request' })).toBe(2);
    expect(value(after, 'apisix_http_latency_count', { ...notFound, type: 'apisix' })).toBe(2);
    expect(pick(after, 'apisix_http_latency_count', { ...notFound, type: 'upstream' })).toEqual([]);
    expect(value(after, 'apisix_http_latency_count', { route: '2', consumer: 'jack', type: 'upstream' })).toBe(2);
    expect(value(after, 'apisix_http_latency_count', { type: 'request' })).toBe(9);
  });

  it('apisix_bandwidth: request and response bytes as on the wire, keep-alive requests split', () => {
    const hello = { route: 'hello-route', service: '', consumer: '', node: '127.0.0.1' };
    expect(value(after, 'apisix_bandwidth', { ...hello, type: 'ingress' })).toBe(helloIn);
    expect(value(after, 'apisix_bandwidth', { ...hello, type: 'egress' })).toBe(helloOut);
    expect(value(after, 'apisix_bandwidth', { route: '', type: 'egress' })).toBeGreaterThan(0);
  });

  it('node info, requests total and connections', async () => {
    expect(pick(after, 'apisix_node_info').map((s) => ({ ...s.labels, v: s.value }))).toEqual([{ hostname: hostname(), version: VERSION, v: 1 }]);
    const a = await scrape();
    for (let i = 0; i < 4; i++) await send(env.gw.dataPort, { path: '/nope' });
    const b = await scrape();
    // Four requests plus the second scrape itself, each on a new connection.
    expect(value(b, 'apisix_http_requests_total') - value(a, 'apisix_http_requests_total')).toBe(5);
    const conn = (s: Sample[], state: string) => value(s, 'apisix_nginx_http_current_connections', { state });
    expect(conn(b, 'accepted') - conn(a, 'accepted')).toBe(5);
    expect(conn(b, 'handled')).toBe(conn(b, 'accepted'));
    expect(conn(b, 'active')).toBeGreaterThanOrEqual(1);
  });

  it('is served only by the export listener, only at export_uri with GET', async () => {
    const port = exportServerAddress()!.port;
    expect(port).not.toBe(env.gw.dataPort);
    const onData = await get(env.gw.dataPort, URI);
    expect(onData.status).toBe(404);
    expect(onData.body).not.toContain('apisix_http_status');
    expect((await get(port, '/metrics')).status).toBe(404);
    const post = await new Promise<number>((resolve, reject) =>
      httpRequest({ host: '127.0.0.1', port, path: URI, method: 'POST', agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      })
        .on('error', reject)
        .end(),
    );
    expect(post).toBe(404);
  });
});

describe('prometheus: from start', () => {
  it('every metric family is declared before the first request, and the unlabelled counters read 0', async () => {
    const gw = await startTestGateway({ config: { plugins: ['prometheus'], ...EXPORT } });
    try {
      const res = await get(exportServerAddress()!.port, URI);
      for (const name of ['http_status', 'http_latency', 'bandwidth', 'node_info', 'http_requests_total', 'nginx_http_current_connections', 'nginx_metric_errors_total']) {
        expect(res.body, name).toMatch(new RegExp(`^# TYPE apisix_${name} `, 'm'));
      }
      expect(res.body).toMatch(/^apisix_nginx_metric_errors_total 0$/m);
      expect(res.body).toMatch(/^apisix_http_requests_total \d+$/m);
    } finally {
      await gw.close();
    }
  });
});

describe('prometheus: plugin_attr', () => {
  it('enable_export_server: false is refused at start, naming the key', async () => {
    await expect(startTestGateway({ config: { plugins: ['prometheus'], plugin_attr: { prometheus: { enable_export_server: false } } } })).rejects.toThrow(
      /plugin_attr\.prometheus\.enable_export_server: false .*public-api/,
    );
  });

  it('a bad export_addr.port is refused, naming the key; metric_prefix and export_uri apply', async () => {
    await expect(
      startTestGateway({ config: { plugins: ['prometheus'], plugin_attr: { prometheus: { export_addr: { ip: '127.0.0.1', port: 'x' } } } } }),
    ).rejects.toThrow(/plugin_attr\.prometheus\.export_addr\.port/);
    const gw = await startTestGateway({
      config: { plugins: ['prometheus'], plugin_attr: { prometheus: { export_addr: { ip: '127.0.0.1', port: 0 }, metric_prefix: 'portico_', export_uri: '/m' } } },
    });
    try {
      const res = await get(exportServerAddress()!.port, '/m');
      expect(res.status).toBe(200);
      expect(res.body).toContain('portico_node_info{');
      expect(res.body).not.toContain('apisix_');
    } finally {
      await gw.close();
    }
  });
});

describe('prometheus: worker_processes 1, served by a forked worker as npm start runs it', () => {
  const env = useGatewayWithEcho({ config: { plugins: ['prometheus'], nginx_config: { worker_processes: 1 }, ...EXPORT }, inProcess: false });

  it("the primary's endpoint reports the worker's requests", async () => {
    const { gw, up } = env;
    const upstream = { nodes: { [`127.0.0.1:${up.port}`]: 1 } };
    expect((await gw.admin('PUT', '/apisix/admin/global_rules/1', { plugins: { prometheus: {} } })).status).toBeLessThan(300);
    expect((await gw.admin('PUT', '/apisix/admin/routes/1', { uri: '/w1', upstream })).status).toBeLessThan(300);
    for (let tries = 0; (await send(gw.dataPort, { path: '/w1' })).status !== 200; tries++) expect(tries).toBeLessThan(500);
    const base = value(await scrape(), 'apisix_http_status', { code: '200', route: '1' });
    const N = 25;
    for (let i = 0; i < N; i++) expect((await send(gw.dataPort, { path: '/w1' })).status).toBe(200);
    expect(value(await scrape(), 'apisix_http_status', { code: '200', route: '1' }) - base).toBe(N);
  });
});

describe('prometheus: worker_processes 2', () => {
  const env = useGatewayWithEcho({ config: { plugins: ['prometheus'], nginx_config: { worker_processes: 2 }, ...EXPORT } });

  it('each worker records its requests; the endpoint reports their sum', async () => {
    const { gw, up } = env;
    const upstream = { nodes: { [`127.0.0.1:${up.port}`]: 1 } };
    expect((await gw.admin('PUT', '/apisix/admin/global_rules/1', { plugins: { prometheus: {} } })).status).toBeLessThan(300);
    expect((await gw.admin('PUT', '/apisix/admin/routes/1', { uri: '/w', upstream })).status).toBeLessThan(300);
    // Both workers apply the change: wait until 20 fresh connections in a row get the route.
    for (let ok = 0, tries = 0; ok < 20; tries++) {
      expect(tries).toBeLessThan(500);
      ok = (await send(gw.dataPort, { path: '/w' })).status === 200 ? ok + 1 : 0;
    }
    // The base is taken after the warm-up above, in which each worker recorded (and so subscribed) already.
    const first = await scrape();
    const base = value(first, 'apisix_http_status', { code: '200', route: '1' });
    const latencyBase = value(first, 'apisix_http_latency_count', { type: 'request', route: '1' });
    const requestsBase = value(first, 'apisix_http_requests_total');
    const N = 60;
    for (let i = 0; i < N; i++) expect((await send(gw.dataPort, { path: '/w' })).status).toBe(200);
    const after = await scrape();
    expect(value(after, 'apisix_http_status', { code: '200', route: '1' }) - base).toBe(N);
    expect(value(after, 'apisix_http_latency_count', { type: 'request', route: '1' })).toBe(latencyBase + N);
    // One node, whatever the process count.
    expect(pick(after, 'apisix_node_info').map((s) => s.value)).toEqual([1]);
    expect(value(after, 'apisix_http_requests_total')).toBeGreaterThanOrEqual(requestsBase + N);
  });
});

describe('prometheus: apisix_upstream_status from the health checkers', () => {
  for (const workers of [1, 2]) {
    it(`1 for a healthy node, 0 for one the active check marked down (worker_processes ${workers})`, async () => {
      const gw = await startTestGateway({ config: { plugins: ['prometheus'], nginx_config: { worker_processes: workers }, ...EXPORT }, inProcess: workers === 1 });
      const up = await startUpstreamServer();
      // A port nothing listens on.
      const dead = await new Promise<number>((resolve) => {
        const s = createNetServer().listen(0, '127.0.0.1', () => {
          const port = (s.address() as { port: number }).port;
          s.close(() => resolve(port));
        });
      });
      try {
        const checks = { active: { type: 'http', http_path: '/', timeout: 1, healthy: { interval: 1, successes: 1 }, unhealthy: { interval: 1, http_failures: 1, tcp_failures: 1, timeouts: 1 } } };
        const nodes = { [`127.0.0.1:${up.port}`]: 1, [`127.0.0.1:${dead}`]: 1 };
        expect((await gw.admin('PUT', '/apisix/admin/upstreams/hc', { nodes, checks })).status).toBe(201);
        const status = (samples: Sample[], port: number): number | undefined =>
          samples.find((s) => s.name === 'apisix_upstream_status' && s.labels.port === String(port) && s.labels.name === '/apisix/upstreams/hc')?.value;
        let samples: Sample[] = [];
        for (const end = Date.now() + 15_000; Date.now() < end; await new Promise((r) => setTimeout(r, 200))) {
          samples = await scrape();
          if (status(samples, dead) === 0 && status(samples, up.port) === 1) break;
        }
        expect(status(samples, up.port)).toBe(1);
        expect(status(samples, dead)).toBe(0);
        expect(samples.find((s) => s.name === 'apisix_upstream_status' && s.labels.port === String(dead))!.labels.ip).toBe('127.0.0.1');
        // One series per node, however many workers check it.
        expect(samples.filter((s) => s.name === 'apisix_upstream_status')).toHaveLength(2);
      } finally {
        await gw.close();
        await up.close();
      }
    }, 60_000);
  }
});

describe('prometheus: apisix_etcd_reachable', () => {
  it('1 while etcd answers, 0 within a scrape once it is frozen, 1 again when it resumes; absent with the embedded store', async () => {
    const embedded = await startTestGateway({ config: { plugins: ['prometheus'], ...EXPORT } });
    try {
      expect(pick(await scrape(), 'apisix_etcd_reachable')).toEqual([]);
    } finally {
      await embedded.close();
    }
    const etcd = await startEtcd();
    const gw = await startTestGateway({
      config: { plugins: ['prometheus'], ...EXPORT, deployment: { config_provider: 'etcd', etcd: { host: [etcd.endpoint], prefix: '/prom-reach', timeout: 5 } } },
    });
    try {
      expect(value(await scrape(), 'apisix_etcd_reachable')).toBe(1);
      etcd.proc.kill('SIGSTOP');
      const started = Date.now();
      expect(value(await scrape(), 'apisix_etcd_reachable')).toBe(0);
      // The probe gives up after two seconds, so a scrape answers well inside Prometheus's 10 s default.
      expect(Date.now() - started).toBeLessThan(6_000);
      etcd.proc.kill('SIGCONT');
      let back = 0;
      for (const end = Date.now() + 15_000; back !== 1 && Date.now() < end; await new Promise((r) => setTimeout(r, 200))) back = value(await scrape(), 'apisix_etcd_reachable');
      expect(back).toBe(1);
    } finally {
      etcd.proc.kill('SIGCONT');
      await gw.close();
      await etcd.stop();
    }
  }, 60_000);
});
