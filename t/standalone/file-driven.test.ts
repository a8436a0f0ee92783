/**
 * APISIX's file-driven standalone mode through a real gateway process:
 * `deployment.role: data_plane` serving the file named by PORTICO_STANDALONE_FILE,
 * reloaded live, a bad edit refused with the last good configuration serving.
 */
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startUpstream, type Upstream } from '../dataplane/helpers.js';
import { startGatewayProcess, writeTempConfig, type GatewayProcess } from '../helpers/process.js';

const dir = mkdtempSync(join(tmpdir(), 'portico-standalone-'));
const file = join(dir, 'apisix.yaml');
let up: Upstream;
let gp: GatewayProcess;
let port: number;

function routeFile(uri: string, extra = ''): string {
  return `routes:
  - id: r1
    uri: ${uri}
    upstream_id: u1
${extra}upstreams:
  - id: u1
    nodes:
      "127.0.0.1:\${{UP_PORT}}": 1
    type: roundrobin
#END
`;
}

/** Writes as editors and `git checkout` do: a new file renamed over the old one. */
function replaceFile(text: string): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

async function status(path: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  await res.arrayBuffer();
  return res.status;
}

/** Polls until `path` answers `want`; resolves to the milliseconds it took. */
async function servedWithin(path: string, want: number, limitMs: number): Promise<number> {
  const start = Date.now();
  for (;;) {
    if ((await status(path)) === want) return Date.now() - start;
    if (Date.now() - start > limitMs) throw new Error(`${path} did not answer ${want} within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  up = await startUpstream();
  writeFileSync(file, routeFile('/one'));
  const config = writeTempConfig(`apisix:
  node_listen: { ip: 127.0.0.1, port: 0 }
deployment:
  role: data_plane
  role_data_plane:
    config_provider: yaml
  admin:
    admin_listen: { ip: 127.0.0.1, port: 0 }
  embedded:
    data_dir: ${join(dir, 'data')}
plugin_attr:
  prometheus:
    export_addr: { ip: 127.0.0.1, port: 0 }
`);
  gp = startGatewayProcess(['--config', config], { PORTICO_STANDALONE_FILE: file, UP_PORT: String(up.port) });
  port = Number((await gp.waitFor(/data plane listening on http:\/\/[^:]+:(\d+)/, 90_000))[1]);
}, 120_000);

afterAll(async () => {
  gp?.proc.kill('SIGTERM');
  await gp?.exited;
  await up?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('file-driven standalone mode', () => {
  test('serves the file, with ${{VAR}} read from the environment, and has no Admin API', async () => {
    expect(await status('/one')).toBe(200);
    expect(up.seen.at(-1)?.url).toBe('/one');
    expect(await status('/two')).toBe(404);
    expect(gp.output()).not.toMatch(/Admin API listening/);
  });

  test('a live edit is served within two seconds', async () => {
    replaceFile(routeFile('/two'));
    expect(await servedWithin('/two', 200, 2000)).toBeLessThan(2000);
    expect(await status('/one')).toBe(404);
  });

  test('an edit in place (same inode) is picked up too', async () => {
    writeFileSync(file, routeFile('/three'));
    await servedWithin('/three', 200, 2000);
  });

  test('an edit that fails validation is refused, naming file, resource, id and field; the old config keeps serving', async () => {
    const before = gp.output().length;
    replaceFile(routeFile('/four', '  - id: r2\n    uri: /bad\n    upstream_id: u1\n    methods: [FETCH]\n'));
    await gp.waitFor(/refused .*apisix\.yaml: 1 invalid item/, 3000);
    const log = gp.output().slice(before);
    expect(log).toContain(file);
    expect(log).toMatch(/routes\[1\], id r2, field methods/);
    expect(await status('/three')).toBe(200);
    expect(await status('/four')).toBe(404);
  });

  test('a reference the file does not hold is refused like the Admin API refuses it', async () => {
    const before = gp.output().length;
    replaceFile(routeFile('/five').replace('upstream_id: u1', 'upstream_id: nope'));
    await gp.waitFor(/failed to fetch upstream info by upstream id \[nope\]/, 3000);
    expect(gp.output().slice(before)).toMatch(/routes\[0\], id r1, field upstream_id/);
    expect(await status('/three')).toBe(200);
    expect(await status('/five')).toBe(404);
  });

  test("a route beyond one of Portico's bounds (src/schema/limits.ts) is refused like the Admin API refuses it", async () => {
    const before = gp.output().length;
    const uris = Array.from({ length: 4097 }, (_, k) => `/seven/${k}`);
    replaceFile(routeFile('/seven').replace('    uri: /seven\n', `    uris: ${JSON.stringify(uris)}\n`));
    // The whole output is searched: the field's own line (JSON, quotes escaped) tells this refusal from the earlier ones.
    await gp.waitFor(/routes\[0\], id r1, field uris: invalid configuration: property \\"uris\\" validation failed: expect array to have at most 4096 items/, 3000);
    expect(gp.output().slice(before)).toMatch(/refused .*apisix\.yaml: 1 invalid item/);
    expect(await status('/three')).toBe(200);
    expect(await status('/seven/0')).toBe(404);
  });

  test('a YAML file without #END is refused (a half-written file is never loaded)', async () => {
    replaceFile(routeFile('/six').replace('#END\n', ''));
    await gp.waitFor(/missing valid end flag in file .*apisix\.yaml/, 3000);
    expect(await status('/three')).toBe(200);
    expect(await status('/six')).toBe(404);
    // Completing the file serves it.
    replaceFile(routeFile('/six'));
    await servedWithin('/six', 200, 2000);
    expect(readFileSync(file, 'utf8')).toMatch(/#END\n$/);
  });
});

// Each test starts a gateway process: slow on a loaded machine.
describe('start-up', { timeout: 120_000 }, () => {
  test('a file that fails validation stops start-up with exit 1 and its reasons', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'routes:\n  - id: r1\n    uri: 5\n#END\n');
    const config = writeTempConfig(`apisix:\n  node_listen: { ip: 127.0.0.1, port: 0 }\n  ssl:\n    listen: [{ ip: 127.0.0.1, port: 0 }]\ndeployment:\n  role: data_plane\n  role_data_plane:\n    config_provider: yaml\n  embedded:\n    data_dir: ${join(dir, 'data2')}\n`);
    const p = startGatewayProcess(['--config', config], { PORTICO_STANDALONE_FILE: bad });
    expect((await p.exited).code).toBe(1);
    expect(p.output()).toMatch(/failed to start: refused .*bad\.yaml: 1 invalid item\n\s+routes\[0\], id r1, field uri: invalid configuration: property "uri" validation failed/);
  });

  test('json provider reads the JSON file without #END', async () => {
    const json = join(dir, 'apisix.json');
    writeFileSync(json, JSON.stringify({ routes: [{ id: 'j', uri: '/json', upstream: { nodes: { [`127.0.0.1:${up.port}`]: 1 }, type: 'roundrobin' } }] }));
    const config = writeTempConfig(`apisix:\n  node_listen: { ip: 127.0.0.1, port: 0 }\n  ssl:\n    listen: [{ ip: 127.0.0.1, port: 0 }]\ndeployment:\n  role: data_plane\n  role_data_plane:\n    config_provider: json\n  embedded:\n    data_dir: ${join(dir, 'data3')}\nplugin_attr:\n  prometheus:\n    export_addr: { ip: 127.0.0.1, port: 0 }\n`);
    const p = startGatewayProcess(['--config', config], { PORTICO_STANDALONE_FILE: json });
    try {
      const jsonPort = Number((await p.waitFor(/data plane listening on http:\/\/[^:]+:(\d+)/, 90_000))[1]);
      const res = await fetch(`http://127.0.0.1:${jsonPort}/json`);
      expect(res.status).toBe(200);
    } finally {
      p.proc.kill('SIGTERM');
      await p.exited;
    }
  });
});
