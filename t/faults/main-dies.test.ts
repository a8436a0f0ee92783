/**
 * The data plane keeps serving through process faults: a data-plane worker
 * killed with -9 is replaced and no request in a loop fails (the other worker
 * takes the connections); the main process killed with -9 leaves its workers
 * serving the last configuration, and the next main process on the same data
 * dir retires them and takes over.
 */
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startUpstream, type Upstream } from '../dataplane/helpers.js';
import { startListening, testConfigYaml, writeTempConfig } from '../helpers/process.js';

const root = mkdtempSync(join(tmpdir(), 'portico-main-dies-'));
const key = 'main-dies-test-key-0123456789abcdef';
let upstream: Upstream;
let node: string;

beforeAll(async () => {
  upstream = await startUpstream();
  node = `127.0.0.1:${upstream.port}`;
});
afterAll(async () => {
  await upstream?.close();
  rmSync(root, { recursive: true, force: true });
});

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(ppid) === pid && state !== 'Z') out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

/** Whether `pid` holds the socket listening on 127.0.0.1:`port` (node:cluster hands workers the primary's socket). */
function holdsListener(pid: number, port: number): boolean {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const inodes = readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f[1] === local && f[3] === '0A')
    .map((f) => `socket:[${f[9]}]`);
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return inodes.includes(readlinkSync(`/proc/${pid}/fd/${fd}`));
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** One request on a fresh connection: a connection never outlives its request, so a kill between requests costs none. */
function get(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { connection: 'close' }, timeout: 3_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

async function putRoute(adminPort: number): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/apisix/admin/routes/r1`, {
    method: 'PUT',
    headers: { 'X-API-KEY': key, 'content-type': 'application/json' },
    body: JSON.stringify({ uri: '/one', upstream: { type: 'roundrobin', nodes: { [node]: 1 } } }),
  });
  expect(res.status).toBe(201);
}

// Two workers; prometheus's export listener on an ephemeral port (9091 may be taken by another test).
const EXTRA = 'nginx_config:\n  worker_processes: 2\nplugin_attr:\n  prometheus:\n    export_addr: { ip: 127.0.0.1, port: 0 }\n';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a data-plane worker killed with -9 is replaced, and none of 300 requests in a loop fails', async () => {
  const dir = join(root, 'worker');
  const config = writeTempConfig(testConfigYaml(dir, EXTRA));
  const gw = await startListening(['--config', config], { PORTICO_ADMIN_KEY: key }, { timeoutMs: 60_000 });
  try {
    await putRoute(gw.adminPort);
    while ((await get(gw.dataPort, '/one')) !== 200) await sleep(50);
    const before = childrenOf(gw.proc.pid!);
    expect(before).toHaveLength(2);
    const statuses: number[] = [];
    for (let i = 0; i < 300; i++) {
      if (i === 100) process.kill(before[0]!, 'SIGKILL');
      statuses.push(await get(gw.dataPort, '/one'));
    }
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    // The replacement forks and compiles its config meanwhile; on a loaded machine that can outlast the loop.
    let after = childrenOf(gw.proc.pid!);
    for (let i = 0; i < 600 && after.length < 2; i++) {
      await sleep(50);
      after = childrenOf(gw.proc.pid!);
    }
    expect(after, `workers after the kill; the gateway said:\n${gw.output()}`).toHaveLength(2);
    expect(after).not.toContain(before[0]);
    // The replacement serves on the port clients know: once it holds the listener, the last original worker
    // dies too and the replacement alone answers every request.
    const replacement = after.find((pid) => pid !== before[1])!;
    for (let i = 0; i < 600 && !holdsListener(replacement, gw.dataPort) && alive(replacement); i++) await sleep(50);
    expect(holdsListener(replacement, gw.dataPort), `the replacement's listener; the gateway said:\n${gw.output()}`).toBe(true);
    process.kill(before[1]!, 'SIGKILL');
    const alone: number[] = [];
    for (let i = 0; i < 100; i++) alone.push(await get(gw.dataPort, '/one'));
    expect(alone.filter((s) => s !== 200), gw.output()).toEqual([]);
  } finally {
    gw.proc.kill('SIGKILL');
    await gw.exited;
  }
}, 180_000);

test('the main process killed with -9: its workers keep answering 200, and the next main process takes over', async () => {
  const dir = join(root, 'main');
  const config = writeTempConfig(testConfigYaml(dir, EXTRA));
  const first = await startListening(['--config', config], { PORTICO_ADMIN_KEY: key, PORTICO_LOG_LEVEL: 'error' }, { keepWorkers: true, timeoutMs: 60_000 });
  const workers = childrenOf(first.proc.pid!);
  try {
    await putRoute(first.adminPort);
    while ((await get(first.dataPort, '/one')) !== 200) await sleep(50);
    first.proc.kill('SIGKILL');
    await first.exited;
    const statuses: number[] = [];
    for (let i = 0; i < 200; i++) statuses.push(await get(first.dataPort, '/one'));
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect(workers.every(alive)).toBe(true);
    expect(first.output()).toMatch(/the main process is gone: serving the last configuration until a new main process takes over/);
    // The Admin API went with the main process.
    await expect(fetch(`http://127.0.0.1:${first.adminPort}/apisix/admin/routes`)).rejects.toThrow();

    // A new main process on the same data dir (and port) retires them and serves.
    const port = first.dataPort;
    const pinned = writeTempConfig(testConfigYaml(dir, EXTRA).replace('node_listen: { ip: 127.0.0.1, port: 0 }', `node_listen: { ip: 127.0.0.1, port: ${port} }`));
    const second = await startListening(['--config', pinned], { PORTICO_ADMIN_KEY: key }, { timeoutMs: 60_000 });
    try {
      expect(second.dataPort).toBe(port);
      for (const pid of workers) expect(alive(pid), `orphan ${pid}`).toBe(false);
      expect(await get(port, '/one')).toBe(200);
    } finally {
      second.proc.kill('SIGKILL');
      await second.exited;
    }
  } finally {
    for (const pid of workers) if (alive(pid)) process.kill(pid, 'SIGKILL');
  }
}, 180_000);
