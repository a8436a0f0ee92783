/**
 * The traffic plugins are enabled by the default conf/config.yaml and listed
 * by /apisix/admin/plugins/list in APISIX's priority order, with their schemas
 * served by /apisix/admin/plugins/<name>.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEnv, type Env } from './helpers.js';

let env: Env;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.close();
});

// APISIX's priorities: 23000, 11000, 2900, 2400, 1005, 966, 900.
const TRAFFIC = ['real-ip', 'fault-injection', 'uri-blocker', 'consumer-restriction', 'api-breaker', 'traffic-split', 'redirect'];

describe('traffic plugins in the default config', () => {
  it('are listed by /plugins/list in priority order', async () => {
    const res = await env.gw.admin('GET', '/apisix/admin/plugins/list');
    expect(res.status).toBe(200);
    const listed = (res.body as string[]).filter((n) => TRAFFIC.includes(n));
    expect(listed).toEqual(TRAFFIC);
  });

  it('serve their schemas', async () => {
    for (const name of TRAFFIC) {
      const res = await env.gw.admin('GET', `/apisix/admin/plugins/${name}`);
      expect(res.status, name).toBe(200);
      expect(res.body.type, name).toBe('object');
    }
    expect((await env.gw.admin('GET', '/apisix/admin/plugins/traffic-split')).body.properties.rules).toBeDefined();
  });
});
