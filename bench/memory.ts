/**
 * Memory: what stored objects cost a data-plane worker once compiled. Starts
 * the gateway as `npm start` does with one worker, reads the worker's RSS
 * (/proc/PID/status), writes N ordinary routes through the Admin API (a uri, a
 * host, an upstream of 2 nodes, two plugins) in concurrent batches, waits until
 * the data plane serves the last one, and reports MB per 1,000 routes, then the
 * RSS after deleting them all. One fresh gateway per N.
 *
 * `--arrays` measures the large arrays instead: for each bounded field (route
 * `uris`, `hosts`, `remote_addrs`, `vars`, upstream `nodes`, ip-restriction's
 * `whitelist`) it writes `--objects` routes each carrying `--items` entries and
 * reports the cost per entry (KB), the figures docs/reliability.md quotes.
 *
 * RSS moves in steps with the garbage collector and V8 keeps freed heap, so
 * RSS overstates what stays live; the worker runs with --trace-gc and the
 * routes run also reports its heap after the latest full collection (a live
 * heap estimate; "NaN" before the first). Figures are taken after the data
 * plane settles (`--settle` seconds). A benchmark, not a test: it asserts
 * nothing. Run it on a quiet machine.
 *
 *   npm run bench:memory -- [--routes 1000,5000,10000] [--batch 50] [--settle 3]
 *   npm run bench:memory -- --arrays [--objects 20] [--items 4096]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childrenOf, freePort, rssMb } from './lib/procfs.js';

const args = process.argv.slice(2);
const opt = (name: string, def: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : def;
};
const ROUTES = opt('routes', '1000,5000,10000').split(',').map(Number);
const BATCH = Number(opt('batch', '50'));
const SETTLE_MS = Number(opt('settle', '3')) * 1000;
const ARRAYS = args.includes('--arrays');
const OBJECTS = Number(opt('objects', '20'));
const ITEMS = Number(opt('items', '4096'));
const KEY = 'memory-admin-key-0123456789abcdef01';
const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


interface RunningGateway {
  proc: ChildProcess;
  worker: number;
  /** The worker's live heap (MB) after its latest full GC, from --trace-gc; NaN before the first. */
  heapAfterGc(): number;
  dataPort: number;
  admin(method: string, path: string, body?: unknown): Promise<number>;
  stop(): Promise<void>;
}

