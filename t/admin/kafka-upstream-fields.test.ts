/**
 * Upstreams with `scheme: kafka` carrying the fields a proxied upstream uses
 * and the kafka takeover does not (issue 17: a 5xx was once seen on an Admin
 * write of such a route and never reproduced): retries, timeouts, hashing,
 * pass_host, tls, health checks, keepalive pools, odd node lists; inline in a
 * route, named (upstream_id) and through a service, with plugins beside them.
 * Every write answers 201 or a 400 with an error_msg, never a 5xx; a refused
 * write stores nothing; an accepted route still hands its WebSocket to the
 * pub/sub handler (the handshake completes although no broker listens) and
 * answers a plain request without a 5xx of its own.
 */
import { WebSocket } from 'ws';
import { describe, expect, test } from 'vitest';
import { useGatewayWithEcho, type TestGateway } from '../helpers/gateway.js';

/** Nothing listens on port 1: the takeover must not need a broker to accept the handshake. */
const kafka = (extra: Record<string, unknown>) => ({ type: 'none', scheme: 'kafka', nodes: { '127.0.0.1:1': 1 }, ...extra });

const upstreamFields: Array<[string, Record<string, unknown>]> = [
  ['retries', { retries: 3 }],
  ['retries 0', { retries: 0 }],
  ['retry_timeout', { retry_timeout: 5 }],
  ['timeout', { timeout: { connect: 1, send: 1, read: 1 } }],
  ['a tiny connect timeout', { timeout: { connect: 0.001, send: 1, read: 1 } }],
  ['chash on a header', { type: 'chash', hash_on: 'header', key: 'x' }],
  ['chash on the consumer', { type: 'chash', hash_on: 'consumer' }],
  ['chash on a cookie', { type: 'chash', hash_on: 'cookie', key: 'a' }],
  ['chash on vars', { type: 'chash', hash_on: 'vars', key: 'remote_addr' }],
  ['ewma', { type: 'ewma' }],
  ['least_conn', { type: 'least_conn' }],
  ['pass_host rewrite', { pass_host: 'rewrite', upstream_host: 'kafka.example' }],
  ['pass_host node', { pass_host: 'node' }],
  ['tls.verify true', { tls: { verify: true } }],
  ['tls.verify false', { tls: { verify: false } }],
  ['an active health check', { checks: { active: { http_path: '/', healthy: { interval: 1, successes: 1 }, unhealthy: { interval: 1, http_failures: 1 } } } }],
  ['a tcp health check', { checks: { active: { type: 'tcp' } } }],
  ['a passive health check', { checks: { active: { http_path: '/' }, passive: { unhealthy: { http_failures: 2 } } } }],
  ['keepalive_pool', { keepalive_pool: { size: 1, idle_timeout: 1, requests: 1 } }],
  ['nodes as a list', { nodes: [{ host: '127.0.0.1', port: 1, weight: 1 }] }],
  ['a node without a port', { nodes: { '127.0.0.1': 1 } }],
  ['an IPv6 node', { nodes: { '[::1]:1': 1 } }],
  ['a node of weight 0', { nodes: { '127.0.0.1:1': 0 } }],
  ['no nodes', { nodes: {} }],
];

const routeExtras: Array<[string, Record<string, unknown>]> = [
  ['nothing else', {}],
  ['a route timeout', { timeout: { connect: 1, send: 1, read: 1 } }],
  ['enable_websocket', { enable_websocket: true }],
  ['kafka-proxy', { plugins: { 'kafka-proxy': { sasl: { username: 'u', password: 'p' } } } }],
  ['proxy-rewrite', { plugins: { 'proxy-rewrite': { uri: '/x', host: 'h' } } }],
  ['response-rewrite', { plugins: { 'response-rewrite': { body: 'x' } } }],
  ['api-breaker', { plugins: { 'api-breaker': { break_response_code: 502 } } }],
  ['proxy-cache', { plugins: { 'proxy-cache': {} } }],
  ['limit-conn', { plugins: { 'limit-conn': { conn: 1, burst: 0, default_conn_delay: 0.1, key: 'remote_addr' } } }],
  ['traffic-split to a kafka upstream', { plugins: { 'traffic-split': { rules: [{ weighted_upstreams: [{ upstream: kafka({ type: 'roundrobin', retries: 2, checks: { active: { http_path: '/' } } }), weight: 1 }] }] } } }],
];

async function handshake(gw: TestGateway, uri: string): Promise<string> {
  const ws = new WebSocket(`ws://127.0.0.1:${gw.dataPort}${uri}`);
  ws.on('error', () => undefined);
  return new Promise((resolve) => {
    ws.once('open', () => {
      ws.close();
      resolve('open');
    });
    ws.once('unexpected-response', (_req, res) => resolve(`HTTP ${res.statusCode}`));
    ws.once('error', (err) => resolve(`error ${err.message}`));
  });
}

describe('kafka upstreams with fields the takeover does not use', () => {
  const env = useGatewayWithEcho();
  let n = 0;

  /** PUTs `body` at `path`; checks the answer and that a refusal stored nothing. Resolves to whether it was stored. */
  async function put(path: string, body: unknown): Promise<boolean> {
    const res = await env.gw.admin('PUT', path, body);
    expect(res.status, `${path} ${JSON.stringify(body)}: ${res.text}`).toBeLessThan(500);
    if (res.status === 400) {
      expect(typeof res.body.error_msg).toBe('string');
      expect((await env.gw.admin('GET', path)).status).toBe(404);
      return false;
    }
    expect(res.status, res.text).toBe(201);
    return true;
  }

  test.each(upstreamFields)('%s: inline, named and through a service', async (_name, fields) => {
    const id = `kf${n++}`;
    const up = kafka(fields);
    const stored: string[] = [];
    if (await put(`/apisix/admin/routes/${id}i`, { uri: `/${id}i`, upstream: up })) stored.push(`/${id}i`);
    if (await put(`/apisix/admin/upstreams/${id}`, up)) {
      if (await put(`/apisix/admin/routes/${id}u`, { uri: `/${id}u`, upstream_id: id })) stored.push(`/${id}u`);
    }
    if (await put(`/apisix/admin/services/${id}`, { upstream: up })) {
      if (await put(`/apisix/admin/routes/${id}s`, { uri: `/${id}s`, service_id: id })) stored.push(`/${id}s`);
    }
    // The schema accepts every one of these fields for any scheme (as APISIX's does): all three writes are stored.
    expect(stored).toHaveLength(3);
    for (const uri of stored) {
      expect(await handshake(env.gw, uri), uri).toBe('open');
      expect((await fetch(`${env.gw.dataUrl}${uri}`)).status, uri).toBeLessThan(500);
    }
  });

  test.each(routeExtras)('with %s beside them', async (_name, extra) => {
    for (const [, fields] of upstreamFields) {
      const id = `kr${n++}`;
      if (!(await put(`/apisix/admin/routes/${id}`, { uri: `/${id}`, upstream: kafka(fields), ...extra }))) continue;
      const res = await fetch(`${env.gw.dataUrl}/${id}`);
      expect(res.status, `/${id} ${JSON.stringify(extra)}`).toBeLessThan(500);
    }
  });
});
