/**
 * Soak: the gateway as `npm start` runs it (main process + one data-plane
 * worker), at 80% of the capacity measured first, for 10 minutes by default,
 * with a route rewritten through the Admin API every second. Reports non-2xx
 * answers, the RSS slope of every gateway process (MB per minute, least
 * squares over samples taken each second), and open file descriptors at the
 * start, middle and end. A benchmark, not a test: it asserts nothing.
 *
 *   npm run bench:soak -- [--minutes 10] [--seconds S (overrides minutes)] [--connections 32] [--share 0.8]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childrenOf, fds, freePort, rssMb } from './lib/procfs.js';

const args = process.argv.slice(2);
const opt = (name: string, def: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const SECONDS = opt('seconds', opt('minutes', 10) * 60);
const CONNECTIONS = opt('connections', 32);
const SHARE = opt('share', 0.8);
const KEY = 'soak-admin-key-0123456789abcdef0123';
const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


/** MB per minute, least squares. */
function slope(points: Array<[number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const num = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0);
  const den = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  return den === 0 ? 0 : (num / den) * 60;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'portico-soak-'));
  const upstream = (await import('node:http')).createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const node = `127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const [dataPort, adminPort] = [await freePort(), await freePort()];
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    `apisix:\n  node_listen: { ip: 127.0.0.1, port: ${dataPort} }\n  ssl:\n    listen: [{ ip: 127.0.0.1, port: 0 }]\n` +
      `plugin_attr:\n  prometheus:\n    export_addr: { ip: 127.0.0.1, port: 0 }\n` +
      `deployment:\n  admin:\n    admin_listen: { ip: 127.0.0.1, port: ${adminPort} }\n  embedded:\n    data_dir: ${join(dir, 'data')}\n`,
  );
  const gw = spawn(process.execPath, [MAIN, '--config', config], { env: { PATH: process.env.PATH, PORTICO_ADMIN_KEY: KEY, PORTICO_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => gw.stdout!.on('data', (d: Buffer) => /Admin API listening/.test(d.toString()) && resolve()));
  const admin = (path: string, body: unknown) =>
    fetch(`http://127.0.0.1:${adminPort}/apisix/admin${path}`, { method: 'PUT', headers: { 'X-API-KEY': KEY, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  await admin('/routes/soak', { uri: '/soak', upstream: { type: 'roundrobin', nodes: { [node]: 1 } } });
  await sleep(500);

  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const one = () =>
    new Promise<number>((resolve) => {
      const req = request({ host: '127.0.0.1', port: dataPort, path: '/soak', agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', () => resolve(0));
      req.end();
    });

  // Capacity: closed loop over CONNECTIONS connections for 5 s.
  let done = 0;
  const until = Date.now() + 5_000;
  await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
    while (Date.now() < until) if ((await one()) > 0) done++;
  }));
  const capacity = done / 5;
  const rate = Math.max(1, Math.floor(capacity * SHARE));
  console.log(`capacity ${capacity.toFixed(0)} req/s; soaking at ${rate} req/s (${SHARE * 100}%) for ${SECONDS} s, a route rewritten every second`);

  const pids = [gw.pid!, ...childrenOf(gw.pid!)];
  const rss = new Map<number, Array<[number, number]>>(pids.map((p) => [p, []]));
  const fdAt: Record<string, number[]> = {};
  const t0 = Date.now();
  const sampleFds = (when: string) => (fdAt[when] = pids.map(fds));
  sampleFds('start');
  let sent = 0;
  let non2xx = 0;
  let failed = 0;
  let routeWrites = 0;
  let routeFailures = 0;
  const inFlight = new Set<Promise<void>>();
  const ticker = setInterval(() => {
    const s = (Date.now() - t0) / 1000;
    for (const p of pids) rss.get(p)!.push([s, rssMb(p)]);
    routeWrites++;
    void admin('/routes/soak', { uri: '/soak', desc: `rev ${routeWrites}`, upstream: { type: 'roundrobin', nodes: { [node]: 1 } } }).then(
      (r) => void (r.status >= 300 && routeFailures++),
      () => void routeFailures++,
    );
  }, 1_000);
  let middleTaken = false;
  // Open loop: `rate` requests a second in 10 ms slices.
  while (Date.now() - t0 < SECONDS * 1000) {
    const due = Math.floor(((Date.now() - t0) / 1000) * rate);
    while (sent < due) {
      sent++;
      const p = one().then((status) => {
        if (status === 0) failed++;
        else if (status < 200 || status >= 300) non2xx++;
      });
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    }
    if (!middleTaken && Date.now() - t0 >= (SECONDS * 1000) / 2) {
      sampleFds('middle');
      middleTaken = true;
    }
    await sleep(10);
  }
  clearInterval(ticker);
  await Promise.all(inFlight);
  sampleFds('end');

  console.log(`requests ${sent}, non-2xx ${non2xx}, connection failures ${failed}; route writes ${routeWrites}, failed ${routeFailures}`);
  pids.forEach((p, i) => {
    const label = i === 0 ? 'main' : `worker ${i}`;
    const pts = rss.get(p)!;
    console.log(
      `${label} (pid ${p}): RSS ${pts[0]?.[1].toFixed(1)} -> ${pts.at(-1)?.[1].toFixed(1)} MB, slope ${slope(pts).toFixed(2)} MB/min; ` +
        `open fds start ${fdAt.start![i]} middle ${fdAt.middle?.[i] ?? '-'} end ${fdAt.end![i]}`,
    );
  });
  agent.destroy();
  gw.kill('SIGTERM');
  await new Promise((r) => gw.once('exit', r));
  upstream.close();
  rmSync(dir, { recursive: true, force: true });
}

void main();
