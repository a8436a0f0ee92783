/**
 * proxy-cache's memory strategy through real sockets: every Apisix-Cache-Status
 * (MISS, HIT, EXPIRED, BYPASS), PURGE, the conf fields that decide what is kept,
 * the zone's byte bound, and a body past the entry limit streamed through.
 * The upstream counts what reaches it, so a HIT is proven by its silence.
 */
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectRouteConfsRefused, send, startEnv, startStreamingUpstream, type Env, type StreamingUpstream } from './helpers.js';

let env: Env;
let big: StreamingUpstream;
const BIG = Buffer.alloc(300 * 1024, 'abcdefgh');

beforeAll(async () => {
  env = await startEnv({
    apisix: {
      proxy_cache: {
        zones: [
          { name: 'memory_cache', memory_size: '50m' },
          { name: 'tiny', memory_size: '64k', max_entry_size: '32k' },
          { name: 'disk_cache_one', memory_size: '50m', disk_size: '1G', disk_path: '/tmp/disk_cache_one', cache_levels: '1:2' },
        ],
      },
    },
  });
  // Streams a body larger than any entry limit, in chunks, without Content-Length.
  big = await startStreamingUpstream(BIG, 'application/octet-stream');
});
afterAll(async () => {
  big?.close();
  await env?.close();
});
beforeEach(() => {
  env.up.seen.length = 0;
  env.up.replies.clear();
});

const mem = (extra: Record<string, unknown> = {}) => ({ 'proxy-cache': { cache_strategy: 'memory', cache_zone: 'memory_cache', ...extra } });
const url = (path: string) => `${env.gw.dataUrl}${path}`;
const upstreamCalls = (prefix: string) => env.up.seen.filter((s) => s.url.startsWith(prefix)).length;

