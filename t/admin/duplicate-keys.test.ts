/**
 * Duplicate JSON keys in Admin API bodies (CVE-2022-25757):
 * one value is validated, stored and served, the same one everywhere. The
 * stored document is re-serialised from the parsed object, so GET never shows
 * the losing value and the data plane routes by exactly what GET returns.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { send, startUpstream, type Upstream } from '../dataplane/helpers.js';

describe('Admin API: duplicate JSON keys', () => {
  let gw: TestGateway;
  let a: Upstream;
  let b: Upstream;

  beforeAll(async () => {
    gw = await startTestGateway();
    a = await startUpstream((_req, res) => res.end('from-a'));
    b = await startUpstream((_req, res) => res.end('from-b'));
  });
  afterAll(async () => {
    await gw?.close();
    await a?.close();
    await b?.close();
  });

  const upstreamJson = (u: Upstream) => `{"type":"roundrobin","nodes":{"127.0.0.1:${u.port}":1}}`;

  /** Polls the data plane until `path` answers `status` (config applies asynchronously). */
  async function until(path: string, status: number): Promise<{ status: number; body: string }> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const res = await send(gw.dataPort, { path });
      if (res.status === status || Date.now() > deadline) return res;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it('duplicate uri and upstream: the last of each is stored, returned by GET and served; the first is nowhere', async () => {
    const body = `{"uri":"/dup-a","uri":"/dup-b","upstream":${upstreamJson(a)},"upstream":${upstreamJson(b)}}`;
    const put = await gw.admin('PUT', '/apisix/admin/routes/dup', body);
    expect(put.status).toBe(201);
    expect(put.body.value.uri).toBe('/dup-b');
    expect(put.body.value.upstream.nodes).toEqual({ [`127.0.0.1:${b.port}`]: 1 });

    const get = await gw.admin('GET', '/apisix/admin/routes/dup');
    expect(get.status).toBe(200);
    expect(get.body.value.uri).toBe('/dup-b');
    expect(get.body.value.upstream.nodes).toEqual({ [`127.0.0.1:${b.port}`]: 1 });
    // Re-serialised, not the raw body: the losing values are not in what is stored.
    expect(get.text).not.toContain('/dup-a');
    expect(get.text).not.toContain(`127.0.0.1:${a.port}`);
    expect(get.text.match(/"uri"/g)).toHaveLength(1);

    // The data plane serves exactly what GET returns.
    const served = await until('/dup-b', 200);
    expect(served).toMatchObject({ status: 200, body: 'from-b' });
    expect((await send(gw.dataPort, { path: '/dup-a' })).status).toBe(404);
    expect(a.seen).toHaveLength(0);
  });

  it('a valid first value cannot smuggle an invalid last one past validation (and the reverse is what is stored)', async () => {
    // Validation sees the value that would be stored: an invalid last value is refused, nothing stored.
    const bad = await gw.admin('PUT', '/apisix/admin/routes/dup2', `{"uri":"/dup2","uri":123,"upstream":${upstreamJson(b)}}`);
    expect(bad.status).toBe(400);
    expect(bad.body.error_msg).toMatch(/uri/);
    expect((await gw.admin('GET', '/apisix/admin/routes/dup2')).status).toBe(404);
    // An invalid first value is simply not the one that counts.
    const ok = await gw.admin('PUT', '/apisix/admin/routes/dup2', `{"uri":123,"uri":"/dup2","upstream":${upstreamJson(b)}}`);
    expect(ok.status).toBe(201);
    expect((await gw.admin('GET', '/apisix/admin/routes/dup2')).body.value.uri).toBe('/dup2');
    expect(await until('/dup2', 200)).toMatchObject({ status: 200, body: 'from-b' });
  });

  it('duplicate keys in a PATCH body resolve the same way', async () => {
    const patch = await gw.admin('PATCH', '/apisix/admin/routes/dup', `{"uri":"/dup-c","uri":"/dup-d","desc":"one","desc":"two"}`);
    expect(patch.status).toBe(200);
    const get = await gw.admin('GET', '/apisix/admin/routes/dup');
    expect(get.body.value).toMatchObject({ uri: '/dup-d', desc: 'two' });
    expect(get.text).not.toContain('"one"');
    expect(get.text).not.toContain('/dup-c');
    expect(await until('/dup-d', 200)).toMatchObject({ status: 200, body: 'from-b' });
    expect((await send(gw.dataPort, { path: '/dup-c' })).status).toBe(404);
  });
});
