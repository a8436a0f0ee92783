/**
 * Start-up failures an operator causes (a port someone else holds, a log level
 * pino does not know, a data dir the process may not write) are told in one
 * line naming the config key and the address or path, with exit status 1 and
 * no stack trace: run on real processes, with the port held by the test.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { freePort } from '../helpers/ports.js';
import { startGatewayProcess, testConfigYaml, writeTempConfig } from '../helpers/process.js';

const dir = mkdtempSync(join(tmpdir(), 'portico-startup-errors-'));
let held: Server;
let heldPort: number;

beforeAll(async () => {
  heldPort = await freePort();
  held = createServer();
  await new Promise<void>((r) => held.listen(heldPort, '127.0.0.1', r));
});
afterAll(async () => {
  await new Promise((r) => held.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const PROMETHEUS = 'plugin_attr:\n  prometheus:\n    export_addr: { ip: 127.0.0.1, port: 0 }\n';

/** Runs the gateway until it exits; its failure line and exit code. */
async function failedStart(yaml: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; line: string; output: string }> {
  const gp = startGatewayProcess(['--config', writeTempConfig(yaml)], { PORTICO_ADMIN_KEY: 'startup-errors-key-0123456789abcdef', ...env });
  const timer = setTimeout(() => gp.proc.kill('SIGKILL'), 60_000);
  const { code } = await gp.exited;
  clearTimeout(timer);
  const output = gp.output();
  const lines = output.split('\n').filter((l) => l.startsWith('portico: failed to start:'));
  expect(lines, output).toHaveLength(1);
  // No stack trace anywhere: a line starting with "    at " is one.
  expect(output, output).not.toMatch(/^\s+at /m);
  return { code, line: lines[0]!, output };
}

describe('a port already in use', () => {
  test('by the data plane (apisix.node_listen), bound in a forked worker as npm start does', async () => {
    const yaml = testConfigYaml(join(dir, 'd1'), PROMETHEUS).replace('node_listen: { ip: 127.0.0.1, port: 0 }', `node_listen: { ip: 127.0.0.1, port: ${heldPort} }`);
    const r = await failedStart(yaml);
    expect(r.code).toBe(1);
    expect(r.line).toBe(`portico: failed to start: cannot listen on 127.0.0.1:${heldPort} (apisix.node_listen): address already in use (another process listens there)`);
  }, 90_000);

  test('by the HTTPS listener (apisix.ssl.listen[0])', async () => {
    const yaml = testConfigYaml(join(dir, 'd2'), PROMETHEUS).replace('listen: [{ ip: 127.0.0.1, port: 0 }]', `listen: [{ ip: 127.0.0.1, port: ${heldPort} }]`);
    const r = await failedStart(yaml);
    expect(r.code).toBe(1);
    expect(r.line).toBe(`portico: failed to start: cannot listen on 127.0.0.1:${heldPort} (apisix.ssl.listen[0]): address already in use (another process listens there)`);
  }, 90_000);

  test('by the Admin API (deployment.admin.admin_listen)', async () => {
    const yaml = testConfigYaml(join(dir, 'd3'), PROMETHEUS).replace('admin_listen: { ip: 127.0.0.1, port: 0 }', `admin_listen: { ip: 127.0.0.1, port: ${heldPort} }`);
    const r = await failedStart(yaml);
    expect(r.code).toBe(1);
    expect(r.line).toBe(`portico: failed to start: cannot listen on 127.0.0.1:${heldPort} (deployment.admin.admin_listen): address already in use (another process listens there)`);
  }, 90_000);
});

test('an invalid log level names PORTICO_LOG_LEVEL and the levels there are', async () => {
  const r = await failedStart(testConfigYaml(join(dir, 'd4'), PROMETHEUS), { PORTICO_LOG_LEVEL: 'verbose' });
  expect(r.code).toBe(1);
  expect(r.line).toBe('portico: failed to start: invalid log level "verbose" (PORTICO_LOG_LEVEL): use one of fatal, error, warn, info, debug, trace, silent');
}, 60_000);

// Root ignores file modes, so the data dir is made immutable (chattr +i) where the file system allows it.
const immutable = (path: string, on: boolean) => spawnSync('chattr', [on ? '+i' : '-i', path]).status === 0;
const readOnlyDir = join(dir, 'read-only');
mkdirSync(readOnlyDir);
const canFreeze = immutable(readOnlyDir, true) && immutable(readOnlyDir, false);

test.skipIf(!canFreeze)('a data dir the store cannot write is one line naming deployment.embedded.data_dir', async () => {
  immutable(readOnlyDir, true);
  try {
    const r = await failedStart(testConfigYaml(readOnlyDir, PROMETHEUS));
    expect(r.code).toBe(1);
    expect(r.line).toMatch(
      new RegExp(`^portico: failed to start: cannot \\w[\\w ]+ in ${readOnlyDir} \\(deployment\\.embedded\\.data_dir\\): (EPERM|EACCES|EROFS)\\b`),
    );
  } finally {
    immutable(readOnlyDir, false);
  }
}, 60_000);
