/**
 * The embedded store belongs to one gateway: a second process on the same data
 * dir refuses to start, naming the dir and the process that holds it, and the
 * first keeps serving. Once the holder dies (even by kill -9) the dir is free.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { startGatewayProcess, startListening, testConfigYaml, writeTempConfig } from '../helpers/process.js';

const root = mkdtempSync(join(tmpdir(), 'portico-lock-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const key = 'lock-test-key-0123456789abcdef0123';

test('a second gateway on the same data dir exits 1 naming the dir and the holder; the first keeps serving', async () => {
  const dataDir = join(root, 'shared');
  const config = writeTempConfig(testConfigYaml(dataDir));
  const first = await startListening(['--config', config], { PORTICO_ADMIN_KEY: key });
  try {
    const second = startGatewayProcess(['--config', config], { PORTICO_ADMIN_KEY: key });
    const { code } = await second.exited;
    expect(code).toBe(1);
    const out = second.output();
    expect(out).toContain(`portico: failed to start: the embedded store in ${dataDir} (deployment.embedded.data_dir) is in use by process ${first.proc.pid}`);
    expect(out.trim().split('\n')).toHaveLength(1);
    expect(out).not.toMatch(/\n\s+at /);

    const res = await fetch(`http://127.0.0.1:${first.adminPort}/apisix/admin/routes`, { headers: { 'X-API-KEY': key } });
    expect(res.status).toBe(200);

    // kill -9 leaves no stale lock: the kernel drops it with the process.
    first.proc.kill('SIGKILL');
    await first.exited;
    const third = await startListening(['--config', config], { PORTICO_ADMIN_KEY: key });
    expect(third.output()).not.toMatch(/in use by/);
    third.proc.kill('SIGKILL');
    await third.exited;
  } finally {
    first.proc.kill('SIGKILL');
  }
}, 40_000);

test('a store that cannot be opened is one line naming the data dir, exit 1', async () => {
  // The database's path taken by a directory: fails for root too (root ignores a read-only mode).
  const dataDir = join(root, 'unopenable');
  mkdirSync(join(dataDir, 'portico.db'), { recursive: true });
  const config = writeTempConfig(testConfigYaml(dataDir));
  const gp = startGatewayProcess(['--config', config], { PORTICO_ADMIN_KEY: key });
  const { code } = await gp.exited;
  expect(code).toBe(1);
  expect(gp.output()).toMatch(new RegExp(`^(Generated .*\\n)*portico: failed to start: cannot open the embedded store in ${dataDir} \\(deployment\\.embedded\\.data_dir\\): .+\\n$`));
}, 40_000);
