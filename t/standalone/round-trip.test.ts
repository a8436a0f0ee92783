/**
 * `npm run config -- dump | validate | diff | apply` as a process against real
 * gateways: a configuration built through the Admin API, dumped (from the Admin
 * API and from the data dir), validated offline, applied to an API-driven
 * standalone gateway and to an empty traditional one, and dumped again: the
 * same document every time, and the same answers from the data planes.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startUpstream, type Upstream } from '../dataplane/helpers.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

const CLI = fileURLToPath(new URL('../../dist/src/config-cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'portico-roundtrip-'));

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const target = (gw: TestGateway) => ['--admin-url', gw.adminUrl, '--admin-key', gw.adminKey];

let up: Upstream;
let source: TestGateway;
let standalone: TestGateway;
let empty: TestGateway;

async function ok(gw: TestGateway, method: string, path: string, body: unknown): Promise<void> {
  const res = await gw.admin(method, path, body);
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${res.text}`);
}

async function served(gw: TestGateway, path: string, headers: Record<string, string> = {}): Promise<number> {
  const end = Date.now() + 2000;
  for (;;) {
    const res = await fetch(gw.dataUrl + path, { headers });
    await res.arrayBuffer();
    if (res.status !== 404 || Date.now() > end) return res.status;
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  up = await startUpstream();
  [source, standalone, empty] = await Promise.all([
    startTestGateway(),
    startTestGateway({ config: { deployment: { config_provider: 'yaml' } } }),
    startTestGateway(),
  ]);
  await ok(source, 'PUT', '/apisix/admin/upstreams/u1', { nodes: { [`127.0.0.1:${up.port}`]: 1 }, type: 'roundrobin' });
  await ok(source, 'PUT', '/apisix/admin/services/s1', { upstream_id: 'u1', plugins: { 'request-id': {} } });
  await ok(source, 'PUT', '/apisix/admin/routes/r1', { uri: '/r1', service_id: 's1' });
  await ok(source, 'PUT', '/apisix/admin/routes/r2', { uri: '/r2', upstream_id: 'u1', plugins: { 'key-auth': {} } });
  // An encrypted plugin field: the dump shows it in the clear, from the Admin API and from the data dir alike.
  await ok(source, 'PUT', '/apisix/admin/routes/r3', { uri: '/r3', upstream_id: 'u1', plugins: { 'kafka-proxy': { sasl: { username: 'u', password: 'pw-secret' } } } });
  await ok(source, 'PUT', '/apisix/admin/consumers', { username: 'jack', plugins: { 'key-auth': { key: 'jack-key' } } });
  await ok(source, 'PUT', '/apisix/admin/consumers/jack/credentials/c1', { plugins: { 'key-auth': { key: 'cred-key' } } });
  await ok(source, 'PUT', '/apisix/admin/global_rules/g1', { plugins: { 'response-rewrite': { headers: { set: { 'x-global': '1' } } } } });
  await ok(source, 'PUT', '/apisix/admin/plugin_metadata/cors', { allow_origins: { EXAMPLE: 'https://example.com' } });
});

afterAll(async () => {
  await Promise.all([source?.close(), standalone?.close(), empty?.close(), up?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

// Each step runs the CLI as a process (a few seconds each on a loaded machine).
describe('dump, validate, apply, dump', { timeout: 180_000 }, () => {
  const a = join(dir, 'a.yaml');

  test('dump from the Admin API writes a standalone file: every resource, credentials as <username>/credentials/<id>, no timestamps', async () => {
    const res = await cli(['dump', '-o', a, ...target(source)]);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const text = readFileSync(a, 'utf8');
    expect(text).toMatch(/#END\n$/);
    const doc = parseYaml(text) as Record<string, Array<Record<string, unknown>>>;
    expect(doc.routes!.map((r) => r.id)).toEqual(['r1', 'r2', 'r3']);
    expect(doc.consumers).toEqual([
      { username: 'jack', plugins: { 'key-auth': { key: 'jack-key' } } },
      { id: 'jack/credentials/c1', plugins: { 'key-auth': { key: 'cred-key' } } },
    ]);
    expect(doc.routes![2]!.plugins).toEqual({ 'kafka-proxy': { sasl: { username: 'u', password: 'pw-secret' } } });
    expect(doc.plugin_metadata).toEqual([{ id: 'cors', allow_origins: { EXAMPLE: 'https://example.com' } }]);
    expect(text).not.toMatch(/create_time|update_time/);
  });

  test('dump from the data dir gives the same document', async () => {
    const b = join(dir, 'b.yaml');
    const res = await cli(['dump', '-o', b, '--data-dir', source.dataDir]);
    expect(res.code, res.stderr).toBe(0);
    expect(readFileSync(b, 'utf8')).toBe(readFileSync(a, 'utf8'));
  });

  test('validate checks the file offline', async () => {
    const res = await cli(['validate', a]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toBe(`${a}: valid\n`);
  });

  test('applied to an API-driven standalone gateway (PUT /configs), dumped again: identical, and served', async () => {
    const applied = await cli(['apply', a, ...target(standalone)]);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toBe('applied the whole configuration\n');
    // The same document again carries the same digest: nothing to do.
    expect((await cli(['apply', a, ...target(standalone)])).stdout).toBe('no change (same digest)\n');
    const c = join(dir, 'c.yaml');
    expect((await cli(['dump', '-o', c, ...target(standalone)])).code).toBe(0);
    expect(readFileSync(c, 'utf8')).toBe(readFileSync(a, 'utf8'));
    expect(await served(standalone, '/r1')).toBe(200);
    expect(await served(standalone, '/r2', { apikey: 'cred-key' })).toBe(200);
    expect(await served(standalone, '/r2', { apikey: 'nope' })).toBe(401);
  });

  test('diff against an empty gateway lists what apply creates; applied, dumped again: identical, and no diff left', async () => {
    const diff = await cli(['diff', a, ...target(empty)]);
    expect(diff.code, diff.stderr).toBe(0);
    expect(diff.stdout).toContain('+ upstreams/u1\n');
    expect(diff.stdout).toContain('+ consumers/jack/credentials/c1\n');
    expect(diff.stdout).toMatch(/9 to create, 0 to change, 0 to delete\n$/);
    const applied = await cli(['apply', a, ...target(empty)]);
    expect(applied.code, applied.stderr).toBe(0);
    const d = join(dir, 'd.yaml');
    expect((await cli(['dump', '-o', d, ...target(empty)])).code).toBe(0);
    expect(readFileSync(d, 'utf8')).toBe(readFileSync(a, 'utf8'));
    expect((await cli(['diff', a, ...target(empty)])).stdout).toBe('0 to create, 0 to change, 0 to delete\n');
    const res = await fetch(`${empty.dataUrl}/r1`);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-global')).toBe('1');
  });

  test('diff names changed fields and deletions; apply makes them', async () => {
    const doc = parseYaml(readFileSync(a, 'utf8')) as Record<string, Array<Record<string, unknown>>>;
    doc.routes = doc.routes!.filter((r) => r.id !== 'r3');
    doc.routes[0]!.uri = '/r1-moved';
    const e = join(dir, 'e.json');
    writeFileSync(e, JSON.stringify(doc));
    const diff = await cli(['diff', e, ...target(empty)]);
    expect(diff.stdout).toBe('~ routes/r1 (uri)\n- routes/r3\n0 to create, 1 to change, 1 to delete\n');
    expect((await cli(['apply', e, ...target(empty)])).code).toBe(0);
    expect(await served(empty, '/r1-moved')).toBe(200);
    expect((await fetch(`${empty.dataUrl}/r3`)).status).toBe(404);
  });

  test('a file with problems is refused by validate, diff and apply alike, each problem on its own line', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'routes:\n  - id: x\n    uri: 1\n  - id: y\n    uri: /y\n    upstream_id: missing\n#END\n');
    for (const command of ['validate', 'diff', 'apply']) {
      const res = await cli([command, bad, ...target(empty)]);
      expect(res.code).toBe(1);
      expect(res.stderr).toContain(`${bad}: routes[0], id x, field uri: invalid configuration: property "uri" validation failed`);
      expect(res.stderr).toContain(`${bad}: routes[1], id y, field upstream_id: failed to fetch upstream info by upstream id [missing]`);
    }
    const noEnd = join(dir, 'noend.yaml');
    writeFileSync(noEnd, 'routes: []\n');
    expect((await cli(['validate', noEnd])).stderr).toContain(`missing valid end flag in file ${noEnd}`);
  });
});
