/**
 * `npm start` tells the truth at start-up, on a real process with two
 * data-plane workers: the data plane's line is printed once every worker
 * accepts, the Admin API opens only after that (so a node whose Admin API
 * answers already serves requests, and a script that waits for the Admin API
 * can send traffic at once), and the lines come in that order.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { freePort } from '../helpers/ports.js';
import { startGatewayProcess, testConfigYaml, writeTempConfig } from '../helpers/process.js';

const dir = mkdtempSync(join(tmpdir(), 'portico-startup-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The status of GET `path`, or undefined when nobody accepts on `port`. */
function status(port: number, path: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

test('the Admin API opens only once the data plane serves, and the listening lines say so in that order', async () => {
  const [dataPort, adminPort] = [await freePort(), await freePort()];
  const yaml = testConfigYaml(dir, 'nginx_config:\n  worker_processes: 2\n')
    .replace('node_listen: { ip: 127.0.0.1, port: 0 }', `node_listen: { ip: 127.0.0.1, port: ${dataPort} }`)
    .replace('admin_listen: { ip: 127.0.0.1, port: 0 }', `admin_listen: { ip: 127.0.0.1, port: ${adminPort} }`);
  const gp = startGatewayProcess(['--config', writeTempConfig(yaml)], { PORTICO_ADMIN_KEY: 'startup-test-key-0123456789abcdef' });
  try {
    // The first moment the Admin API answers (401: no key), the data plane answers too (404: no route).
    let adminStatus: number | undefined;
    for (const end = Date.now() + 60_000; adminStatus === undefined; ) {
      expect(Date.now()).toBeLessThan(end);
      expect(gp.proc.exitCode).toBeNull();
      adminStatus = await status(adminPort, '/apisix/admin/routes');
      if (adminStatus === undefined) await new Promise((r) => setTimeout(r, 5));
    }
    const dataStatus = await status(dataPort, '/nothing-here');
    expect(adminStatus).toBe(401);
    expect(dataStatus).toBe(404);

    await gp.waitFor(/Admin API listening/, 60_000);
    const lines = gp.output().split('\n').filter((l) => l.includes(' listening on '));
    // The HTTPS listener (apisix.ssl, on by default as in APISIX) is the data plane's too: it comes before the Admin API.
    // Then the control API (apisix.enable_control, on by default as in APISIX), also before the Admin API.
    expect(lines).toHaveLength(4);
    expect(lines[0]).toBe(`Portico data plane listening on http://127.0.0.1:${dataPort}`);
    expect(lines[1]).toMatch(/^Portico data plane listening on https:\/\/[\d.]+:\d+$/);
    expect(lines[2]).toMatch(/^Portico control API listening on http:\/\/127\.0\.0\.1:\d+$/);
    expect(lines[3]).toBe(`Portico Admin API listening on http://127.0.0.1:${adminPort}/apisix/admin`);
  } finally {
    gp.proc.kill('SIGTERM');
    await gp.exited;
  }
}, 90_000);

test('the data plane line is printed only when the data plane accepts', async () => {
  const gp = startGatewayProcess(['--config', writeTempConfig(testConfigYaml(dir, 'nginx_config:\n  worker_processes: 2\n'))], {
    PORTICO_ADMIN_KEY: 'startup-test-key-0123456789abcdef',
  });
  try {
    const port = Number((await gp.waitFor(/data plane listening on http:\/\/[^:]+:(\d+)/, 60_000))[1]);
    // Several fresh connections at once, so both workers are asked.
    const statuses = await Promise.all(Array.from({ length: 8 }, () => status(port, '/nothing-here')));
    expect(statuses).toEqual(Array(8).fill(404));
  } finally {
    gp.proc.kill('SIGTERM');
    await gp.exited;
  }
}, 90_000);

/** The Node flags a process was started with, from /proc. */
function nodeArgs(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
}

test('nginx_config.worker_semi_space_mb reaches every data-plane worker as --max-semi-space-size, and the default is 32', async () => {
  for (const [extra, want] of [
    ['nginx_config:\n  worker_processes: 2\n  worker_semi_space_mb: 8\n', '--max-semi-space-size=8'],
    ['nginx_config:\n  worker_processes: 1\n', '--max-semi-space-size=32'], // conf/config.yaml's default
  ] as const) {
    const gp = startGatewayProcess(['--config', writeTempConfig(testConfigYaml(mkdtempSync(join(dir, 'semi-')), extra))], {
      PORTICO_ADMIN_KEY: 'startup-test-key-0123456789abcdef',
    });
    try {
      await gp.waitFor(/data plane listening on/, 60_000);
      const workers = readFileSync(`/proc/${gp.proc.pid}/task/${gp.proc.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
      expect(workers.length).toBe(extra.includes('worker_processes: 2') ? 2 : 1);
      for (const pid of workers) expect(nodeArgs(pid)).toContain(want);
      expect(nodeArgs(gp.proc.pid!).some((a) => a.startsWith('--max-semi-space-size'))).toBe(false); // the primary keeps Node's default
    } finally {
      gp.proc.kill('SIGTERM');
      await gp.exited;
    }
  }
}, 120_000);

test('a worker_semi_space_mb outside 1..1024 refuses to start, naming the key', async () => {
  const gp = startGatewayProcess(['--config', writeTempConfig(testConfigYaml(dir, 'nginx_config:\n  worker_semi_space_mb: 0\n'))], {
    PORTICO_ADMIN_KEY: 'startup-test-key-0123456789abcdef',
  });
  const { code } = await gp.exited;
  expect(code).toBe(1);
  expect(gp.output()).toMatch(/worker_semi_space_mb/);
}, 60_000);