describe('proxy-cache', () => {
  it('MISS stores, HIT answers from the cache with Age and the same body and headers', async () => {
    env.up.replies.set('/pc1', { headers: { 'x-up': 'one', 'content-type': 'text/plain' }, body: 'cached body' });
    await env.route('pc1', '/pc1', mem());
    const miss = await send(url('/pc1'));
    expect(miss.status).toBe(200);
    expect(miss.headers['apisix-cache-status']).toBe('MISS');
    expect(miss.body).toBe('cached body');
    const hit = await send(url('/pc1'));
    expect(hit.status).toBe(200);
    expect(hit.headers['apisix-cache-status']).toBe('HIT');
    expect(hit.body).toBe('cached body');
    expect(hit.headers['x-up']).toBe('one');
    expect(hit.headers['content-type']).toBe('text/plain');
    expect(hit.headers.age).toMatch(/^\d+$/);
    expect(hit.headers['content-length']).toBe('11');
    expect(upstreamCalls('/pc1')).toBe(1);
    // The key is $host$request_uri: another query is another entry.
    const other = await send(url('/pc1?v=2'));
    expect(other.headers['apisix-cache-status']).toBe('MISS');
    // HEAD is answered from the GET's entry, without a body.
    const head = await send(url('/pc1'), { method: 'HEAD' });
    expect(head.headers['apisix-cache-status']).toBe('HIT');
    expect(head.body).toBe('');
    expect(upstreamCalls('/pc1')).toBe(2);
  });

  it('EXPIRED after cache_ttl, then stored again', async () => {
    await env.route('pc2', '/pc2', mem({ cache_ttl: 1 }));
    expect((await send(url('/pc2'))).headers['apisix-cache-status']).toBe('MISS');
    expect((await send(url('/pc2'))).headers['apisix-cache-status']).toBe('HIT');
    await new Promise((r) => setTimeout(r, 1300));
    expect((await send(url('/pc2'))).headers['apisix-cache-status']).toBe('EXPIRED');
    expect((await send(url('/pc2'))).headers['apisix-cache-status']).toBe('HIT');
    expect(upstreamCalls('/pc2')).toBe(2);
  });

  it('BYPASS with cache_bypass; no_cache keeps a response out; methods and statuses outside the lists are not kept', async () => {
    env.up.replies.set('/pc3/err', { status: 500, body: 'oops' });
    await env.route('pc3', '/pc3/*', mem({ cache_bypass: ['$arg_bypass'], no_cache: ['$arg_nocache', '$upstream_http_x_no_cache'] }));
    await send(url('/pc3/a'));
    const bypass = await send(url('/pc3/a?bypass=1'));
    expect(bypass.headers['apisix-cache-status']).toBe('BYPASS');
    // "0" and empty mean no.
    await send(url('/pc3/a?bypass=0'));
    expect((await send(url('/pc3/a?bypass=0'))).headers['apisix-cache-status']).toBe('HIT');

    for (let i = 0; i < 2; i++) expect((await send(url('/pc3/b?nocache=1'))).headers['apisix-cache-status']).toBe('MISS');
    env.up.replies.set('/pc3/c', { headers: { 'x-no-cache': 'yes' }, body: 'fresh' });
    for (let i = 0; i < 2; i++) expect((await send(url('/pc3/c'))).headers['apisix-cache-status']).toBe('MISS');
    for (let i = 0; i < 2; i++) expect((await send(url('/pc3/err'))).headers['apisix-cache-status']).toBe('MISS');
    for (let i = 0; i < 2; i++) expect((await send(url('/pc3/post'), { method: 'POST', body: 'x' })).headers['apisix-cache-status']).toBe('MISS');
    env.up.replies.set('/pc3/cookie', { headers: { 'set-cookie': 'session=secret' }, body: 'personal' });
    for (let i = 0; i < 2; i++) expect((await send(url('/pc3/cookie'))).headers['apisix-cache-status']).toBe('MISS');
    expect(upstreamCalls('/pc3/')).toBe(13);
  });

  it('PURGE deletes an entry (200), a missing one is 404', async () => {
    await env.route('pc4', '/pc4', mem());
    await send(url('/pc4'));
    expect((await send(url('/pc4'))).headers['apisix-cache-status']).toBe('HIT');
    expect((await send(url('/pc4'), { method: 'PURGE' })).status).toBe(200);
    expect((await send(url('/pc4'), { method: 'PURGE' })).status).toBe(404);
    expect((await send(url('/pc4'))).headers['apisix-cache-status']).toBe('MISS');
    expect(upstreamCalls('/pc4')).toBe(2);
  });

  it('cache_control: the upstream decides what is kept and for how long; the client can bypass or ask for fresher', async () => {
    env.up.replies.set('/pc5/nostore', { headers: { 'cache-control': 'no-store' } });
    env.up.replies.set('/pc5/private', { headers: { 'cache-control': 'private, max-age=60' } });
    env.up.replies.set('/pc5/none', {});
    env.up.replies.set('/pc5/short', { headers: { 'cache-control': 'max-age=1' } });
    env.up.replies.set('/pc5/long', { headers: { 'cache-control': 'public, max-age=600' } });
    await env.route('pc5', '/pc5/*', mem({ cache_control: true }));
    for (const p of ['nostore', 'private', 'none']) {
      await send(url(`/pc5/${p}`));
      expect((await send(url(`/pc5/${p}`))).headers['apisix-cache-status'], p).toBe('MISS');
    }
    await send(url('/pc5/short'));
    expect((await send(url('/pc5/short'))).headers['apisix-cache-status']).toBe('HIT');
    await new Promise((r) => setTimeout(r, 1300));
    expect((await send(url('/pc5/short'))).headers['apisix-cache-status']).toBe('EXPIRED');

    await send(url('/pc5/long'));
    expect((await send(url('/pc5/long'))).headers['apisix-cache-status']).toBe('HIT');
    expect((await send(url('/pc5/long'), { headers: { 'cache-control': 'no-cache' } })).headers['apisix-cache-status']).toBe('BYPASS');
    expect((await send(url('/pc5/long'), { headers: { 'cache-control': 'min-fresh=1000' } })).headers['apisix-cache-status']).toBe('EXPIRED');
    const onlyCached = await send(url('/pc5/never-seen'), { headers: { 'cache-control': 'only-if-cached' } });
    expect(onlyCached.status).toBe(504);
  });

  it('hide_cache_headers drops Cache-Control and Expires on misses and hits', async () => {
    env.up.replies.set('/pc6', { headers: { 'cache-control': 'max-age=60', expires: 'Thu, 01 Jan 2099 00:00:00 GMT' } });
    await env.route('pc6', '/pc6', mem({ hide_cache_headers: true }));
    const miss = await send(url('/pc6'));
    const hit = await send(url('/pc6'));
    expect(hit.headers['apisix-cache-status']).toBe('HIT');
    for (const r of [miss, hit]) {
      expect(r.headers['cache-control']).toBeUndefined();
      expect(r.headers.expires).toBeUndefined();
    }
  });

  it('a streamed body past max_entry_size passes through whole and is not kept', async () => {
    await env.put('/apisix/admin/routes/pc7', {
      uri: '/pc7',
      plugins: { 'proxy-cache': { cache_strategy: 'memory', cache_zone: 'tiny' } },
      upstream: { type: 'roundrobin', nodes: { [big.node]: 1 } },
    });
    const before = big.hits();
    for (let i = 0; i < 2; i++) {
      const res = await fetch(url('/pc7'));
      expect(res.headers.get('apisix-cache-status')).toBe('MISS');
      expect(Buffer.from(await res.arrayBuffer()).equals(BIG)).toBe(true);
    }
    expect(big.hits() - before).toBe(2);
  });

  it('a zone is bounded by memory_size: the least recently used entry goes first', async () => {
    env.up.replies.set('/pc8/', { body: 'z'.repeat(20 * 1024) });
    await env.route('pc8', '/pc8/*', { 'proxy-cache': { cache_strategy: 'memory', cache_zone: 'tiny' } });
    for (const p of ['a', 'b', 'c', 'd']) await send(url(`/pc8/${p}`));
    // 64k holds three 20k entries: a was evicted, d is there.
    expect((await send(url('/pc8/d'))).headers['apisix-cache-status']).toBe('HIT');
    expect((await send(url('/pc8/a'))).headers['apisix-cache-status']).toBe('MISS');
  });

  it('a HIT still goes through gzip, so each client gets its own encoding', async () => {
    env.up.replies.set('/pc9', { headers: { 'content-type': 'text/html' }, body: '<p>' + 'hello '.repeat(100) + '</p>' });
    await env.route('pc9', '/pc9', { ...mem(), gzip: {} });
    await send(url('/pc9'));
    const hit = await new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
      import('node:http').then(({ get }) => {
        get(url('/pc9'), { headers: { 'accept-encoding': 'gzip' } }, (res) => {
          const parts: Buffer[] = [];
          res.on('data', (c: Buffer) => parts.push(c));
          res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(parts) }));
        }).on('error', reject);
      }, reject);
    });
    expect(hit.headers['apisix-cache-status']).toBe('HIT');
    expect(hit.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(hit.body).toString()).toBe('<p>' + 'hello '.repeat(100) + '</p>');
    expect((await send(url('/pc9'))).body).toBe('<p>' + 'hello '.repeat(100) + '</p>');
  });

  it('refuses the disk strategy, unknown zones and what APISIX refuses', async () => {
    await expectRouteConfsRefused(env, 'proxy-cache', [
      [{}, /cache_strategy disk is not supported by Portico/],
      [{ cache_strategy: 'disk', cache_zone: 'memory_cache' }, /cache_strategy disk is not supported/],
      [{ cache_strategy: 'memory' }, /invalid or empty cache_zone for cache_strategy: memory/],
      [{ cache_strategy: 'memory', cache_zone: 'nope' }, /cache_zone nope not found/],
      [{ cache_strategy: 'memory', cache_zone: 'memory_cache', cache_key: ['$request_method'] }, /cache_key variable \$request_method unsupported/],
      [{ cache_strategy: 'memory', cache_zone: 'memory_cache', cache_method: ['PUT'] }, /cache_method/],
      [{ cache_strategy: 'memory', cache_zone: 'memory_cache', cache_ttl: 0 }, /cache_ttl/],
    ]);
  });
});
