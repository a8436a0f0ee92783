/**
 * `npm start` with worker_processes 1: like nginx's master and worker, the
 * primary keeps the store and the Admin API and one forked worker serves the
 * requests. Shown on real processes: the requests come from the worker (killing
 * it cuts serving until the primary forks another, which starts from the
 * current config), and a worker whose primary is killed does not linger.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startListening, testConfigYaml, writeTempConfig } from '../helpers/process.js';

const dir = mkdtempSync(join(tmpdir(), 'portico-worker-proc-'));
const key = 'worker-proc-test-key-0123456789abcdef';
let upstream: Server;
let node: string;

beforeAll(async () => {
  upstream = createServer((req, res) => res.end(`upstream saw ${req.url}`));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  node = `127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((r) => upstream.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

/** Fields of /proc/PID/stat after the command name (0: state, 1: parent pid); undefined once it is gone. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  const fields = statFields(pid);
  return fields !== undefined && fields[0] !== 'Z';
}

/** Live child processes of `pid`. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const fields = statFields(Number(name));
    if (fields !== undefined && Number(fields[1]) === pid && fields[0] !== 'Z') out.push(Number(name));
  }
  return out;
}

async function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function get(port: number, path: string): Promise<{ status: number; body: string } | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2000) });
    return { status: res.status, body: await res.text() };
  } catch {
    return undefined; // nobody accepting right now
  }
}

test('worker_processes 1: one worker serves, and a killed worker is replaced with the current config', async () => {
  const config = writeTempConfig(testConfigYaml(dir, 'nginx_config:\n  worker_processes: 1\n'));
  const gw = await startListening(['--config', config], { PORTICO_ADMIN_KEY: key });
  try {
    const primary = gw.proc.pid!;
    const [worker, ...more] = childrenOf(primary);
    expect(worker).toBeDefined();
    expect(more).toEqual([]);

    const put = await fetch(`http://127.0.0.1:${gw.adminPort}/apisix/admin/routes/r1`, {
      method: 'PUT',
      headers: { 'X-API-KEY': key, 'content-type': 'application/json' },
      body: JSON.stringify({ uri: '/one', upstream: { type: 'roundrobin', nodes: { [node]: 1 } } }),
    });
    expect(put.status).toBe(201);
    // The write reaches the worker over IPC.
    expect(await until('the route in the worker', async () => (await get(gw.dataPort, '/one'))?.status === 200 && true)).toBe(true);
    expect(await get(gw.dataPort, '/one')).toEqual({ status: 200, body: 'upstream saw /one' });

    // The primary does not serve requests itself: with its worker gone, the data port answers nothing.
    process.kill(worker!, 'SIGSTOP');
    expect(await get(gw.dataPort, '/one')).toBeUndefined();
    process.kill(worker!, 'SIGKILL');

    // A route written while no worker runs is in the replacement's starting state.
    const put2 = await fetch(`http://127.0.0.1:${gw.adminPort}/apisix/admin/routes/r2`, {
      method: 'PUT',
      headers: { 'X-API-KEY': key, 'content-type': 'application/json' },
      body: JSON.stringify({ uri: '/two', upstream: { type: 'roundrobin', nodes: { [node]: 1 } } }),
    });
    expect(put2.status).toBe(201);
    const replacement = await until('a replacement worker', () => childrenOf(primary).find((p) => p !== worker)).catch((err: Error) => {
      throw new Error(`${err.message}; the gateway said:\n${gw.output()}`);
    });
    expect(await until('the replacement serving', async () => (await get(gw.dataPort, '/two'))?.status === 200 && true)).toBe(true);
    expect(await get(gw.dataPort, '/one')).toEqual({ status: 200, body: 'upstream saw /one' });
    expect(await get(gw.dataPort, '/two')).toEqual({ status: 200, body: 'upstream saw /two' });
    expect(gw.output()).toMatch(/data-plane worker died; starting a new one/);
    // kill -9 of the primary: the worker outlives it, serving its last configuration (issue 17), until a new
    // main process takes over: t/faults/main-dies.test.ts.
    expect(alive(replacement)).toBe(true);
  } finally {
    if (gw.proc.exitCode === null && gw.proc.signalCode === null) gw.proc.kill('SIGKILL');
  }
}, 30_000);

test('worker_processes 1: SIGINT to the whole process group (Ctrl-C) drains an in-flight request and exits 0', async () => {
  const slow = createServer((req, res) => {
    res.write('first half, ');
    setTimeout(() => res.end('second half'), 800);
  });
  await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
  const slowNode = `127.0.0.1:${(slow.address() as AddressInfo).port}`;
  const config = writeTempConfig(testConfigYaml(join(dir, 'sigint'), 'nginx_config:\n  worker_processes: 1\n'));
  const gw = await startListening(['--config', config], { PORTICO_ADMIN_KEY: key });
  try {
    const worker = childrenOf(gw.proc.pid!)[0]!;
    const put = await fetch(`http://127.0.0.1:${gw.adminPort}/apisix/admin/routes/slow`, {
      method: 'PUT',
      headers: { 'X-API-KEY': key, 'content-type': 'application/json' },
      body: JSON.stringify({ uri: '/slow', upstream: { type: 'roundrobin', nodes: { [slowNode]: 1 } } }),
    });
    expect(put.status).toBe(201);
    await until('the route in the worker', async () => (await get(gw.dataPort, '/slow'))?.status === 200 && true);
    const inFlight = fetch(`http://127.0.0.1:${gw.dataPort}/slow`).then(async (res) => ({ status: res.status, body: await res.text() }));
    await new Promise((r) => setTimeout(r, 300));
    // What a terminal's Ctrl-C does: both processes get SIGINT at once.
    process.kill(worker, 'SIGINT');
    gw.proc.kill('SIGINT');
    expect(await inFlight).toEqual({ status: 200, body: 'first half, second half' });
    expect((await gw.exited).code).toBe(0);
    expect(await until('the worker to exit', () => !alive(worker))).toBe(true);
  } finally {
    if (gw.proc.exitCode === null && gw.proc.signalCode === null) gw.proc.kill('SIGKILL');
    await new Promise<void>((r) => slow.close(() => r()));
  }
}, 30_000);