async function startGateway(): Promise<RunningGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'portico-memory-'));
  const [dataPort, adminPort] = [await freePort(), await freePort()];
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    `apisix:\n  node_listen: { ip: 127.0.0.1, port: ${dataPort} }\n  ssl:\n    listen: [{ ip: 127.0.0.1, port: 0 }]\n` +
      `nginx_config:\n  worker_processes: 1\n` +
      `plugin_attr:\n  prometheus:\n    export_addr: { ip: 127.0.0.1, port: 0 }\n` +
      `deployment:\n  admin:\n    admin_listen: { ip: 127.0.0.1, port: ${adminPort} }\n  embedded:\n    data_dir: ${join(dir, 'data')}\n`,
  );
  // Its own process group, so stopping it stops its worker too, whatever happens to the main process.
  const proc = spawn(process.execPath, [MAIN, '--config', config], {
    // --trace-gc: the worker prints each collection's heap sizes, the cheap way to tell live heap from garbage.
    env: { PATH: process.env.PATH, PORTICO_ADMIN_KEY: KEY, PORTICO_LOG_LEVEL: 'warn', PORTICO_WORKER_NODE_ARGS: '--trace-gc' },
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  let heap = NaN;
  let partial = '';
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => {
      const text = partial + d.toString();
      const lines = text.split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        if (/Admin API listening/.test(line)) resolve();
        // `[pid:0x...]   1234 ms: Mark-Compact 45.1 (60.2) -> 30.3 (55.0) MB, ...`: only the worker traces.
        const m = /Mark-Compact(?: \(reduce\))? [\d.]+ \([\d.]+\) -> ([\d.]+) \(/.exec(line);
        if (m) heap = Number(m[1]);
      }
    });
    proc.once('exit', (code) => reject(new Error(`gateway exited with ${code}`)));
  });
  const workers = childrenOf(proc.pid!);
  if (workers.length !== 1) throw new Error(`expected one data-plane worker, found ${workers.length}`);
  return {
    proc,
    heapAfterGc: () => heap,
    worker: workers[0]!,
    dataPort,
    async admin(method, path, body) {
      const res = await fetch(`http://127.0.0.1:${adminPort}/apisix/admin${path}`, {
        method,
        headers: { 'X-API-KEY': KEY, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      await res.arrayBuffer();
      return res.status;
    },
    async stop() {
      const exited = new Promise((r) => proc.once('exit', r));
      process.kill(-proc.pid!, 'SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs `write(i)` for i in [0, n) with BATCH in flight; every answer must be 2xx. */
async function writeAll(n: number, write: (i: number) => Promise<number>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(BATCH, n) }, async () => {
      while (next < n) {
        const i = next++;
        const status = await write(i);
        if (status >= 300) throw new Error(`write ${i} answered ${status}`);
      }
    }),
  );
}

/** Waits until the data plane answers `want` for a request (the last write has been compiled and swapped in). */
async function waitServed(dataPort: number, path: string, headers: Record<string, string>, want: number): Promise<void> {
  const until = Date.now() + 120_000;
  for (;;) {
    const status = await get(dataPort, path, headers);
    if (status === want) return;
    if (Date.now() > until) throw new Error(`${path} never answered ${want} (last ${status})`);
    await sleep(100);
  }
}

/** node:http, not fetch: fetch drops a Host header. 0 when the connection fails. */
function get(port: number, path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

async function settledRss(pid: number): Promise<number> {
  await sleep(SETTLE_MS);
  return rssMb(pid);
}

function ordinaryRoute(i: number, nodes: Record<string, number>): Record<string, unknown> {
  return {
    uri: `/r/${i}/*`,
    host: `h${i}.example.com`,
    plugins: {
      'proxy-rewrite': { regex_uri: [`^/r/${i}/(.*)`, '/$1'] },
      'limit-count': { count: 1000, time_window: 60, rejected_code: 503, key: 'remote_addr' },
    },
    upstream: { type: 'roundrobin', nodes },
  };
}

async function routesRun(n: number, nodes: Record<string, number>): Promise<void> {
  const gw = await startGateway();
  try {
    await waitServed(gw.dataPort, '/none', {}, 404);
    const before = await settledRss(gw.worker);
    const heapBefore = gw.heapAfterGc();
    const t0 = Date.now();
    await writeAll(n, (i) => gw.admin('PUT', `/routes/m${i}`, ordinaryRoute(i, nodes)));
    await waitServed(gw.dataPort, `/r/${n - 1}/x`, { host: `h${n - 1}.example.com` }, 200);
    const written = (Date.now() - t0) / 1000;
    const loaded = await settledRss(gw.worker);
    const heapLoaded = gw.heapAfterGc();
    await writeAll(n, (i) => gw.admin('DELETE', `/routes/m${i}`));
    await waitServed(gw.dataPort, `/r/${n - 1}/x`, { host: `h${n - 1}.example.com` }, 404);
    const emptied = await settledRss(gw.worker);
    const perThousand = (a: number, b: number) => (((b - a) / n) * 1000).toFixed(1);
    console.log(
      `${n} routes: worker RSS ${before.toFixed(1)} -> ${loaded.toFixed(1)} MB (${perThousand(before, loaded)} MB per 1,000 routes, ` +
        `written and served in ${written.toFixed(1)} s); after deleting them all ${emptied.toFixed(1)} MB\n` +
        `  live heap at the last full GC: ${heapBefore.toFixed(1)} -> ${heapLoaded.toFixed(1)} MB (${perThousand(heapBefore, heapLoaded)} MB per 1,000 routes); ` +
        `after deleting them all ${gw.heapAfterGc().toFixed(1)} MB`,
    );
  } finally {
    await gw.stop();
  }
}

/** One route carrying `items` entries of one array; `probe` is a request that matches route `i`. */
interface ArrayCase {
  field: string;
  route(i: number, items: number, node: string): Record<string, unknown>;
  probe(i: number): { path: string; headers: Record<string, string> };
}

const range = <T>(n: number, f: (k: number) => T): T[] => Array.from({ length: n }, (_, k) => f(k));
const ip = (i: number, k: number) => `10.${i % 256}.${(k >> 8) & 255}.${k & 255}`;
const ARRAY_CASES: ArrayCase[] = [
  {
    field: 'route uris',
    route: (i, n, node) => ({ uris: range(n, (k) => `/a/${i}/path/segment/${k}`), upstream: { nodes: { [node]: 1 } } }),
    probe: (i) => ({ path: `/a/${i}/path/segment/0`, headers: {} }),
  },
  {
    field: 'route hosts',
    route: (i, n, node) => ({ uri: `/h/${i}`, hosts: range(n, (k) => `host-${k}.tenant-${i}.example.com`), upstream: { nodes: { [node]: 1 } } }),
    probe: (i) => ({ path: `/h/${i}`, headers: { host: `host-0.tenant-${i}.example.com` } }),
  },
  {
    field: 'route remote_addrs',
    route: (i, n, node) => ({ uri: `/ra/${i}`, remote_addrs: ['127.0.0.1', ...range(n - 1, (k) => ip(i, k))], upstream: { nodes: { [node]: 1 } } }),
    probe: (i) => ({ path: `/ra/${i}`, headers: {} }),
  },
  {
    field: 'route vars',
    route: (i, n, node) => ({ uri: `/v/${i}`, vars: range(n, (k) => ['http_x_none', '!', '==', `value-${k}`]), upstream: { nodes: { [node]: 1 } } }),
    probe: (i) => ({ path: `/v/${i}`, headers: {} }),
  },
  {
    field: 'upstream nodes',
    route: (i, n, node) => ({
      uri: `/n/${i}`,
      upstream: { nodes: [{ host: '127.0.0.1', port: Number(node.split(':')[1]), weight: 1 }, ...range(n - 1, (k) => ip(i, k)).map((host) => ({ host, port: 80, weight: 0 }))] },
    }),
    probe: (i) => ({ path: `/n/${i}`, headers: {} }),
  },
  {
    field: 'ip-restriction whitelist',
    route: (i, n, node) => ({ uri: `/w/${i}`, plugins: { 'ip-restriction': { whitelist: ['127.0.0.1', ...range(n - 1, (k) => ip(i, k))] } }, upstream: { nodes: { [node]: 1 } } }),
    probe: (i) => ({ path: `/w/${i}`, headers: {} }),
  },
];

async function arraysRun(node: string): Promise<void> {
  console.log(`${OBJECTS} routes of ${ITEMS} entries each, per field (one fresh gateway each):`);
  for (const c of ARRAY_CASES) {
    const gw = await startGateway();
    try {
      await waitServed(gw.dataPort, '/none', {}, 404);
      const before = await settledRss(gw.worker);
      await writeAll(OBJECTS, (i) => gw.admin('PUT', `/routes/a${i}`, c.route(i, ITEMS, node)));
      const last = c.probe(OBJECTS - 1);
      await waitServed(gw.dataPort, last.path, last.headers, 200);
      const loaded = await settledRss(gw.worker);
      const perItemKb = ((loaded - before) * 1024) / (OBJECTS * ITEMS);
      const perObjectMb = (loaded - before) / OBJECTS;
      console.log(`  ${c.field}: worker RSS ${before.toFixed(1)} -> ${loaded.toFixed(1)} MB; ${perObjectMb.toFixed(2)} MB a route, ${perItemKb.toFixed(2)} KB an entry`);
    } finally {
      await gw.stop();
    }
  }
}

async function main(): Promise<void> {
  const upstream: Server = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const node = `127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  try {
    if (ARRAYS) await arraysRun(node);
    // The second node is never picked (weight 0) but is compiled like any other.
    else for (const n of ROUTES) await routesRun(n, { [node]: 1, '127.0.0.2:1980': 0 });
  } finally {
    upstream.close();
  }
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
