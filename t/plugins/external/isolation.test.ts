/**
 * Failure isolation: a plugin whose phase throws, or whose promise rejects,
 * gives that request APISIX's 500 and a log line naming the plugin and the
 * route; requests in flight at the same time, and later ones, are untouched.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPluginGateway, type PluginGateway } from 'portico/testing';
import { pluginDir, THROWING_PLUGIN, type PluginDir } from './fixtures.js';

describe('a throwing plugin', () => {
  let plugins: PluginDir;
  let gw: PluginGateway;
  const lines: Array<Record<string, unknown>> = [];
  beforeAll(async () => {
    plugins = pluginDir({ 'throws.ts': THROWING_PLUGIN });
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    gw = await startPluginGateway({
      pluginDirs: [plugins.dir],
      plugins: ['throws'],
      logger: pino({ level: 'error' }, sink),
      route: { id: 'r-throws', uri: '/t', plugins: { throws: {} } },
    });
  });
  afterAll(async () => {
    await gw?.close();
    plugins?.close();
  });

  it('a throw and a rejection each answer 500 and are logged with the plugin and route', async () => {
    for (const header of ['x-throw', 'x-reject']) {
      const res = await gw.request('/t', { headers: { [header]: '1' } });
      expect(res.status).toBe(500);
      expect(res.json()).toEqual({ error_msg: '500 Internal Server Error' });
    }
    const failures = lines.filter((l) => l.msg === 'plugin failed; answering 500');
    expect(failures).toHaveLength(2);
    for (const f of failures) expect(f).toMatchObject({ plugin: 'throws', phase: 'access', route: 'r-throws' });
    expect((failures[0]!.err as { message: string }).message).toBe('boom from a plugin');
    expect((failures[1]!.err as { message: string }).message).toBe('rejected by a plugin');
  });

  it('other requests, concurrent and later, are served', async () => {
    const mixed = await Promise.all(Array.from({ length: 30 }, (_, i) => gw.request('/t', { headers: i % 3 === 0 ? { 'x-reject': '1' } : {} })));
    mixed.forEach((res, i) => expect(res.status).toBe(i % 3 === 0 ? 500 : 200));
    expect(gw.upstreamRequests.length).toBe(20);
    expect((await gw.request('/t')).status).toBe(200);
  });
});
