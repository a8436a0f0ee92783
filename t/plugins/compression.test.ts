/**
 * gzip and brotli through real sockets: the client's bytes decompress to
 * exactly what the upstream sent, streamed chunk by chunk, and the cases that
 * must not be compressed (HEAD, already encoded, wrong type, short, not
 * accepted) pass through untouched.
 */
import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectRouteConfsRefused, startEnv, startStreamingUpstream, type Env, type StreamingUpstream } from './helpers.js';

let env: Env;
let streamer: StreamingUpstream;
/** 300 KB of compressible text with random parts, so chunking and the output loop are exercised. */
const BIG = Buffer.concat(Array.from({ length: 60 }, (_, i) => Buffer.concat([Buffer.from(`line ${i} `.repeat(300)), Buffer.from(randomBytes(1500).toString('hex'))])));

beforeAll(async () => {
  env = await startEnv();
  streamer = await startStreamingUpstream(BIG, 'text/html; charset=utf-8', 10000);
});
afterAll(async () => {
  streamer?.close();
  await env?.close();
});
beforeEach(() => {
  env.up.replies.clear();
});

interface Raw {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

function get(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${env.gw.dataUrl}${path}`, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('gzip', () => {
  it('compresses a matching response; it gunzips to the upstream bytes', async () => {
    env.up.replies.set('/gz1', { headers: { 'content-type': 'text/html', etag: '"v1"' }, body: BIG });
    await env.route('gz1', '/gz1', { gzip: { vary: true } });
    const res = await get('/gz1', { 'accept-encoding': 'gzip, deflate' });
    expect(res.status).toBe(200);
    expect(res.headers['content-encoding']).toBe('gzip');
    expect(res.headers['content-length']).toBeUndefined();
    expect(res.headers.vary).toBe('Accept-Encoding');
    expect(res.headers.etag).toBe('W/"v1"');
    expect(res.body.length).toBeLessThan(BIG.length);
    expect(gunzipSync(res.body).equals(BIG)).toBe(true);
  });

  it('streams a chunked upstream body and honours comp_level and types', async () => {
    await env.put('/apisix/admin/routes/gz2', {
      uri: '/gz2',
      plugins: { gzip: { types: ['text/html'], comp_level: 9 } },
      upstream: { type: 'roundrobin', nodes: { [streamer.node]: 1 } },
    });
    const res = await get('/gz2', { 'accept-encoding': 'gzip' });
    expect(res.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(res.body).equals(BIG)).toBe(true);
  });

  it('leaves alone: no Accept-Encoding, q=0, HEAD, other types, short bodies, other statuses, encoded responses', async () => {
    env.up.replies.set('/gz3/plain', { headers: { 'content-type': 'text/plain' }, body: BIG });
    env.up.replies.set('/gz3/short', { headers: { 'content-type': 'text/html', 'content-length': '4' }, body: 'tiny' });
    env.up.replies.set('/gz3/500', { status: 500, headers: { 'content-type': 'text/html' }, body: BIG });
    const pre = gzipSync(BIG);
    env.up.replies.set('/gz3/encoded', { headers: { 'content-type': 'text/html', 'content-encoding': 'gzip' }, body: pre });
    env.up.replies.set('/gz3/html', { headers: { 'content-type': 'text/html' }, body: BIG });
    await env.route('gz3', '/gz3/*', { gzip: {} });

    const none = await get('/gz3/html');
    expect(none.headers['content-encoding']).toBeUndefined();
    expect(none.body.equals(BIG)).toBe(true);
    const q0 = await get('/gz3/html', { 'accept-encoding': 'gzip;q=0, br' });
    expect(q0.headers['content-encoding']).toBeUndefined();
    const head = await get('/gz3/html', { 'accept-encoding': 'gzip' }, 'HEAD');
    expect(head.headers['content-encoding']).toBeUndefined();
    expect(head.body.length).toBe(0);
    const plain = await get('/gz3/plain', { 'accept-encoding': 'gzip' });
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body.equals(BIG)).toBe(true);
    const short = await get('/gz3/short', { 'accept-encoding': 'gzip' });
    expect(short.headers['content-encoding']).toBeUndefined();
    expect(short.body.toString()).toBe('tiny');
    const err = await get('/gz3/500', { 'accept-encoding': 'gzip' });
    expect(err.headers['content-encoding']).toBeUndefined();
    // Already gzip: passed through once, not wrapped again.
    const enc = await get('/gz3/encoded', { 'accept-encoding': 'gzip' });
    expect(enc.headers['content-encoding']).toBe('gzip');
    expect(enc.body.equals(pre)).toBe(true);
  });

  it('types "*" compresses any type', async () => {
    env.up.replies.set('/gz4', { headers: { 'content-type': 'application/json' }, body: '{"a":"' + 'x'.repeat(500) + '"}' });
    await env.route('gz4', '/gz4', { gzip: { types: '*' } });
    const res = await get('/gz4', { 'accept-encoding': 'gzip' });
    expect(res.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(res.body).toString()).toBe('{"a":"' + 'x'.repeat(500) + '"}');
  });

  it('refuses bad confs naming the field', async () => {
    await expectRouteConfsRefused(env, 'gzip', [
      [{ comp_level: 10 }, /comp_level/],
      [{ types: [] }, /types/],
      [{ min_length: 0 }, /min_length/],
      [{ http_version: 2 }, /http_version/],
    ]);
  });
});

describe('brotli', () => {
  it('compresses for br and * clients; it decompresses to the upstream bytes', async () => {
    env.up.replies.set('/br1', { headers: { 'content-type': 'text/html', etag: '"v1"', 'last-modified': 'Mon, 07 Dec 2026 00:00:00 GMT' }, body: BIG });
    await env.route('br1', '/br1', { brotli: { vary: true, comp_level: 4 } });
    for (const accept of ['br', 'gzip, br;q=0.5', '*']) {
      const res = await get('/br1', { 'accept-encoding': accept });
      expect(res.headers['content-encoding'], accept).toBe('br');
      expect(res.headers.etag).toBeUndefined();
      expect(res.headers['last-modified']).toBeUndefined();
      expect(res.headers.vary).toBe('Accept-Encoding');
      expect(brotliDecompressSync(res.body).equals(BIG)).toBe(true);
    }
    const refused = await get('/br1', { 'accept-encoding': 'br;q=0' });
    expect(refused.headers['content-encoding']).toBeUndefined();
  });

  it('streams a chunked upstream body', async () => {
    await env.put('/apisix/admin/routes/br2', {
      uri: '/br2',
      plugins: { brotli: {} },
      upstream: { type: 'roundrobin', nodes: { [streamer.node]: 1 } },
    });
    const res = await get('/br2', { 'accept-encoding': 'br' });
    expect(res.headers['content-encoding']).toBe('br');
    expect(brotliDecompressSync(res.body).equals(BIG)).toBe(true);
  });

  it('with gzip on the same route, a br client gets brotli once and a gzip client gzip once', async () => {
    env.up.replies.set('/both', { headers: { 'content-type': 'text/html' }, body: BIG });
    await env.route('both', '/both', { brotli: {}, gzip: {} });
    const br = await get('/both', { 'accept-encoding': 'gzip, br' });
    expect(br.headers['content-encoding']).toBe('br');
    expect(brotliDecompressSync(br.body).equals(BIG)).toBe(true);
    const gz = await get('/both', { 'accept-encoding': 'gzip' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(gz.body).equals(BIG)).toBe(true);
    const head = await get('/both', { 'accept-encoding': 'gzip, br' }, 'HEAD');
    expect(head.headers['content-encoding']).toBeUndefined();
  });

  it('compresses a plugin exit as well', async () => {
    await env.route('br3', '/br3', { brotli: { types: '*', min_length: 1 }, 'ip-restriction': { blacklist: ['127.0.0.1'] } });
    const res = await get('/br3', { 'accept-encoding': 'br' });
    expect(res.status).toBe(403);
    expect(res.headers['content-encoding']).toBe('br');
    expect(JSON.parse(brotliDecompressSync(res.body).toString())).toEqual({ message: 'Your IP address is not allowed' });
  });

  it('refuses bad confs naming the field', async () => {
    await expectRouteConfsRefused(env, 'brotli', [
      [{ comp_level: 12 }, /comp_level/],
      [{ lgwin: 9 }, /lgwin/],
      [{ mode: 3 }, /mode/],
    ]);
  });
});
