/**
 * `$env://` references in plugin confs (APISIX's secret.lua): the stored conf
 * keeps the reference, the data plane uses the environment's value, a JSON
 * variable's field is reachable as `$env://NAME/field`, and a reference that
 * does not resolve is used as written (as APISIX does) rather than as empty.
 */
import { describe, expect, it } from 'vitest';
import { useGatewayWithEcho } from '../helpers/gateway.js';
import { send } from '../dataplane/helpers.js';

process.env.PORTICO_T_KEY = 'key-from-env';
process.env.PORTICO_T_HOST = 'from-env.example';
process.env.PORTICO_T_JSON = JSON.stringify({ key: 'key-from-json', header: 'from-json-header' });
delete process.env.PORTICO_T_MISSING;

describe('plugin confs: $env:// references', () => {
  const env = useGatewayWithEcho();

  async function until(headers: Record<string, string>, status: number) {
    const deadline = Date.now() + 5000;
    for (;;) {
      const r = await send(env.gw.dataPort, { path: '/env', headers });
      if (r.status === status || Date.now() > deadline) return r;
      await new Promise((res) => setTimeout(res, 20));
    }
  }

  it('resolves in consumers and route plugins; the stored value keeps the reference', async () => {
    const put = await env.gw.admin('PUT', '/apisix/admin/consumers', { username: 'eve', plugins: { 'key-auth': { key: '$env://PORTICO_T_KEY' } } });
    expect(put.status).toBe(201);
    await env.gw.admin('PUT', '/apisix/admin/consumers', { username: 'jay', plugins: { 'key-auth': { key: '$ENV://PORTICO_T_JSON/key' } } });
    await env.gw.admin('PUT', '/apisix/admin/routes/env', {
      uri: '/env',
      plugins: { 'key-auth': {}, 'proxy-rewrite': { headers: { set: { 'x-secret': '$env://PORTICO_T_JSON/header' } } } },
      upstream: { nodes: { [`127.0.0.1:${env.up.port}`]: 1 } },
    });

    const ok = await until({ apikey: 'key-from-env' }, 200);
    expect(ok.status).toBe(200);
    expect((JSON.parse(ok.body) as { headers: Record<string, string> }).headers['x-secret']).toBe('from-json-header');
    expect((await send(env.gw.dataPort, { path: '/env', headers: { apikey: 'key-from-json' } })).status).toBe(200);
    // The reference itself is not a key.
    expect((await send(env.gw.dataPort, { path: '/env', headers: { apikey: '$env://PORTICO_T_KEY' } })).status).toBe(401);

    const stored = await env.gw.admin('GET', '/apisix/admin/consumers/eve');
    expect(stored.body.value.plugins['key-auth'].key).toBe('$env://PORTICO_T_KEY');
  });

  it("a reference stands in for a string its field's pattern checks, as APISIX skips validating it; other types still refuse it", async () => {
    // proxy-rewrite's host has a pattern `$env://...` does not match: accepted as a reference, checked as resolved.
    const put = await env.gw.admin('PUT', '/apisix/admin/routes/envhost', {
      uri: '/envhost',
      plugins: { 'proxy-rewrite': { host: '$env://PORTICO_T_HOST' } },
      upstream: { nodes: { [`127.0.0.1:${env.up.port}`]: 1 } },
    });
    expect(put.status, put.text).toBe(201);
    const deadline = Date.now() + 5000;
    let r = await send(env.gw.dataPort, { path: '/envhost' });
    while (r.status !== 200 && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 20));
      r = await send(env.gw.dataPort, { path: '/envhost' });
    }
    expect((JSON.parse(r.body) as { headers: Record<string, string> }).headers.host).toBe('from-env.example');

    // Not a reference: the pattern applies, with the same message as ever.
    const bad = await env.gw.admin('PUT', '/apisix/admin/routes/envhost', { uri: '/envhost', plugins: { 'proxy-rewrite': { host: 'not a host!' } } });
    expect(bad.status).toBe(400);
    expect(bad.body.error_msg).toMatch(/property "host" validation failed: failed to match pattern/);
    // A reference is a string: an integer field still refuses it.
    const code = await env.gw.admin('PUT', '/apisix/admin/routes/envhost', {
      uri: '/envhost',
      plugins: { 'limit-count': { count: 1, time_window: 1, rejected_code: '$env://PORTICO_T_KEY' } },
    });
    expect(code.status).toBe(400);
    expect(code.body.error_msg).toMatch(/property "rejected_code" validation failed: wrong type: expected integer, got string/);
  });

  it('an unresolved reference stays as written', async () => {
    await env.gw.admin('PUT', '/apisix/admin/routes/env', {
      uri: '/env',
      plugins: { 'response-rewrite': { body: '$env://PORTICO_T_MISSING' } },
      upstream: { nodes: { [`127.0.0.1:${env.up.port}`]: 1 } },
    });
    const r = await until({}, 200);
    expect(r.status).toBe(200);
    expect(r.body).toBe('$env://PORTICO_T_MISSING');
  });
});
