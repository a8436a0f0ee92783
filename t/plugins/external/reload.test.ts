/**
 * PUT /apisix/admin/plugins/reload with external plugins: an edited file is
 * served in every worker while a request loop sees only 200s and a request in
 * flight finishes on the old code; a broken edit
 * is refused (400 naming the file and the reason) with the old code serving;
 * a schema change that a stored route no longer passes is reported and the
 * route keeps serving as last compiled; and a reload on one node reloads the
 * other node on the same etcd.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPluginGateway, type PluginGateway } from 'portico/testing';
import { startEtcd, type EtcdServer } from '../../helpers/etcd.js';
import { fresh, pluginDir, TS_HELPER, tsPlugin, type PluginDir } from './fixtures.js';

/** Requests until both workers have answered; what each answered. */
async function bothWorkers(url: string): Promise<Map<string, string>> {
  const seen = new Map<string, string>();
  for (let i = 0; i < 60 && seen.size < 2; i++) {
    const res = await fresh(url);
    expect(res.status).toBe(200);
    seen.set(String(res.headers['x-served-by']), String(res.headers['x-ts-hello']));
  }
  expect(seen.size).toBe(2);
  return seen;
}

describe('reload in two workers', () => {
  let plugins: PluginDir;
  let gw: PluginGateway;
  beforeAll(async () => {
    plugins = pluginDir({ 'ts-hello.ts': tsPlugin('v1'), 'lib/label.ts': TS_HELPER });
    gw = await startPluginGateway({
      pluginDirs: [plugins.dir],
      plugins: ['ts-hello'],
      workers: 2,
      route: { uri: '/hello', plugins: { 'ts-hello': { greeting: 'hi' } } },
    });
  });
  afterAll(async () => {
    await gw?.close();
    plugins?.close();
  });

  it('serves the edited code in every worker; a request loop meanwhile sees only 200s', async () => {
    expect([...(await bothWorkers(`${gw.url}/hello`)).values()]).toEqual(['hi/v1', 'hi/v1']);
    const statuses: number[] = [];
    let stop = false;
    const loop = (async () => {
      while (!stop) statuses.push((await fresh(`${gw.url}/hello`)).status);
    })();
    const loops = [loop, (async () => {
      while (!stop) statuses.push((await gw.request('/hello')).status);
    })()];
    // In flight when the reload comes: it finishes on the code it started with.
    const inFlight = fresh(`${gw.url}/hello`, { 'x-delay': '1000' });
    await new Promise((r) => setTimeout(r, 200));
    // The edit is in the helper the plugin imports, so the whole module graph has to be read again.
    plugins.write('lib/label.ts', TS_HELPER.replace("greeting + '/' + tag", "greeting + '/' + tag + '+'"));
    plugins.write('ts-hello.ts', tsPlugin('v2'));
    const reload = await gw.admin('PUT', '/apisix/admin/plugins/reload');
    expect(reload).toEqual({ status: 200, body: 'done' });
    await new Promise((r) => setTimeout(r, 200));
    stop = true;
    await Promise.all(loops);
    expect(statuses.length).toBeGreaterThan(10);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    const slow = await inFlight;
    expect(slow.status).toBe(200);
    expect(slow.headers['x-ts-hello']).toBe('hi/v1');
    expect([...(await bothWorkers(`${gw.url}/hello`)).values()]).toEqual(['hi/v2+', 'hi/v2+']);
  });

  it('refuses a broken edit with the file and the reason; the old code keeps serving', async () => {
    plugins.write('ts-hello.ts', tsPlugin('v3').replace('priority: 1500,', 'priority: 1500,,'));
    const reload = await gw.admin('PUT', '/apisix/admin/plugins/reload');
    expect(reload.status).toBe(400);
    const msg = (reload.body as { error_msg: string }).error_msg;
    expect(msg).toContain(`${plugins.dir}/ts-hello.ts`);
    expect(msg).toMatch(/^failed to reload plugins: plugin_dirs: .*failed to load/);
    expect([...(await bothWorkers(`${gw.url}/hello`)).values()]).toEqual(['hi/v2+', 'hi/v2+']);
    // The Admin API still checks against the running set.
    expect((await gw.admin('GET', '/apisix/admin/plugins/ts-hello')).status).toBe(200);
  });

  it('names the routes a changed schema refuses; they keep serving as last compiled', async () => {
    plugins.write('ts-hello.ts', tsPlugin('v4').replace("minLength: 1 }", 'minLength: 1, maxLength: 1 }'));
    const reload = await gw.admin('PUT', '/apisix/admin/plugins/reload');
    expect(reload.status).toBe(200);
    expect(reload.body).toEqual({
      message: 'done',
      invalid: [{ key: '/apisix/routes/1', error_msg: 'failed to check the configuration of plugin ts-hello err: property "greeting" validation failed: string too long, expected at most 1, got 2' }],
    });
    expect([...(await bothWorkers(`${gw.url}/hello`)).values()]).toEqual(['hi/v2+', 'hi/v2+']);
    // The Admin API checks against the new schema; a route that passes it runs the new code.
    const put = await gw.admin('PUT', '/apisix/admin/routes/2', { uri: '/two', plugins: { 'ts-hello': { greeting: 'x' } }, upstream: { nodes: { [gw.upstreamNode]: 1 } } });
    expect(put.status).toBe(201);
    await new Promise((r) => setTimeout(r, 300));
    expect([...(await bothWorkers(`${gw.url}/two`)).values()]).toEqual(['x/v4+', 'x/v4+']);
  });
});

describe('reload across two nodes on one etcd', () => {
  let etcd: EtcdServer;
  let plugins: PluginDir;
  let a: PluginGateway;
  let b: PluginGateway;
  beforeAll(async () => {
    etcd = await startEtcd();
    plugins = pluginDir({ 'ts-hello.ts': tsPlugin('v1'), 'lib/label.ts': TS_HELPER });
    const config = { deployment: { config_provider: 'etcd' as const, etcd: { host: [etcd.endpoint], prefix: `/portico-reload-${process.pid}`, timeout: 2 } } };
    const route = { uri: '/hello', plugins: { 'ts-hello': { greeting: 'hi' } } };
    a = await startPluginGateway({ pluginDirs: [plugins.dir], plugins: ['ts-hello'], config, route });
    b = await startPluginGateway({ pluginDirs: [plugins.dir], plugins: ['ts-hello'], config, route });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    plugins?.close();
    await etcd?.stop();
  });

  it('a reload through node a reloads node b', async () => {
    expect((await b.request('/hello')).headers['x-ts-hello']).toBe('hi/v1');
    plugins.write('ts-hello.ts', tsPlugin('v2'));
    expect(await a.admin('PUT', '/apisix/admin/plugins/reload')).toEqual({ status: 200, body: 'done' });
    expect((await a.request('/hello')).headers['x-ts-hello']).toBe('hi/v2');
    let tag: string | undefined;
    for (let i = 0; i < 100 && tag !== 'hi/v2'; i++) {
      tag = (await b.request('/hello')).headers['x-ts-hello'];
      if (tag !== 'hi/v2') await new Promise((r) => setTimeout(r, 50));
    }
    expect(tag).toBe('hi/v2');
  });
});
