/**
 * uri-blocker through real sockets: the rules match the normalised path, so
 * the bypasses of APISIX's CVE-2021-43557 (`//internal`, `%69nternal`,
 * `/./internal`, `/x/../internal`) are blocked; case_insensitive, rules over
 * the query, rejected_code / rejected_msg, and schema refusals.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectRouteConfsRefused, send, startEnv, type Env } from './helpers.js';

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

const get = (host: string, path: string) => send(`${env.gw.dataUrl}${path}`, { headers: { host } });

describe('uri-blocker', () => {
  it('blocks ^/internal/ however the path is spelled', async () => {
    await env.route('ub1', '/*', { 'uri-blocker': { block_rules: ['^/internal/', 'debug=1'] } }, { hosts: ['ub1.test'] });
    for (const path of ['/internal/x', '//internal/x', '/%69nternal/x', '/%2Finternal/x', '/./internal/x', '/a/../internal/x', '/%2e/internal/x', '/public?debug=1']) {
      const res = await get('ub1.test', path);
      expect(res.status, path).toBe(403);
    }
    expect(env.up.seen).toHaveLength(0);
    expect((await get('ub1.test', '/public/internal/x')).status).toBe(200);
    expect((await get('ub1.test', '/INTERNAL/x')).status).toBe(200);
  });

  it('case_insensitive, rejected_code and rejected_msg', async () => {
    await env.route(
      'ub2',
      '/*',
      { 'uri-blocker': { block_rules: ['^/admin', '\\.php$'], case_insensitive: true, rejected_code: 404, rejected_msg: 'access is not allowed' } },
      { hosts: ['ub2.test'] },
    );
    for (const path of ['/ADMIN/panel', '/Admin', '/x/index.PHP', '/%41dmin']) {
      const res = await get('ub2.test', path);
      expect(res.status, path).toBe(404);
      expect(JSON.parse(res.body), path).toEqual({ error_msg: 'access is not allowed' });
    }
    expect((await get('ub2.test', '/x/admin')).status).toBe(200);
  });

  it('refuses bad confs', async () => {
    await expectRouteConfsRefused(env, 'uri-blocker', [
      [{}, /block_rules/],
      [{ block_rules: ['('] }, /invalid block_rules item "\("/],
      [{ block_rules: [''] }, /block_rules/],
      [{ block_rules: ['a', 'a'] }, /block_rules/],
      [{ block_rules: ['a'], rejected_code: 100 }, /rejected_code/],
      [{ block_rules: ['a'], rejected_msg: '' }, /rejected_msg/],
    ]);
  });
});
