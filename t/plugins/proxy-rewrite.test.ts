import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { send, startEnv, type Env } from './helpers.js';

let env: Env;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.close();
});
beforeEach(() => {
  env.up.seen.length = 0;
});

function last() {
  const r = env.up.seen.at(-1);
  if (!r) throw new Error('the upstream saw no request');
  return r;
}

describe('proxy-rewrite', () => {
  it('rewrites the path with variables and keeps the client query', async () => {
    await env.route('pr1', '/old/*', { 'proxy-rewrite': { uri: '/new/$arg_name/${http_x_tag}' } });
    const res = await send(`${env.gw.dataUrl}/old/x?name=abc&z=1`, { headers: { 'x-tag': 't1' } });
    expect(res.status).toBe(200);
    expect(last().url).toBe('/new/abc/t1?name=abc&z=1');
  });

  it('puts a query written in uri before the client query', async () => {
    await env.route('pr2', '/q', { 'proxy-rewrite': { uri: '/target?from=conf' } });
    await send(`${env.gw.dataUrl}/q?b=2`);
    expect(last().url).toBe('/target?from=conf&b=2');
    await send(`${env.gw.dataUrl}/q`);
    expect(last().url).toBe('/target?from=conf');
  });

  it('never lets a variable value add a query separator or a CR/LF to the request line', async () => {
    await env.route('pr3', '/inj', { 'proxy-rewrite': { uri: '/p/$arg_v?k=$arg_w' } });
    await send(`${env.gw.dataUrl}/inj?v=a%3Fadmin%3D1&w=x%0D%0AInjected:%201`);
    const url = last().url;
    expect(url.startsWith('/p/a%3Fadmin')).toBe(true);
    expect(url).not.toContain('\r');
    expect(url).not.toContain('\n');
    expect(last().headers['injected']).toBeUndefined();
  });

  it('rewrites with regex_uri captures, first matching pair wins, and non-matching paths pass unchanged', async () => {
    await env.route('pr4', '/api/*', {
      'proxy-rewrite': { regex_uri: ['^/api/v1/(\\w+)/(\\w+)$', '/svc/$2/$1', '^/api/(.*)', '/rest/${1}'] },
    });
    await send(`${env.gw.dataUrl}/api/v1/users/42?x=1`);
    expect(last().url).toBe('/svc/42/users?x=1');
    await send(`${env.gw.dataUrl}/api/other/thing`);
    expect(last().url).toBe('/rest/other/thing');
    await env.route('pr4b', '/keep/*', { 'proxy-rewrite': { regex_uri: ['^/nomatch$', '/x'] } });
    await send(`${env.gw.dataUrl}/keep/me`);
    expect(last().url).toBe('/keep/me');
  });

  it('sets the upstream Host and method', async () => {
    await env.route('pr5', '/hm', { 'proxy-rewrite': { host: 'rewritten.example.com', method: 'POST' } });
    await send(`${env.gw.dataUrl}/hm`);
    expect(last().headers.host).toBe('rewritten.example.com');
    expect(last().method).toBe('POST');
  });

  it('applies header add, set and remove with $var and regex captures', async () => {
    await env.route('pr6', '/h/*', {
      'proxy-rewrite': {
        regex_uri: ['^/h/(\\w+)', '/h2/$1'],
        headers: {
          add: { 'X-Added': 'a-$1', 'X-Multi': ['m1', 'm2'] },
          set: { 'X-Set': '${remote_addr}', 'X-Api-Version': 'v2' },
          remove: ['X-Secret'],
        },
      },
    });
    await send(`${env.gw.dataUrl}/h/seg`, { headers: { 'x-secret': 's', 'x-api-version': 'v1', 'x-added': 'orig' } });
    const h = last().headers;
    expect(last().url).toBe('/h2/seg');
    expect(h['x-added']).toBe('orig, a-seg');
    expect(h['x-multi']).toBe('m1, m2');
    expect(h['x-set']).toBe('127.0.0.1');
    expect(h['x-api-version']).toBe('v2');
    expect(h['x-secret']).toBeUndefined();
  });

  it('accepts the legacy flat headers map as "set"', async () => {
    await env.route('pr7', '/legacy', { 'proxy-rewrite': { headers: { 'X-Legacy': 'yes', 'X-Num': 5 } } });
    await send(`${env.gw.dataUrl}/legacy`, { headers: { 'x-legacy': 'no' } });
    expect(last().headers['x-legacy']).toBe('yes');
    expect(last().headers['x-num']).toBe('5');
  });

  it('rejects bad confs with a 400 naming the problem, and stores nothing', async () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ uri: 'no-slash' }, /uri/],
      [{ regex_uri: ['^/a', '/b', '^/c'] }, /even number/],
      [{ regex_uri: ['^/(unclosed', '/b'] }, /invalid regex_uri/],
      [{ method: 'FETCH' }, /method/],
      [{ host: 'bad host!' }, /host/],
      [{ headers: { 'Bad Header': 'x' } }, /header/],
    ];
    for (const [conf, msg] of bad) {
      const res = await env.gw.admin('PUT', '/apisix/admin/routes/bad', {
        uri: '/bad',
        plugins: { 'proxy-rewrite': conf },
        upstream: { type: 'roundrobin', nodes: { [env.up.node]: 1 } },
      });
      expect(res.status, JSON.stringify(conf)).toBe(400);
      expect(res.body.error_msg).toMatch(/proxy-rewrite/);
      expect(res.body.error_msg).toMatch(msg);
    }
    expect((await env.gw.admin('GET', '/apisix/admin/routes/bad')).status).toBe(404);
  });
});
