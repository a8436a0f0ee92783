/**
 * http-logger through real sockets: a gateway proxies to a test upstream and
 * POSTs APISIX's log entries to a collector server on a loopback port. Covers
 * batching (batch_max_size, inactive_timeout), concat_method, auth_header,
 * retries after the collector fails, the backlog bound with the collector down
 * (drops counted), log_format from the conf and from plugin_metadata,
 * include_req_body / include_resp_body with their expressions, and the flush
 * when the gateway closes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import { send, startEnv, type Env } from './helpers.js';
import { startCollector, type Collector } from './loggers/collector.js';
import { discardedCount } from '../../src/plugins/lib/batch-metrics.js';
import { exportServerAddress } from '../../src/plugins/prometheus.js';

let env: Env;
let col: Collector;

beforeAll(async () => {
  env = await startEnv({ plugin_attr: { prometheus: { export_addr: { ip: '127.0.0.1', port: 0 } } } });
  col = await startCollector();
});
afterAll(async () => {
  await env?.close();
  await col?.close();
});

function reset(): void {
  col.received.length = 0;
  col.status = 200;
}

describe('http-logger', () => {
  it('sends APISIX entries in a JSON array once batch_max_size is reached, with the auth header', async () => {
    reset();
    await env.route('hl-batch', '/hl/batch', {
      'http-logger': { uri: col.url, batch_max_size: 2, inactive_timeout: 60, auth_header: 'Bearer s3cret' },
    });
    const a = await send(`${env.gw.dataUrl}/hl/batch?x=1&y=a&y=b&flag`, { headers: { 'x-trace': 'one' } });
    expect(a.status).toBe(200);
    await new Promise((r) => setTimeout(r, 100));
    expect(col.received).toHaveLength(0); // one entry buffered, the batch is not full
    await send(`${env.gw.dataUrl}/hl/batch`, { method: 'POST', body: 'hello' });
    const [post] = await col.waitFor(1);
    expect(post!.headers['content-type']).toBe('application/json');
    expect(post!.headers.authorization).toBe('Bearer s3cret');
    const entries = JSON.parse(post!.body) as Array<Record<string, any>>;
    expect(entries).toHaveLength(2);
    const e = entries[0]!;
    expect(e.route_id).toBe('hl-batch');
    expect(e.service_id).toBe('');
    expect(e.request.method).toBe('GET');
    expect(e.request.uri).toBe('/hl/batch?x=1&y=a&y=b&flag');
    expect(e.request.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/hl\/batch\?x=1/);
    expect(e.request.querystring).toEqual({ x: '1', y: ['a', 'b'], flag: true });
    expect(e.request.headers['x-trace']).toBe('one');
    expect(e.request.size).toBeGreaterThan(30);
    expect(e.response.status).toBe(200);
    expect(e.response.headers['content-type']).toBe('text/plain');
    // The head as the client got it (APISIX logs ngx.resp.get_headers()): the gateway's Server header included.
    expect(a.headers.server).toBeDefined();
    expect(e.response.headers.server).toBe(a.headers.server);
    expect(e.response.size).toBeGreaterThan(11);
    expect(e.upstream).toBe(env.up.node);
    expect(e.client_ip).toBe('127.0.0.1');
    expect(typeof e.server.hostname).toBe('string');
    expect(e.server.version).toMatch(/^\d+\.\d+/);
    expect(Math.abs(e.start_time - Date.now())).toBeLessThan(10_000);
    expect(e.latency).toBeGreaterThanOrEqual(e.upstream_latency);
    expect(e.apisix_latency).toBeGreaterThanOrEqual(0);
    expect(e.request.body).toBeUndefined();
    expect(e.response.body).toBeUndefined();
    expect(entries[1]!.request.method).toBe('POST');
  });

  it('flushes a partial batch after inactive_timeout; new_line joins entries, a batch of one is one object', async () => {
    reset();
    await env.route('hl-nl', '/hl/nl/*', {
      'http-logger': { uri: col.url, batch_max_size: 10, inactive_timeout: 1, concat_method: 'new_line' },
    });
    await send(`${env.gw.dataUrl}/hl/nl/1`);
    await send(`${env.gw.dataUrl}/hl/nl/2`);
    const [post] = await col.waitFor(1, 4000);
    expect(post!.headers['content-type']).toBe('text/plain');
    const lines = post!.body.split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { request: { uri: string } }).request.uri)).toEqual(['/hl/nl/1', '/hl/nl/2']);

    reset();
    await env.route('hl-one', '/hl/one', { 'http-logger': { uri: col.url, batch_max_size: 1 } });
    await send(`${env.gw.dataUrl}/hl/one`);
    const [one] = await col.waitFor(1);
    expect((JSON.parse(one!.body) as { route_id: string }).route_id).toBe('hl-one');
  });


  it('sends entries with non-ASCII text as valid UTF-8, whole (the batch body is sized in bytes, not characters)', async () => {
    reset();
    await env.route('hl-utf8', '/hl/utf8', { 'http-logger': { uri: col.url, batch_max_size: 3, inactive_timeout: 60 } });
    // Query values decode to 2-, 3- and 4-byte UTF-8 characters; the ASCII-only entry sits between them.
    await send(`${env.gw.dataUrl}/hl/utf8?q=${encodeURIComponent('café 日本 🎉')}`);
    await send(`${env.gw.dataUrl}/hl/utf8?q=plain`);
    await send(`${env.gw.dataUrl}/hl/utf8?q=${encodeURIComponent('日本'.repeat(200))}`);
    const [post] = await col.waitFor(1);
    expect(Buffer.from(post!.body, 'utf8').equals(post!.raw)).toBe(true); // the bytes are valid UTF-8
    expect(Number(post!.headers['content-length'])).toBe(post!.raw.length);
    const entries = JSON.parse(post!.body) as Array<{ request: { querystring: { q: string } } }>;
    expect(entries.map((e) => e.request.querystring.q)).toEqual(['café 日本 🎉', 'plain', '日本'.repeat(200)]);
  });
  it('retries a failed batch after retry_delay, up to max_retry_count', async () => {
    reset();
    col.status = 500;
    await env.route('hl-retry', '/hl/retry', {
      'http-logger': { uri: col.url, batch_max_size: 1, max_retry_count: 2, retry_delay: 0 },
    });
    await send(`${env.gw.dataUrl}/hl/retry`);
    const got = await col.waitFor(3);
    await new Promise((r) => setTimeout(r, 300));
    // The first try and two retries, each with the same entry; then it is dropped.
    expect(col.received).toHaveLength(3);
    expect(new Set(got.map((g) => g.body)).size).toBe(1);

    reset();
    col.status = 503;
    await env.route('hl-retry2', '/hl/retry2', {
      'http-logger': { uri: col.url, batch_max_size: 1, max_retry_count: 3, retry_delay: 1 },
    });
    await send(`${env.gw.dataUrl}/hl/retry2`);
    await col.waitFor(1);
    col.status = 200; // the collector recovers: the next retry gets through and the retries stop
    await col.waitFor(2, 3000);
    await new Promise((r) => setTimeout(r, 1300));
    expect(col.received.map((r) => r.status)).toEqual([503, 200]);
  });

  it('keeps the backlog under max_pending_entries with the collector down, counting what it drops', async () => {
    reset();
    await env.put('/apisix/admin/plugin_metadata/http-logger', { max_pending_entries: 5 });
    // Nothing listens here: every send fails to connect, and the retries keep the entries pending.
    const dead = 'http://127.0.0.1:9/logs';
    await env.route('hl-bound', '/hl/bound', {
      'http-logger': { uri: dead, batch_max_size: 1, max_retry_count: 100, retry_delay: 60 },
    });
    const before = discardedCount('http logger');
    for (let i = 0; i < 12; i++) expect((await send(`${env.gw.dataUrl}/hl/bound`)).status).toBe(200);
    expect(discardedCount('http logger') - before).toBe(7);
    // The prometheus export shows the discards and the backlog.
    const metrics = await (await fetch(`http://127.0.0.1:${exportServerAddress()!.port}/apisix/prometheus/metrics`)).text();
    const discarded = /^apisix_batch_process_discarded_entries_total\{name="http logger"\} (\d+)$/m.exec(metrics);
    expect(Number(discarded?.[1])).toBe(discardedCount('http logger'));
    expect(metrics).toMatch(/^# TYPE apisix_batch_process_entries gauge$/m);
    await env.put('/apisix/admin/plugin_metadata/http-logger', { max_pending_entries: 8192 });
  });

  it('log_format from the conf, else from plugin_metadata, with $variables', async () => {
    reset();
    await env.put('/apisix/admin/plugin_metadata/http-logger', { log_format: { host: '$host', client: '$remote_addr', meta: 'yes' } });
    await env.route('hl-meta', '/hl/meta', { 'http-logger': { uri: col.url, batch_max_size: 1 } });
    await env.route('hl-fmt', '/hl/fmt', {
      'http-logger': {
        uri: col.url,
        batch_max_size: 1,
        log_format: { m: '$request_method', st: '$status', a: '$arg_a', nested: { ua: '$http_user_agent' }, lit: 42, none: '$nope' },
      },
    });
    await send(`${env.gw.dataUrl}/hl/meta`);
    const [m] = await col.waitFor(1);
    expect(JSON.parse(m!.body)).toEqual({ host: '127.0.0.1', client: '127.0.0.1', meta: 'yes', route_id: 'hl-meta' });
    reset();
    await send(`${env.gw.dataUrl}/hl/fmt?a=b`, { headers: { 'user-agent': 'probe/1' } });
    const [f] = await col.waitFor(1);
    expect(JSON.parse(f!.body)).toEqual({ m: 'GET', st: '200', a: 'b', nested: { ua: 'probe/1' }, lit: 42, route_id: 'hl-fmt' });
    await env.put('/apisix/admin/plugin_metadata/http-logger', { log_format: {} });
  });

  it('include_req_body and include_resp_body, each under its expression; a gzip response is logged decoded', async () => {
    reset();
    env.up.replies.set('/hl/body/gz', { headers: { 'content-encoding': 'gzip' }, body: gzipSync('zipped reply') });
    await env.route('hl-body', '/hl/body/*', {
      'http-logger': {
        uri: col.url,
        batch_max_size: 1,
        include_req_body: true,
        include_req_body_expr: [['arg_log', '==', 'yes']],
        include_resp_body: true,
        include_resp_body_expr: [['status', '==', 200]],
        max_req_body_bytes: 5,
      },
    });
    const r = await send(`${env.gw.dataUrl}/hl/body/a?log=yes`, { method: 'POST', body: 'request body' });
    expect(r.body).toBe('upstream ok');
    expect(env.up.seen.at(-1)!.body).toBe('request body'); // the upstream still gets the whole body
    const [a] = await col.waitFor(1);
    const ea = JSON.parse(a!.body) as { request: { body?: string }; response: { body?: string } };
    expect(ea.request.body).toBe('reque');
    expect(ea.response.body).toBe('upstream ok');

    reset();
    await send(`${env.gw.dataUrl}/hl/body/b?log=no`, { method: 'POST', body: 'secret' });
    const [b] = await col.waitFor(1);
    expect((JSON.parse(b!.body) as { request: { body?: string } }).request.body).toBeUndefined();

    reset();
    env.up.replies.set('/hl/body/404', { status: 404, body: 'not here' });
    await send(`${env.gw.dataUrl}/hl/body/404`);
    const [c] = await col.waitFor(1);
    expect((JSON.parse(c!.body) as { response: { status: number; body?: string } }).response).toMatchObject({ status: 404 });
    expect((JSON.parse(c!.body) as { response: { body?: string } }).response.body).toBeUndefined();

    reset();
    await send(`${env.gw.dataUrl}/hl/body/gz`);
    const [g] = await col.waitFor(1);
    expect((JSON.parse(g!.body) as { response: { body?: string } }).response.body).toBe('zipped reply');
  });

  it('refuses a bad conf naming the field', async () => {
    const bad: Array<[unknown, RegExp]> = [
      [{}, /uri/],
      [{ uri: 'not a url' }, /uri/],
      [{ uri: col.url, concat_method: 'xml' }, /concat_method/],
      [{ uri: col.url, include_req_body_expr: [['a', 'bogus-op', 1]] }, /include_req_body_expr/],
      [{ uri: col.url, batch_max_size: 0 }, /batch_max_size/],
    ];
    for (const [conf, msg] of bad) {
      const r = await env.gw.admin('PUT', '/apisix/admin/routes/hl-bad', { uri: '/hl/bad', plugins: { 'http-logger': conf }, upstream: { type: 'roundrobin', nodes: { [env.up.node]: 1 } } });
      expect(r.status, JSON.stringify(conf)).toBe(400);
      expect(r.body.error_msg).toMatch(msg);
    }
  });
});

describe('http-logger on shutdown', () => {
  it('sends what is buffered when the gateway closes', async () => {
    const own = await startEnv();
    const c = await startCollector();
    try {
      await own.route('hl-close', '/hl/close', { 'http-logger': { uri: c.url, batch_max_size: 100, inactive_timeout: 600, buffer_duration: 600 } });
      for (let i = 0; i < 3; i++) await send(`${own.gw.dataUrl}/hl/close`);
      await new Promise((r) => setTimeout(r, 100));
      expect(c.received).toHaveLength(0);
      await own.gw.close();
      expect(c.received).toHaveLength(1);
      expect(JSON.parse(c.received[0]!.body)).toHaveLength(3);
    } finally {
      await own.up.close();
      await c.close();
    }
  });
});
