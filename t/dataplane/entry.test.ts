/**
 * The data plane's entry on fastify: whatever the method, the request-target's
 * form or the content type, a request reaches the same pipeline and its body
 * reaches the upstream untouched, as on a bare node:http server. Fastify's own
 * answers (415 for an unparsable content type, its 404, its 400 for a bad URL,
 * a JSON parser reading the body) must never show through.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { rawRequest, startPlane, startUpstream, type Plane, type Upstream } from './helpers.js';

let up: Upstream;
let plane: Plane;

beforeAll(async () => {
  up = await startUpstream();
  plane = await startPlane();
  await plane.put('/apisix/routes/1', { uri: '/*', upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${up.port}`]: 1 } } });
});

afterAll(async () => {
  await plane.close();
  await up.close();
});

function statusLine(raw: string): string {
  return raw.slice(0, raw.indexOf('\r\n'));
}

function bodyOf(raw: string): string {
  return raw.slice(raw.indexOf('\r\n\r\n') + 4);
}

async function lastSeenAfter(text: string): Promise<{ raw: string; seen: Upstream['seen'][number] | undefined }> {
  const before = up.seen.length;
  const raw = await rawRequest(plane.port, text);
  return { raw, seen: up.seen.length > before ? up.seen[up.seen.length - 1] : undefined };
}

describe('data plane entry on fastify', () => {
  test('an absolute-form request-target with a JSON body is proxied, body untouched', async () => {
    const { raw, seen } = await lastSeenAfter(
      'POST http://b.example/post?x=1 HTTP/1.1\r\nHost: a.example\r\nContent-Type: application/json\r\nContent-Length: 7\r\nConnection: close\r\n\r\n{"a":1}',
    );
    expect(statusLine(raw)).toBe('HTTP/1.1 200 OK');
    expect(seen).toMatchObject({ method: 'POST', url: '/post?x=1', body: '{"a":1}' });
  });

  test('a content type fastify cannot parse is no reason to refuse: the body is proxied as sent', async () => {
    const { raw, seen } = await lastSeenAfter('POST /x HTTP/1.1\r\nHost: a\r\nContent-Type: ;;;\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc');
    expect(statusLine(raw)).toBe('HTTP/1.1 200 OK');
    expect(seen).toMatchObject({ method: 'POST', body: 'abc' });
    expect(seen!.headers['content-type']).toBe(';;;');
  });

  test.each(['PURGE', 'MKCOL', 'PROPFIND', 'QUERY', 'SEARCH', 'UNLOCK'])('method %s reaches the upstream', async (method) => {
    const { raw, seen } = await lastSeenAfter(`${method} /m HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi`);
    expect(statusLine(raw)).toBe('HTTP/1.1 200 OK');
    expect(seen).toMatchObject({ method, url: '/m', body: 'hi' });
  });

  test('HEAD gets the upstream status and no body', async () => {
    const raw = await rawRequest(plane.port, 'HEAD /h HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(statusLine(raw)).toBe('HTTP/1.1 200 OK');
    expect(bodyOf(raw)).toBe('');
  });

  test("a request-target the router cannot place and a bad escape get APISIX's 400, not fastify's", async () => {
    for (const target of ['*', '/%zz']) {
      const raw = await rawRequest(plane.port, `OPTIONS ${target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
      expect(statusLine(raw)).toBe('HTTP/1.1 400 Bad Request');
      expect(JSON.parse(bodyOf(raw))).toEqual({ error_msg: 'invalid request path' });
    }
  });

  test('a path fastify would count as too long for a parameter is routed and proxied', async () => {
    const path = `/${'a'.repeat(5000)}`;
    const { raw, seen } = await lastSeenAfter(`GET ${path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
    expect(statusLine(raw)).toBe('HTTP/1.1 200 OK');
    expect(seen?.url).toBe(path);
  });

  test('a non-GET upgrade request is proxied as a plain request with its body', async () => {
    const { raw, seen } = await lastSeenAfter('POST /u HTTP/1.1\r\nHost: a\r\nUpgrade: foo\r\nConnection: upgrade\r\nContent-Length: 3\r\n\r\nabc');
    expect(statusLine(raw)).toBe('HTTP/1.1 200 OK');
    expect(seen).toMatchObject({ method: 'POST', url: '/u', body: 'abc' });
  });

  test('a GET upgrade on a route without WebSocket is proxied as a plain request, then the connection closes', async () => {
    const { raw, seen } = await lastSeenAfter('GET /g HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    expect(statusLine(raw)).toBe('HTTP/1.1 200 OK');
    expect(seen).toMatchObject({ method: 'GET', url: '/g' });
  });
});
