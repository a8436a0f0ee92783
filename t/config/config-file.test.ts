import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { ConfigError, loadConfig, substituteEnv } from '../../src/core/config/file.js';
import { startGatewayProcess, startListening, testConfigYaml, writeTempConfig } from '../helpers/process.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'portico-cfg-'));
  dirs.push(d);
  return d;
}

describe('loading conf/config.yaml', () => {
  test('the shipped defaults load and match the documented listeners', () => {
    const c = loadConfig({ env: {} });
    expect(c.apisix.node_listen).toEqual({ ip: '0.0.0.0', port: 9080 });
    expect(c.deployment.admin.admin_listen).toEqual({ ip: '127.0.0.1', port: 9180 });
    expect(c.deployment.config_provider).toBe('embedded');
    expect(c.plugins).toContain('kafka-proxy');
  });

  test('a file named by PORTICO_CONFIG is laid over the defaults; arrays replace', () => {
    const file = writeTempConfig('apisix:\n  node_listen:\n    port: 9999\nplugins:\n  - key-auth\n');
    const c = loadConfig({ env: { PORTICO_CONFIG: file } });
    expect(c.apisix.node_listen).toEqual({ ip: '0.0.0.0', port: 9999 });
    expect(c.plugins).toEqual(['key-auth']);
  });

  test('an unknown key or a wrong type is refused with a message naming it', () => {
    const unknown = writeTempConfig('deployment:\n  admin:\n    admin_lisen: { port: 1 }\n');
    expect(() => loadConfig({ path: unknown, env: {} })).toThrow(/unknown key "deployment\.admin\.admin_lisen"/);
    const wrongType = writeTempConfig('apisix:\n  node_listen:\n    port: "eighty"\n');
    expect(() => loadConfig({ path: wrongType, env: {} })).toThrow(/"apisix\.node_listen\.port" must be integer/);
    const badEnum = writeTempConfig('deployment:\n  config_provider: zookeeper\n');
    expect(() => loadConfig({ path: badEnum, env: {} })).toThrow(/"deployment\.config_provider" must be equal to one of the allowed values: embedded, etcd/);
  });

  test('${{VAR}} and ${{VAR:=default}} read the environment, and a missing variable is named', () => {
    expect(substituteEnv('port: ${{P}}', { P: '1' }, 'f')).toBe('port: 1');
    expect(substituteEnv('port: ${{P:=8080}}', {}, 'f')).toBe('port: 8080');
    expect(() => substituteEnv('port: ${{NOPE}}', {}, 'f')).toThrow(ConfigError);
    const file = writeTempConfig('apisix:\n  node_listen:\n    port: ${{TEST_PORT:=7070}}\n');
    expect(loadConfig({ path: file, env: {} }).apisix.node_listen.port).toBe(7070);
    expect(loadConfig({ path: file, env: { TEST_PORT: '7171' } }).apisix.node_listen.port).toBe(7171);
  });

  test('PORTICO_ADMIN_KEY and PORTICO_DATA_DIR override the file', () => {
    const c = loadConfig({ env: { PORTICO_ADMIN_KEY: 'k'.repeat(32), PORTICO_DATA_DIR: '/tmp/portico-x' } });
    expect(c.deployment.admin.admin_key[0]).toEqual({ name: 'admin', key: 'k'.repeat(32), role: 'admin' });
    expect(c.deployment.admin.admin_key.filter((k) => k.role === 'admin')).toHaveLength(1);
    expect(c.deployment.embedded.data_dir).toBe('/tmp/portico-x');
  });
});

describe('starting the process', () => {
  test('a bad config stops start-up with exit 1 and a message naming the key', async () => {
    const file = writeTempConfig('apisix:\n  node_listen:\n    prot: 9080\n');
    const gp = startGatewayProcess(['--config', file]);
    const { code } = await gp.exited;
    expect(code).toBe(1);
    expect(gp.output()).toMatch(/failed to start: .*unknown key "apisix\.node_listen\.prot"/);
  });

  test("APISIX's published admin key is refused", async () => {
    const dir = tempDir();
    const gp = startGatewayProcess(['--config', writeTempConfig(testConfigYaml(dir))], {
      PORTICO_ADMIN_KEY: 'edd1c9f034335f136f87ad84b625c8f1',
    });
    expect((await gp.exited).code).toBe(1);
    expect(gp.output()).toMatch(/published default key/);
  });

  test('an empty admin key is generated once, its place printed once (never the key), kept across restarts, and SIGTERM stops cleanly', async () => {
    const dir = tempDir();
    const file = writeTempConfig(testConfigYaml(dir));
    const first = await startListening(['--config', file]);
    const secrets = join(dir, 'secrets.json');
    expect(first.output()).toContain(`Generated admin key "admin": stored in ${secrets} (field admin_keys.admin`);
    expect(first.output()).toContain(`Generated data encryption keyring: stored in ${secrets} (field keyring`);
    expect(statSync(secrets).mode & 0o777).toBe(0o600);
    const stored = JSON.parse(readFileSync(secrets, 'utf8')) as { admin_keys: Record<string, string>; keyring: string };
    const key = stored.admin_keys.admin!;
    expect(key).toMatch(/^[0-9a-f]{32}$/);
    // Full strength: 32 characters (AES-256) over base64url's 64, not 16 hex characters (AES-128, 64 bits).
    expect(stored.keyring).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(stored.keyring).not.toMatch(/^[0-9a-f]+$/);
    expect(first.output()).not.toContain(key);
    expect(first.output()).not.toContain(stored.keyring);
    const ok = await fetch(`http://127.0.0.1:${first.adminPort}/apisix/admin/routes`, { headers: { 'X-API-KEY': key } });
    expect(ok.status).toBe(200);
    const denied = await fetch(`http://127.0.0.1:${first.adminPort}/apisix/admin/routes`);
    expect(denied.status).toBe(401);
    first.proc.kill('SIGTERM');
    expect((await first.exited).code).toBe(0);

    const second = await startListening(['--config', file]);
    expect(second.output()).not.toMatch(/Generated admin key/);
    const again = await fetch(`http://127.0.0.1:${second.adminPort}/apisix/admin/routes`, { headers: { 'X-API-KEY': key } });
    expect(again.status).toBe(200);
    second.proc.kill('SIGINT');
    expect((await second.exited).code).toBe(0);
  });
});
