/**
 * A/B of two Portico builds, head to head: both gateways (one worker each)
 * pinned to the same core and loaded at the same moment by their own wrk, so
 * the scheduler splits the core between them and the requests/s ratio is the
 * inverse of their CPU cost per request under identical conditions. Drift and
 * other load on the machine fall on both at once, which makes this usable on
 * a busy machine where absolute figures are not. Which wrk starts first
 * alternates by round. It asserts nothing.
 *
 *   npm run bench:ab -- --b /path/to/other/checkout [--rounds 10] [--duration 5] [--path /plain]
 *
 * `--b` is another checkout of Portico with its own `npm run build` done; A is
 * this one. The ratio printed is B / A (above 1: B serves more per CPU second).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const ROUNDS = Number(opt('rounds') ?? 10);
const DURATION = Number(opt('duration') ?? 5);
const PATH = opt('path') ?? '/plain';
const B = opt('b');
if (!B) {
  console.error('usage: node dist/bench/ab.js --b /path/to/other/checkout [--rounds N] [--duration S] [--path /plain|/plugins]');
  process.exit(2);
}
const A = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../..' : '..', import.meta.url));
const ADMIN_KEY = 'bench-admin-key-0123456789abcdef';
const API_KEY = 'bench-consumer-key';
const tmp = mkdtempSync(join(tmpdir(), 'portico-ab-'));
const children: ChildProcess[] = [];
process.on('exit', () => {
  // Each child leads its own process group: a gateway's workers outlive a killed main process by design
  // (they keep serving until a new main takes over), so the whole group goes, not only the main.
  for (const c of children) {
    try {
      if (c.pid !== undefined) process.kill(-c.pid, 'SIGKILL');
    } catch {
      c.kill('SIGKILL');
    }
  }
  rmSync(tmp, { recursive: true, force: true });
});
const run = promisify(execFile);

function start(core: string, cmd: string, argv: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; output: () => string } {
  const child = spawn('taskset', ['-c', core, cmd, ...argv], { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let text = '';
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  children.push(child);
  return { child, output: () => text };
}

async function waitFor(output: () => string, re: RegExp, ms = 30_000): Promise<RegExpMatchArray> {
  for (const until = Date.now() + ms; Date.now() < until; await new Promise((r) => setTimeout(r, 50))) {
    const m = output().match(re);
    if (m) return m;
  }
  throw new Error(`timed out waiting for ${re}: ${output().slice(-500)}`);
}

async function admin(port: number, path: string, body: unknown): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${port}/apisix/admin${path}`, {
    method: 'PUT',
    headers: { 'X-API-KEY': ADMIN_KEY, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (res.status >= 300) throw new Error(`admin ${path}: ${res.status} ${await res.text()}`);
}

async function gateway(root: string, name: string, upstreamPort: number): Promise<number> {
  const config = join(tmp, `${name}.yaml`);
  writeFileSync(
    config,
    `apisix:\n  node_listen: { ip: 127.0.0.1, port: 0 }\nnginx_config:\n  worker_processes: 1\ndeployment:\n  admin:\n    admin_listen: { ip: 127.0.0.1, port: 0 }\n  embedded:\n    data_dir: ${tmp}/${name}-data\n`,
  );
  const g = start('0', process.execPath, [join(root, 'dist/src/main.js'), '--config', config], { PORTICO_ADMIN_KEY: ADMIN_KEY, PORTICO_LOG_LEVEL: 'warn' });
  const data = Number((await waitFor(g.output, /data plane listening on http:\/\/[^:]+:(\d+)/))[1]);
  const adminPort = Number((await waitFor(g.output, /Admin API listening on http:\/\/[^:]+:(\d+)/))[1]);
  await admin(adminPort, '/upstreams/1', { type: 'roundrobin', nodes: { [`127.0.0.1:${upstreamPort}`]: 1 }, keepalive_pool: { size: 320, requests: 1_000_000 } });
  await admin(adminPort, '/routes/plain', { uri: '/plain', upstream_id: '1' });
  await admin(adminPort, '/consumers', { username: 'bench', plugins: { 'key-auth': { key: API_KEY } } });
  await admin(adminPort, '/routes/plugins', {
    uri: '/plugins',
    upstream_id: '1',
    plugins: { 'key-auth': {}, 'limit-count': { count: 1_000_000_000, time_window: 3600, rejected_code: 429 } },
  });
  await new Promise((r) => setTimeout(r, 300));
  return data;
}

async function nginx(): Promise<number> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const conf = join(tmp, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes 1; daemon off; pid ${tmp}/nginx.pid; error_log ${tmp}/nginx.err;\nevents { worker_connections 4096; }\nhttp { access_log off; keepalive_requests 1000000;\n  server { listen 127.0.0.1:${port}; location / { return 200 "0123456789abcdefghi\\n"; } } }\n`,
  );
  start('1', 'nginx', ['-c', conf, '-p', tmp]);
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(`http://127.0.0.1:${port}/`);
      return port;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error('nginx did not start');
}

async function wrk(port: number): Promise<number> {
  const argv = ['-c', '1', 'wrk', '-t1', '-c50', `-d${DURATION}s`];
  if (PATH === '/plugins') argv.push('-H', `apikey: ${API_KEY}`);
  argv.push(`http://127.0.0.1:${port}${PATH}`);
  const { stdout } = await run('taskset', argv, { encoding: 'utf8' });
  return Number(stdout.match(/Requests\/sec:\s+([\d.]+)/)?.[1]);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

async function main(): Promise<void> {
  const up = await nginx();
  const a = await gateway(A, 'a', up);
  const b = await gateway(B!, 'b', up);
  await Promise.all([wrk(a), wrk(b)]); // warm up JITs and pools
  const ratios: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const [ra, rb] = round % 2 === 1 ? await Promise.all([wrk(a), wrk(b)]) : await Promise.all([wrk(b), wrk(a)]).then(([y, x]) => [x, y] as const);
    ratios.push(rb / ra);
    console.log(`round ${round}: A ${ra.toFixed(0)} req/s, B ${rb.toFixed(0)} req/s, B/A ${(rb / ra).toFixed(3)}`);
  }
  const s = [...ratios].sort((x, y) => x - y);
  console.log(`B/A on ${PATH}, head to head, ${ROUNDS} rounds of ${DURATION}s: median ${median(ratios).toFixed(3)}x [${s[0]!.toFixed(3)}-${s[s.length - 1]!.toFixed(3)}]`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
