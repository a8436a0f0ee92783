/**
 * The loggers' JSON text (src/plugins/lib/log-json.ts) is the text
 * JSON.stringify(logEntry(...)) gives, key for key, for real requests through
 * the gateway: a plugin in a global rule writes both in its log phase (the
 * timing fields, read at two different instants, are taken from the first),
 * and every request here must give the same string twice. The requests carry
 * what goes wrong in log entries: quotes, backslashes, tabs and latin1 bytes
 * in headers, repeated and integer-like header names, a header named
 * `constructor`, query strings, bodies, a consumer, no matching route.
 */
import { createServer, type Server } from 'node:http';
import { connect as connectH2 } from 'node:http2';
import { connect, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPluginGateway, type PluginGateway } from 'portico/testing';
import { writeEpochMs, writeMicros } from '../../../src/plugins/lib/log-json.js';
import { JsonBuffer } from '../../../src/plugins/lib/json-bytes.js';
import { micros } from '../../../src/plugins/lib/log-entry.js';
import { pluginDir, type PluginDir } from '../external/fixtures.js';
import { startCollector, type Collector } from './collector.js';

const LIB = fileURLToPath(new URL('../../../src/plugins/lib/', import.meta.url));

const COMPARE_PLUGIN = `import { definePlugin, type RequestContext } from 'portico/plugin';
import { compileLogConf, logSchemaProperties, logMetadataProperties } from '${LIB}log-conf.ts';
import { logEntry } from '${LIB}log-entry.ts';
import { logEntryJson, writeLogRecord } from '${LIB}log-json.ts';
import { JsonBuffer } from '${LIB}json-bytes.ts';
import { loggerAccess, loggerBeforeProxy } from '${LIB}logger-plugin.ts';

const TIMING = ['start_time', 'latency', 'upstream_latency', 'apisix_latency'];
const seen = ((globalThis as Record<string, unknown>).__logJsonPairs ??= []) as Array<{ fast: string; slow: string; bytes: string; bytesSlow: string }>;
const out = new JsonBuffer(16);

export default definePlugin({
  name: 'log-json-compare',
  // Before http-logger (410), whose log phase may parse the upstream's raw headers (the writer walks them raw).
  priority: 420,
  schema: { type: 'object', properties: { ...logSchemaProperties } },
  metadata_schema: { type: 'object', properties: { ...logMetadataProperties } },
  compile: (conf: any) => ({ conf, log: compileLogConf(conf) }),
  access: loggerAccess,
  before_proxy: loggerBeforeProxy,
  log(c: any, ctx: RequestContext) {
    const fast = logEntryJson('log-json-compare', c.conf, c.log, ctx, 'no-matched');
    const entry = logEntry('log-json-compare', c.conf, c.log, ctx);
    entry.route_id ??= 'no-matched';
    // http-logger's path: the bytes written straight into a buffer (a small one, so it grows on the way).
    out.at = 0;
    writeLogRecord(out, { plugin: 'log-json-compare', conf: c.conf, compiled: c.log, ctx, routeIdDefault: 'no-matched' });
    const bytes = out.bytes.toString('utf8', 0, out.at);
    const parsed = JSON.parse(fast);
    const parsedBytes = JSON.parse(bytes);
    const entryBytes = { ...entry };
    for (const k of TIMING) if (entry[k] !== undefined) entry[k] = parsed[k];
    for (const k of TIMING) if (entryBytes[k] !== undefined) entryBytes[k] = parsedBytes[k];
    seen.push({ fast, slow: JSON.stringify(entry), bytes, bytesSlow: JSON.stringify(entryBytes) });
  },
});
`;

type Seen = { fast: string; slow: string; bytes: string; bytesSlow: string };
const pairs = (): Seen[] => ((globalThis as Record<string, unknown>).__logJsonPairs ??= []) as Seen[];

/** Answers with awkward headers: repeated, integer-like, `constructor`, quotes in a value. */
function startAwkwardUpstream(): Promise<Server> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      // Pairs in this order on the wire (an object would list `123` first). A repeated name sends the writer
      // down toObject()'s path: only /awkward/repeat has one.
      if (req.url === '/awkward/mixed') {
        // Nothing repeated or integer-like: the writer takes these pairs as they are, lower-casing the names.
        res.writeHead(200, ['X-Mixed-Case', 'Value', '__proto__', 'own member', 'X-Tab', 'only\ta tab', 'Content-Type', 'text/plain']);
        res.end('mixed');
        return;
      }
      res.writeHead(200, [
        ...(req.url === '/awkward/repeat' ? ['set-cookie', 'a=1', 'set-cookie', 'b="2"'] : []),
        'x-tab', 'only\ta tab',
        '123', 'numeric name',
        'constructor', 'not a function',
        'x-quoted', 'say "hi" \\ there\tnow',
        'content-type', 'text/plain; charset=utf-8',
      ]);
      res.end('caf\u00e9 \u{1f600} body');
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** A raw request (latin1 header bytes and request lines that fetch will not send); the answer's status. */
function raw(port: number, head: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(Buffer.from(head, 'latin1')));
    let got = '';
    socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
    socket.on('close', () => resolve(Number(/^HTTP\/1\.[01] (\d+)/.exec(got)?.[1] ?? 0)));
    socket.on('error', reject);
  });
}

