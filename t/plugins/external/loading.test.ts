/**
 * Plugins from plugin_dirs: a TypeScript plugin (types, a relative import, no
 * build step) and a plain JavaScript plugin loaded from a temporary directory
 * and served by two forked data-plane workers; their schemas enforced by the
 * Admin API and shown by /plugins/list and /plugins/{name}; start-up refused,
 * naming the file and the reason, for each broken kind of file.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPluginGateway, type PluginGateway } from 'portico/testing';
import { fresh, JS_PLUGIN, pluginDir, TS_HELPER, tsPlugin, type PluginDir } from './fixtures.js';

describe('external plugins in two worker processes', () => {
  let plugins: PluginDir;
  let gw: PluginGateway;
  beforeAll(async () => {
    plugins = pluginDir({ 'ts-hello.ts': tsPlugin('v1'), 'lib/label.ts': TS_HELPER, 'js-block.js': JS_PLUGIN });
    gw = await startPluginGateway({
      pluginDirs: [plugins.dir],
      plugins: ['ts-hello', 'js-block'],
      workers: 2,
      route: { uri: '/hello', plugins: { 'ts-hello': { greeting: 'hi' }, 'js-block': { status: 403 } } },
    });
  });
  afterAll(async () => {
    await gw?.close();
    plugins?.close();
  });

  it('runs both plugins in every worker', async () => {
    const pids = new Set<string>();
    for (let i = 0; i < 40 && pids.size < 2; i++) {
      const res = await fresh(`${gw.url}/hello`);
      expect(res.status).toBe(200);
      expect(res.headers['x-ts-hello']).toBe('hi/v1');
      pids.add(String(res.headers['x-served-by']));
    }
    expect(pids.size).toBe(2);
    expect(pids.has(String(process.pid))).toBe(false);
    const blocked = await fresh(`${gw.url}/hello`, { 'x-block': '1' });
    expect(blocked.status).toBe(403);
    expect(JSON.parse(blocked.body)).toEqual({ blocked: true });
    // An exit still goes through header_filter, as in APISIX.
    expect(blocked.headers['x-ts-hello']).toBe('hi/v1');
  });

  it('the Admin API lists them, serves their schemas and enforces them', async () => {
    const list = await gw.admin('GET', '/apisix/admin/plugins/list');
    expect(list.body).toEqual(expect.arrayContaining(['ts-hello', 'js-block']));
    const names = list.body as string[];
    // Priority order: js-block (2600) before ts-hello (1500).
    expect(names.indexOf('js-block')).toBeLessThan(names.indexOf('ts-hello'));
    const schema = await gw.admin('GET', '/apisix/admin/plugins/ts-hello');
    expect(schema.status).toBe(200);
    expect(schema.body).toMatchObject({ required: ['greeting'], properties: { greeting: { type: 'string' }, _meta: {} } });

    const missing = await gw.admin('PUT', '/apisix/admin/routes/bad', { uri: '/bad', plugins: { 'ts-hello': {} }, upstream: { nodes: { [gw.upstreamNode]: 1 } } });
    expect(missing.status).toBe(400);
    expect(missing.body).toEqual({ error_msg: 'failed to check the configuration of plugin ts-hello err: property "greeting" is required' });
    const wrongType = await gw.admin('PUT', '/apisix/admin/routes/bad', { uri: '/bad', plugins: { 'js-block': { status: 'x' } }, upstream: { nodes: { [gw.upstreamNode]: 1 } } });
    expect(wrongType.status).toBe(400);
    expect((wrongType.body as { error_msg: string }).error_msg).toMatch(/^failed to check the configuration of plugin js-block err: property "status" validation failed/);
    expect((await gw.admin('GET', '/apisix/admin/routes/bad')).status).toBe(404);
  });
});

describe('start-up refuses a broken plugin directory, naming the file and the reason', () => {
  const cases: Array<[string, string, string, RegExp]> = [
    ['a name clash with a built-in', 'cors.mjs', `export default { name: 'cors', priority: 1, schema: { type: 'object' } };`, /plugin name cors clashes with a built-in plugin/],
    ['a missing name', 'anon.mjs', `export default { priority: 1, schema: { type: 'object' } };`, /the plugin definition has no name/],
    ['a missing priority', 'nopri.mjs', `export default { name: 'nopri', schema: { type: 'object' } };`, /plugin nopri has no priority/],
    ['an invalid schema', 'badschema.mjs', `export default { name: 'badschema', priority: 1, schema: { type: 'no-such-type' } };`, /plugin badschema: invalid schema/],
    ['a file that does not load', 'broken.ts', `export default { name: 'broken', priority: 1, schema: {} ;`, /failed to load/],
    ['a file that throws while loading', 'throws.mjs', `throw new Error('cannot start here');`, /failed to load: cannot start here/],
    ['a CommonJS .js file', 'cjs/old.js', `module.exports = { name: 'old', priority: 1, schema: {} };`, /not an ES module/],
  ];
  for (const [what, file, source, reason] of cases) {
    it(what, async () => {
      const dir = pluginDir();
      const pluginsAt = file.includes('/') ? join(dir.dir, file, '..') : dir.dir;
      dir.write(file, source);
      if (file.startsWith('cjs/')) dir.write('cjs/package.json', '{ "type": "commonjs" }\n');
      try {
        const err = await startPluginGateway({ pluginDirs: [pluginsAt] }).then(
          async (gw) => {
            await gw.close();
            return undefined;
          },
          (e: unknown) => e as Error,
        );
        expect(err).toBeInstanceOf(Error);
        expect(err!.message).toContain(join(dir.dir, file));
        expect(err!.message).toMatch(reason);
      } finally {
        dir.close();
      }
    });
  }
});
