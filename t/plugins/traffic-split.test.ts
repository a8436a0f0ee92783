/**
 * traffic-split through real sockets: weighted shares measured over a few
 * hundred requests, `match` vars, the three kinds of destination (inline
 * upstream, upstream_id, the route's own), schema refusals, and the Admin
 * API's refusal to delete an upstream a traffic-split conf still uses.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectRouteConfsRefused, send, startEnv, startUpstream, type Env, type Upstream } from './helpers.js';

let env: Env;
let blue: Upstream;
let green: Upstream;
beforeAll(async () => {
  env = await startEnv();
  blue = await startUpstream();
  green = await startUpstream();
});
afterAll(async () => {
  await env?.close();
  await blue?.close();
  await green?.close();
});
beforeEach(() => {
  env.up.seen.length = 0;
  blue.seen.length = 0;
  green.seen.length = 0;
});

const inline = (up: Upstream) => ({ type: 'roundrobin', nodes: { [up.node]: 1 } });

async function hit(path: string, n: number, headers?: Record<string, string>): Promise<void> {
  for (let i = 0; i < n; i++) {
    // fetch keeps its connection alive: a few hundred requests stay quick.
    const res = await fetch(`${env.gw.dataUrl}${path}`, { headers });
    await res.arrayBuffer();
    expect(res.status).toBe(200);
  }
}

describe('traffic-split', () => {
  it('splits by weight between an inline upstream and the route upstream, within a few percent', async () => {
    await env.route('ts1', '/ts1', {
      'traffic-split': { rules: [{ weighted_upstreams: [{ upstream: inline(blue), weight: 3 }, { weight: 1 }] }] },
    });
    await hit('/ts1', 400);
    const share = blue.seen.length / 400;
    expect(share).toBeGreaterThan(0.72);
    expect(share).toBeLessThan(0.78);
    expect(blue.seen.length + env.up.seen.length).toBe(400);
  });

  it('sends to an upstream by upstream_id, and three ways at once', async () => {
    await env.put('/apisix/admin/upstreams/ts-green', inline(green));
    await env.route('ts2', '/ts2', {
      'traffic-split': {
        rules: [{ weighted_upstreams: [{ upstream_id: 'ts-green', weight: 2 }, { upstream: inline(blue), weight: 1 }, { weight: 1 }] }],
      },
    });
    await hit('/ts2', 400);
    for (const [up, want] of [[green, 0.5], [blue, 0.25], [env.up, 0.25]] as const) {
      expect(Math.abs(up.seen.length / 400 - want), `share ${up.seen.length}/400`).toBeLessThan(0.03);
    }
  });

  it('applies a rule only when its match vars pass; otherwise the route upstream serves', async () => {
    await env.route('ts3', '/ts3', {
      'traffic-split': {
        rules: [
          { match: [{ vars: [['arg_name', '==', 'jack'], ['http_user-id', '>', 23]] }], weighted_upstreams: [{ upstream: inline(blue), weight: 1 }] },
          { match: [{ vars: [['http_x-api', '==', 'green']] }, { vars: [['arg_env', '==', 'green']] }], weighted_upstreams: [{ upstream: inline(green) }] },
        ],
      },
    });
    await hit('/ts3?name=jack', 3, { 'user-id': '30' });
    expect(blue.seen).toHaveLength(3);
    // Both expressions of one vars list must hold.
    await hit('/ts3?name=jack', 2, { 'user-id': '5' });
    expect(blue.seen).toHaveLength(3);
    // Either entry of `match` is enough.
    await hit('/ts3?env=green', 2);
    await hit('/ts3', 1, { 'x-api': 'green' });
    expect(green.seen).toHaveLength(3);
    expect(env.up.seen).toHaveLength(2);
  });

  it('a weight of 0 never receives traffic', async () => {
    await env.route('ts4', '/ts4', { 'traffic-split': { rules: [{ weighted_upstreams: [{ upstream: inline(blue), weight: 0 }, { weight: 1 }] }] } });
    await hit('/ts4', 20);
    expect(blue.seen).toHaveLength(0);
    expect(env.up.seen).toHaveLength(20);
  });

  it('an upstream_id that names nothing gets 502, and the gateway keeps serving', async () => {
    await env.route('ts5', '/ts5', { 'traffic-split': { rules: [{ weighted_upstreams: [{ upstream_id: 'no-such', weight: 1 }] }] } });
    const res = await send(`${env.gw.dataUrl}/ts5`);
    expect(res.status).toBe(502);
    await hit('/ts4', 1);
  });

  it('refuses to delete an upstream a traffic-split conf uses, naming the route', async () => {
    await env.put('/apisix/admin/upstreams/ts-held', inline(green));
    await env.route('ts6', '/ts6', { 'traffic-split': { rules: [{ weighted_upstreams: [{ upstream_id: 'ts-held', weight: 1 }] }] } });
    const res = await env.gw.admin('DELETE', '/apisix/admin/upstreams/ts-held');
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error_msg: 'can not delete this upstream, plugin in route [ts6] is still using it now' });
    await hit('/ts6', 2);
    expect(green.seen).toHaveLength(2);
    expect((await env.gw.admin('DELETE', '/apisix/admin/routes/ts6')).status).toBe(200);
    expect((await env.gw.admin('DELETE', '/apisix/admin/upstreams/ts-held')).status).toBe(200);
  });

  it('refuses bad confs, naming the field', async () => {
    await expectRouteConfsRefused(env, 'traffic-split', [
      [{ rules: [{ weighted_upstreams: [] }] }, /weighted_upstreams/],
      [{ rules: [{ weighted_upstreams: [{ weight: -1 }] }] }, /weight/],
      [{ rules: [{ weighted_upstreams: [{ upstream: { type: 'roundrobin', nodes: 'x' } }] }] }, /nodes/],
      [{ rules: [{ match: [{ vars: [['arg_a', 'bad-op', 1]] }] }] }, /failed to validate the 'vars' expression/],
      [{ rules: 'x' }, /rules/],
      [{ rules: [{ weighted_upstreams: [{ upstream: { type: 'roundrobin', nodes: { '127.0.0.1:99999': 1 } } }] }] }, /weighted_upstreams: invalid port 99999/],
      [{ rules: [{ weighted_upstreams: [{ upstream: { type: 'roundrobin', nodes: { 'a/b:80': 1 } } }] }] }, /weighted_upstreams: invalid configuration/],
    ]);
  });
});