describe('log entries as JSON text', () => {
  let plugins: PluginDir;
  let gw: PluginGateway;
  let awkward: Server;
  let collector: Collector;
  let port: number;

  beforeAll(async () => {
    plugins = pluginDir({ 'log-json-compare.ts': COMPARE_PLUGIN });
    awkward = await startAwkwardUpstream();
    collector = await startCollector();
    // h2c beside HTTP/1.1 on the data port: HTTP/2 requests have their own header objects (pseudo-headers, cookies joined).
    gw = await startPluginGateway({ pluginDirs: [plugins.dir], plugins: ['log-json-compare'], config: { apisix: { node_listen: { enable_http2: true } } } });
    port = Number(new URL(gw.url).port);
    const put = async (path: string, body: unknown) => expect((await gw.admin('PUT', path, body)).status).toBeLessThan(300);
    // http-logger on the same requests turns the request measures on (sizes), as a real logger does.
    await put('/apisix/admin/global_rules/1', {
      plugins: {
        'log-json-compare': { include_req_body: true, include_resp_body: true },
        'http-logger': { uri: collector.url, batch_max_size: 1 },
      },
    });
    await put('/apisix/admin/routes/echo', { uri: '/echo', upstream: { type: 'roundrobin', nodes: { [gw.upstreamNode]: 1 } } });
    await put('/apisix/admin/services/s1', { desc: 'awkward' });
    await put('/apisix/admin/routes/awkward', {
      uris: ['/awkward', '/awkward/*'],
      service_id: 's1',
      upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${(awkward.address() as AddressInfo).port}`]: 1 } },
    });
    await put('/apisix/admin/consumers', { username: 'jack', plugins: { 'key-auth': { key: 'jack-key' } } });
    await put('/apisix/admin/routes/keyed', { uri: '/keyed', plugins: { 'key-auth': {} }, upstream: { type: 'roundrobin', nodes: { [gw.upstreamNode]: 1 } } });
  });
  afterAll(async () => {
    await gw?.close();
    await collector?.close();
    awkward?.close();
    plugins?.close();
  });

  /** Runs `send`, then checks the entry (or entries) it logged. */
  async function logged(send: () => Promise<unknown>): Promise<string[]> {
    const before = pairs().length;
    await send();
    for (let i = 0; i < 100 && pairs().length === before; i++) await new Promise((r) => setTimeout(r, 20));
    const mine = pairs().slice(before);
    expect(mine.length).toBeGreaterThan(0);
    for (const { fast, slow, bytes, bytesSlow } of mine) {
      expect(fast).toBe(slow);
      expect(bytes).toBe(bytesSlow);
    }
    return mine.map((p) => p.fast);
  }

  it('a plain GET, and the collector receives the same text', async () => {
    const [text] = await logged(() => gw.request('/echo'));
    const entry = JSON.parse(text!);
    expect(entry.route_id).toBe('echo');
    expect(entry.request.size).toBeGreaterThan(0);
    const [post] = await collector.waitFor(1);
    expect(Object.keys(JSON.parse(post!.body))).toEqual(Object.keys(entry));
  });

  it('query strings with repeats, bare names and escapes', async () => {
    const [text] = await logged(() => gw.request('/echo?a=1&b=%20x%22&a=2&flag&c=%E2%82%AC'));
    expect(JSON.parse(text!).request.querystring).toEqual({ a: ['1', '2'], b: ' x"', flag: true, c: '\u20ac' });
  });

  it('header values with quotes, backslashes, tabs and latin1 bytes; repeated request headers', async () => {
    const [text] = await logged(() =>
      raw(port, 'GET /echo?q="x" HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Q: say "hi" \\ there\tnow\r\nX-T: only\ta tab\r\nX-L: caf\u00e9\r\nX-R: a\r\nX-R: b\r\nCookie: c=1\r\nCookie: d=2\r\nConnection: close\r\n\r\n'),
    );
    const entry = JSON.parse(text!);
    expect(entry.request.headers['x-q']).toBe('say "hi" \\ there\tnow');
    expect(entry.request.headers['x-t']).toBe('only\ta tab');
    expect(entry.request.uri).toBe('/echo?q="x"');
  });

  it('request headers that Node folds, or files apart, in its object', async () => {
    // A single Set-Cookie (an array in Node's object), `__proto__` (a prototype there, not a member), an
    // integer-like name (listed first), names repeated in another case, and mixed-case names.
    const [text] = await logged(() =>
      raw(port, 'GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nSet-Cookie: s=1\r\n__proto__: p\r\n42: answer\r\nX-Case: a\r\nx-CASE: b\r\nX-Mixed-Name: M\r\nConnection: close\r\n\r\n'),
    );
    const headers = JSON.parse(text!).request.headers;
    expect(headers['set-cookie']).toEqual(['s=1']);
    expect(Object.keys(headers)[0]).toBe('42');
    expect(headers['x-case']).toBe('a, b');
    expect(headers['x-mixed-name']).toBe('M');
    // Each alone, so the writer's pair path meets each case by itself, not behind another's fallback.
    for (const line of ['Set-Cookie: s=1', '__proto__: p', '42: answer', 'X-Mixed-Name: M\r\nx-mixed-NAME: N']) {
      await logged(() => raw(port, `GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n${line}\r\nConnection: close\r\n\r\n`));
    }
  });

  it("the upstream's integer-like, `constructor` and tabbed headers, and the bodies", async () => {
    const [text] = await logged(() => gw.request('/awkward/single', { method: 'POST', body: 'a "body" with caf\u00e9' }));
    const entry = JSON.parse(text!);
    expect(entry.response.headers['x-tab']).toBe('only\ta tab');
    expect(entry.response.headers['constructor']).toBe('not a function');
    expect(entry.response.headers['123']).toBe('numeric name');
    expect(entry.response.body).toBe('caf\u00e9 \u{1f600} body');
    expect(entry.request.body).toBe('a "body" with caf\u00e9');
    expect(entry.service_id).toBe('s1');
  });

  it("the upstream's mixed-case names and a `__proto__` header, taken as pairs", async () => {
    const [text] = await logged(() => gw.request('/awkward/mixed'));
    const headers = JSON.parse(text!).response.headers;
    expect(headers['x-mixed-case']).toBe('Value');
    expect(headers['x-tab']).toBe('only\ta tab');
    expect(Object.hasOwn(headers, '__proto__')).toBe(true);
  });

  it("the upstream's repeated header, an array in the entry", async () => {
    const [text] = await logged(() => gw.request('/awkward/repeat'));
    const headers = JSON.parse(text!).response.headers;
    expect(headers['set-cookie']).toEqual(['a=1', 'b="2"']);
    // Not Object.prototype's constructor folded into an array with it.
    expect(headers['constructor']).toBe('not a function');
  });

  it('a consumer, and a request no route matches', async () => {
    const [keyed] = await logged(() => gw.request('/keyed', { headers: { apikey: 'jack-key' } }));
    expect(JSON.parse(keyed!).consumer).toEqual({ username: 'jack' });
    const [missed] = await logged(() => gw.request('/nowhere'));
    expect(JSON.parse(missed!)).toMatchObject({ route_id: 'no-matched', response: { status: 404 } });
  });

  it('HTTP/2 requests (h2c): pseudo-headers, split cookies and repeated names', async () => {
    const session = connectH2(`http://127.0.0.1:${port}`);
    try {
      const h2 = (headers: Record<string, string | string[]>): Promise<number> =>
        new Promise((resolve, reject) => {
          const req = session.request(headers);
          req.on('response', (h) => {
            req.resume();
            req.on('end', () => resolve(Number(h[':status'])));
          });
          req.on('error', reject);
          req.end();
        });
      const [plain] = await logged(() => h2({ ':path': '/echo?h=2', 'x-h2': 'yes' }));
      expect(JSON.parse(plain!).request.headers['x-h2']).toBe('yes');
      const [folded] = await logged(() => h2({ ':path': '/echo', cookie: ['a=1', 'b=2'], 'x-dup': ['1', '2'] }));
      expect(JSON.parse(folded!).request.headers.cookie).toBe('a=1; b=2');
    } finally {
      session.close();
    }
  });

  it('an HTTP/1.0 request without a Host line', async () => {
    await logged(() => raw(port, 'GET /echo HTTP/1.0\r\n\r\n'));
  });
});

describe('the number writers behind it', () => {
  it('writeMicros writes what JSON.stringify(micros(ms)) writes', () => {
    const values = [0, 0.0004, 0.0005, 0.001, 0.01, 0.1, 0.5, 0.512, 1, 1.0005, 12.3456789, 999.9999, 1000, 123456.789, 1e9 + 0.123, -1, -0.0004, NaN, Infinity];
    let seed = 42;
    for (let i = 0; i < 5000; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      values.push((seed / 2 ** 31) * 10 ** ((i % 8) - 2));
    }
    const out = new JsonBuffer(8);
    for (const ms of values) {
      out.at = 0;
      writeMicros(out, ms);
      expect(out.bytes.toString('latin1', 0, out.at), `bytes of ${ms}`).toBe(JSON.stringify(micros(ms)));
    }
  });

  it('writeEpochMs writes what JSON.stringify writes', () => {
    const values = [0, 1, 999, 1000, 1001, 1796627383005, 1796627383000, 1796627383090, 2 ** 53 - 1, 2 ** 53 + 2, -5, 1e21];
    for (let i = 0; i < 2000; i++) values.push(Math.round(1.7e12 + i * 7919.37));
    const out = new JsonBuffer(8);
    for (const ms of values) {
      out.at = 0;
      writeEpochMs(out, ms);
      expect(out.bytes.toString('latin1', 0, out.at), String(ms)).toBe(JSON.stringify(ms));
    }
  });
});
