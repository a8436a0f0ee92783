/**
 * Bad request bodies (none may change state or crash the process):
 * too big (declared and chunked), invalid JSON, wrong shape, empty; and the
 * form content type curl -d sends is read as JSON.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdmin, type AdminHarness } from './harness.js';

let h: AdminHarness;
beforeAll(async () => {
  h = await startAdmin({ config: { deployment: { admin: { max_body_size: 4096 } } } });
});
afterAll(() => h.close());

const stored = async (): Promise<number> => (await h.store.list('/apisix/')).items.length;

/** Sends a raw HTTP/1.1 request and resolves with the status line and body. */
function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let out = '';
    sock.on('data', (d) => (out += d.toString()));
    sock.on('end', () => resolve(out));
    sock.on('close', () => resolve(out));
    sock.on('error', (err) => (out ? resolve(out) : reject(err)));
    sock.write(text);
  });
}

describe('request bodies', () => {
  it('curl -d (application/x-www-form-urlencoded) is read as JSON', async () => {
    const res = await h.req('PUT', '/apisix/admin/upstreams/1', {
      body: '{"nodes":{"127.0.0.1:1980":1},"type":"roundrobin"}',
      contentType: 'application/x-www-form-urlencoded',
    });
    expect(res.status).toBe(201);
    expect(res.body.value.nodes).toEqual({ '127.0.0.1:1980': 1 });
    // Other types are refused (415) since cross-site forms can send text/plain: t/admin/cross-origin.test.ts.
    const text = await h.req('PATCH', '/apisix/admin/upstreams/1', { body: '{"desc":"t"}', contentType: 'text/plain' });
    expect(text.status).toBe(415);
    const odd = await h.req('PATCH', '/apisix/admin/upstreams/1', { body: '{"desc":"o"}', contentType: 'application/x-whatever; charset=latin1' });
    expect(odd.status).toBe(415);
    expect((await h.req('GET', '/apisix/admin/upstreams/1')).body.value.desc).toBeUndefined();
  });

  it('a body without a content type is read as JSON too', async () => {
    const key = h.adminKey;
    const body = '{"nodes":{"127.0.0.1:1980":1}}';
    const out = await raw(
      h.port,
      `PUT /apisix/admin/upstreams/nct HTTP/1.1\r\nHost: x\r\nX-API-KEY: ${key}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    expect(out).toMatch(/^HTTP\/1\.1 201/);
  });

  it('refuses a body over max_body_size (declared length) without storing it', async () => {
    const before = await stored();
    const big = JSON.stringify({ nodes: { '127.0.0.1:1980': 1 }, desc: 'x'.repeat(5000) });
    const res = await h.req('PUT', '/apisix/admin/upstreams/big', { body: big });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      error_msg: `invalid request body: request size ${Buffer.byteLength(big)} is greater than the maximum size 4096 allowed`,
    });
    expect(await stored()).toBe(before);
  });

  it('refuses a chunked body once it passes the limit', async () => {
    const chunk = 'x'.repeat(3000);
    const out = await raw(
      h.port,
      `PUT /apisix/admin/upstreams/chunked HTTP/1.1\r\nHost: x\r\nX-API-KEY: ${h.adminKey}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n` +
        `${(3000).toString(16)}\r\n${chunk}\r\n${(3000).toString(16)}\r\n${chunk}\r\n0\r\n\r\n`,
    );
    expect(out).toMatch(/^HTTP\/1\.1 400/);
    expect(out).toContain('is greater than the maximum size 4096 allowed');
    expect(await h.store.get('/apisix/upstreams/chunked')).toBeUndefined();
  });

  it('invalid JSON gives the parse error and echoes the raw body', async () => {
    const res = await h.req('PUT', '/apisix/admin/routes/1', { body: '{"uri": "/a",', contentType: 'application/json' });
    expect(res.status).toBe(400);
    expect(res.body.error_msg).toMatch(/^invalid request body: /);
    expect(res.body.req_body).toBe('{"uri": "/a",');
    expect(await h.store.get('/apisix/routes/1')).toBeUndefined();
  });

  it('an empty body on PUT/POST is missing configurations', async () => {
    for (const [m, p] of [
      ['PUT', '/apisix/admin/routes/1'],
      ['POST', '/apisix/admin/routes'],
    ] as const) {
      const none = await h.req(m, p);
      expect(none.status).toBe(400);
      expect(none.body).toEqual({ error_msg: 'missing configurations' });
      const empty = await h.req(m, p, { body: '' , contentType: 'application/json' });
      expect(empty.body).toEqual({ error_msg: 'missing configurations' });
      const nul = await h.req(m, p, { body: 'null' });
      expect(nul.body).toEqual({ error_msg: 'missing configurations' });
    }
  });

  it('a body of the wrong shape is a clear 400', async () => {
    const arr = await h.req('PUT', '/apisix/admin/routes/1', { body: '[1,2]' });
    expect(arr.status).toBe(400);
    expect(arr.body).toEqual({ error_msg: 'invalid configuration: wrong type: expected object, got array' });
    const str = await h.req('PUT', '/apisix/admin/routes/1', { body: '"x"' });
    expect(str.status).toBe(400);
    const unknownProp = await h.req('PUT', '/apisix/admin/routes/1', { body: { uri: '/a', upstream_id: 1, foo: 1 } });
    expect(unknownProp.status).toBe(400);
    expect(unknownProp.body.error_msg).toContain('foo');
    expect(await h.store.get('/apisix/routes/1')).toBeUndefined();
  });

  it('keeps serving after all of the above', async () => {
    expect((await h.req('GET', '/apisix/admin/upstreams/1')).status).toBe(200);
  });
});
