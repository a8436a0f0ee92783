/**
 * apisix.trusted_addresses: only a trusted peer (a load balancer in front of
 * Portico) may pass an X-Forwarded-For chain on; it is kept and the peer
 * appended. Everyone else's is replaced by the socket address.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { rawRequest, send, startPlane, startUpstream, type Plane, type Upstream } from './helpers.js';

let trusting: Plane;
let other: Plane;
let echo: Upstream;

beforeAll(async () => {
  echo = await startUpstream();
  const upstream = { nodes: { [`127.0.0.1:${echo.port}`]: 1 } };
  trusting = await startPlane({ config: { apisix: { trusted_addresses: ['127.0.0.0/8'] } } });
  other = await startPlane({ config: { apisix: { trusted_addresses: ['10.0.0.0/8', '::1'] } } });
  await trusting.put('/apisix/routes/x', { uri: '/x', upstream });
  await other.put('/apisix/routes/x', { uri: '/x', upstream });
});
afterAll(async () => {
  await trusting?.close();
  await other?.close();
  await echo?.close();
});

const xff = async (plane: Plane, headers: Record<string, string> = {}) =>
  JSON.parse((await send(plane.port, { path: '/x', headers })).body).headers['x-forwarded-for'] as string;

it('a trusted peer keeps its chain and is appended to it', async () => {
  expect(await xff(trusting, { 'x-forwarded-for': '203.0.113.7, 10.1.1.1' })).toBe('203.0.113.7, 10.1.1.1, 127.0.0.1');
  expect(await xff(trusting)).toBe('127.0.0.1');
});

it('repeated X-Forwarded-For lines from a trusted peer are kept in order, then the peer appended', async () => {
  const reply = await rawRequest(
    trusting.port,
    'GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-For: 10.1.1.1\r\nConnection: close\r\n\r\n',
  );
  expect(JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)).headers['x-forwarded-for']).toBe('203.0.113.7, 10.1.1.1, 127.0.0.1');
});

it('a peer outside the list cannot plant addresses', async () => {
  expect(await xff(other, { 'x-forwarded-for': '203.0.113.7' })).toBe('127.0.0.1');
});

it('a bad CIDR in the config is refused at start-up', async () => {
  await expect(startPlane({ config: { apisix: { trusted_addresses: ['not-an-ip'] } } })).rejects.toThrow(/apisix\.trusted_addresses: .*not-an-ip/);
});
