/**
 * Proxy benchmark: requests per second, p99 latency and proxy CPU time per
 * request, for the same nginx upstream hit
 *   - directly,
 *   - through the lean Node limit (node:http + undici Pool.dispatch),
 *   - through @fastify/http-proxy,
 *   - through Portico with no plugins,
 *   - through Portico with key-auth + limit-count,
 *   - through Portico with key-auth + limit-req,
 *   - from Portico's proxy-cache (memory zone, every request a HIT), against nginx serving the same body,
 *   - through Portico with http-logger, posting to a local collector that answers 200,
 * with every proxy pinned to core 0 and wrk + nginx on core 1. Rounds are
 * interleaved and ratios are taken round by round, so drift on the machine
 * affects all targets alike. This is a benchmark, not a test: it asserts nothing.
 *
 *   npm run bench -- [--rounds 8] [--duration 4] [--connections 50] [--only 'no plugins,http-logger']
 *   npm run bench -- --tls [--rounds 8]   HTTPS instead: Portico's listener against the lean proxy on
 *                                          node:https, with keep-alive, and one new handshake per request
 *                                          (--tls-http1: Portico's listener without HTTP/2, node:https too)
 *
 * On a shared or virtual machine single runs swing by ±25%: read the medians
 * and the min–max spread printed beside them, and the CPU time per request
 * (utime+stime of the pinned process around each run), which is steadier.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const args = process.argv.slice(2);
function opt(name: string, def: number): number {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
}
const ROUNDS = opt('rounds', 8);
const DURATION = opt('duration', 4);
const CONNECTIONS = opt('connections', 50);
const H2H_ROUNDS = opt('h2h-rounds', 4);
// --only portico,nginx: only the targets whose names contain one of these (quick iteration on one pair).
const ONLY = args.includes('--only') ? args[args.indexOf('--only') + 1]!.split(',') : undefined;
const TWO_CORES = cpus().length >= 2;
const PROXY_CORE = '0';
const LOAD_CORE = TWO_CORES ? '1' : '0';
const ROOT = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../..' : '..', import.meta.url));
const API_KEY = 'bench-consumer-key';
const ADMIN_KEY = 'bench-admin-key-0123456789abcdef';

const children: ChildProcess[] = [];
const tmp = mkdtempSync(join(tmpdir(), 'portico-bench-'));
function cleanup(): void {
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
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as import('node:net').AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

const outputs = new WeakMap<ChildProcess, { text: string }>();

function pinned(core: string, cmd: string, argv: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const c = spawn('taskset', ['-c', core, cmd, ...argv], { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const out = { text: '' };
  outputs.set(c, out);
  c.stdout!.on('data', (d: Buffer) => (out.text += d.toString()));
  c.stderr!.on('data', (d: Buffer) => (out.text += d.toString()));
  children.push(c);
  return c;
}

/** Waits for `re` in everything the child printed so far or prints later. */
async function waitFor(c: ChildProcess, re: RegExp, ms = 20_000): Promise<RegExpMatchArray> {
  const out = outputs.get(c)!;
  for (const deadline = Date.now() + ms; Date.now() < deadline; ) {
    const m = out.text.match(re);
    if (m) return m;
    if (c.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`waiting for ${re}: ${out.text}`);
}

async function startNginx(): Promise<number> {
  const port = await freePort();
  const conf = join(tmp, 'nginx.conf');
  writeFileSync(
    conf,
    `daemon off; master_process off; worker_processes 1; pid ${tmp}/nginx.pid; error_log ${tmp}/nginx-error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 120s;
  server { listen 127.0.0.1:${port} reuseport; location / { default_type text/plain; return 200 "hello from upstream\\n"; } } }
`,
  );
  pinned(LOAD_CORE, 'nginx', ['-c', conf, '-e', `${tmp}/nginx-error.log`]);
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

interface Target {
  name: string;
  url: string;
  pid?: number;
  headers?: string[];
}

async function startNodeBaseline(file: string, upstream: string, env: NodeJS.ProcessEnv = {}): Promise<{ port: number; pid: number }> {
  const c = pinned(PROXY_CORE, process.execPath, [join(ROOT, 'dist/bench/baselines', file), upstream], env);
  const m = await waitFor(c, /listening (\d+)/);
  return { port: Number(m[1]), pid: c.pid! };
}

async function admin(port: number, path: string, body: unknown): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${port}/apisix/admin${path}`, {
    method: 'PUT',
    headers: { 'X-API-KEY': ADMIN_KEY, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (res.status >= 300) throw new Error(`admin ${path}: ${res.status} ${await res.text()}`);
}

/** http-logger's destination: reads each batch and answers 200 (in this process, which idles while wrk runs). */
async function startCollector(): Promise<string> {
  const { createServer: createHttpServer } = await import('node:http');
  const server = createHttpServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-length': '0' }).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}/logs`;
}

async function startPortico(upstreamPort: number, tls?: { port: number; cert: string; key: string }, collector?: string): Promise<{ port: number; pid: number }> {
  const config = join(tmp, 'portico.yaml');
  const ssl = tls ? `  ssl:\n    listen: [{ ip: 127.0.0.1, port: ${tls.port}${args.includes('--tls-http1') ? ', enable_http2: false' : ''} }]\n` : '  ssl:\n    enable: false\n';
  writeFileSync(
    config,
    `apisix:\n  node_listen: { ip: 127.0.0.1, port: 0 }\n${ssl}nginx_config:\n  worker_processes: 1\ndeployment:\n  admin:\n    admin_listen: { ip: 127.0.0.1, port: 0 }\n  embedded:\n    data_dir: ${tmp}/portico-data\n`,
  );
  const c = pinned(PROXY_CORE, process.execPath, [join(ROOT, 'dist/src/main.js'), '--config', config], {
    PORTICO_ADMIN_KEY: ADMIN_KEY,
    PORTICO_LOG_LEVEL: 'warn',
  });
  const data = await waitFor(c, /data plane listening on http:\/\/[^:]+:(\d+)/);
  const adm = await waitFor(c, /Admin API listening on http:\/\/[^:]+:(\d+)/);
  const adminPort = Number(adm[1]);
  // requests: as many as nginx's keepalive_requests, so Portico's pool, like the baselines' undici pools,
  // never recycles a connection during the run. APISIX's default (1000) reconnects every 1000 requests,
  // which measured ~5% of requests/s here: a pool policy, not hot-path cost, so it is kept out of the ratio.
  const upstream = { type: 'roundrobin', nodes: { [`127.0.0.1:${upstreamPort}`]: 1 }, keepalive_pool: { size: 320, requests: 1_000_000 } };
  await admin(adminPort, '/upstreams/1', upstream);
  await admin(adminPort, '/routes/plain', { uri: '/plain', upstream_id: '1' });
  if (tls) await admin(adminPort, '/ssls/1', { sni: 'localhost', cert: tls.cert, key: tls.key });
  await admin(adminPort, '/consumers', { username: 'bench', plugins: { 'key-auth': { key: API_KEY } } });
  await admin(adminPort, '/routes/plugins', {
    uri: '/plugins',
    upstream_id: '1',
    plugins: { 'key-auth': {}, 'limit-count': { count: 1_000_000_000, time_window: 3600, rejected_code: 429 } },
  });
  // A rate no run reaches; the burst absorbs requests that share a millisecond (the bucket's clock), so none waits.
  await admin(adminPort, '/routes/limit-req', {
    uri: '/limit-req',
    upstream_id: '1',
    plugins: { 'key-auth': {}, 'limit-req': { rate: 1_000_000_000, burst: 1_000_000, key: 'remote_addr', rejected_code: 429 } },
  });
  // Every request after the first is a HIT: nginx's body from Portico's memory zone.
  await admin(adminPort, '/routes/cached', { uri: '/cached', upstream_id: '1', plugins: { 'proxy-cache': { cache_strategy: 'memory', cache_zone: 'memory_cache' } } });
  if (collector) await admin(adminPort, '/routes/logged', { uri: '/logged', upstream_id: '1', plugins: { 'http-logger': { uri: collector } } });
  await new Promise((r) => setTimeout(r, 200));
  return { port: Number(data[1]), pid: c.pid! };
}

/** Fields after the command name in /proc/PID/stat (index 0 is the state). */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined; // exited meanwhile
  }
}

/**
 * utime + stime of a process, its threads and its live descendants, in
 * seconds: Portico serves from a forked worker while its primary holds the
 * Admin API, and both count (taskset pins the whole tree to the proxy core).
 */
function cpuSeconds(pid: number): number {
  // One read of every process: its parent, and its utime + stime in ticks.
  const procs = new Map<number, { parent: number; ticks: number }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(Number(name));
    if (f) procs.set(Number(name), { parent: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) });
  }
  let ticks = 0;
  for (const [p, info] of procs) {
    let q: number | undefined = p;
    while (q !== undefined && q > 1 && q !== pid) q = procs.get(q)?.parent;
    if (q === pid) ticks += info.ticks;
  }
  return ticks / 100; // CLK_TCK is 100 on Linux
}

/** taskset execs the target, so the pinned child's pid is the node process. */
interface WrkResult {
  rps: number;
  p99ms: number;
  requests: number;
  errors: number;
}

function parseLatency(s: string): number {
  const m = s.match(/([\d.]+)(us|ms|s)/);
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

const run = promisify(execFile);

async function wrk(t: Target, seconds: number): Promise<WrkResult> {
  const argv = ['-c', LOAD_CORE, 'wrk', '-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency'];
  for (const h of t.headers ?? []) argv.push('-H', h);
  argv.push(t.url);
  const { stdout: out } = await run('taskset', argv, { encoding: 'utf8' });
  const rps = Number(out.match(/Requests\/sec:\s+([\d.]+)/)?.[1]);
  const p99 = out.match(/^\s+99%\s+(\S+)/m)?.[1] ?? '';
  const requests = Number(out.match(/(\d+) requests in/)?.[1]);
  const non2xx = Number(out.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0);
  const sockErr = out.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  const errors = non2xx + (sockErr ? sockErr.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
  return { rps, p99ms: parseLatency(p99), requests, errors };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Both proxies loaded at the same moment, each by its own wrk, sharing core 0:
 * the scheduler splits the core between them, so the requests/s ratio is the
 * inverse of their CPU cost per request under identical conditions, free of the
 * drift between one run and the next. Which wrk starts first alternates.
 */
async function headToHead(a: Target, b: Target, rounds: number, seconds: number): Promise<number[]> {
  const out: number[] = [];
  for (let round = 1; round <= rounds; round++) {
    const [ra, rb] = round % 2 === 1 ? await Promise.all([wrk(a, seconds), wrk(b, seconds)]) : await Promise.all([wrk(b, seconds), wrk(a, seconds)]).then(([x, y]) => [y, x] as const);
    out.push(rb.rps / ra.rps);
    console.log(`h2h ${round} ${a.name} ${ra.rps.toFixed(0)} req/s, ${b.name} ${rb.rps.toFixed(0)} req/s: ${(rb.rps / ra.rps).toFixed(2)}x`);
  }
  return out;
}

async function main(): Promise<void> {
  if (!TWO_CORES) console.warn('warning: one core only; proxy and load generator share it');
  const upstreamPort = await startNginx();
  const upstream = `http://127.0.0.1:${upstreamPort}`;
  const lean = await startNodeBaseline('lean-proxy.js', upstream);
  const fp = await startNodeBaseline('fastify-proxy.js', upstream);
  const portico = await startPortico(upstreamPort, undefined, await startCollector());
  const allTargets: Target[] = [
    { name: 'direct (nginx)', url: `${upstream}/plain` },
    { name: 'lean node:http+undici', url: `http://127.0.0.1:${lean.port}/plain`, pid: lean.pid },
    { name: '@fastify/http-proxy', url: `http://127.0.0.1:${fp.port}/plain`, pid: fp.pid },
    { name: 'portico (no plugins)', url: `http://127.0.0.1:${portico.port}/plain`, pid: portico.pid },
    {
      name: 'portico (key-auth+limit-count)',
      url: `http://127.0.0.1:${portico.port}/plugins`,
      pid: portico.pid,
      headers: [`apikey: ${API_KEY}`],
    },
    { name: 'portico (key-auth+limit-req)', url: `http://127.0.0.1:${portico.port}/limit-req`, pid: portico.pid, headers: [`apikey: ${API_KEY}`] },
    // nginx answers every path with the same body, so this compares a cache HIT with nginx serving it.
    { name: 'portico (proxy-cache HIT)', url: `http://127.0.0.1:${portico.port}/cached`, pid: portico.pid },
    { name: 'portico (http-logger)', url: `http://127.0.0.1:${portico.port}/logged`, pid: portico.pid },
  ];
  const targets = ONLY === undefined ? allTargets : allTargets.filter((t) => ONLY.some((o) => t.name.includes(o)));
  for (const t of targets) await wrk(t, 2); // warm up JITs and pools
  const cachedTarget = targets.find((t) => t.name === 'portico (proxy-cache HIT)');
  const cached = cachedTarget && (await fetch(cachedTarget.url));
  await cached?.arrayBuffer();
  if (cached && cached.headers.get('apisix-cache-status') !== 'HIT') throw new Error(`proxy-cache target is not a HIT: ${cached.headers.get('apisix-cache-status')}`);

  const results = new Map<string, Array<WrkResult & { cpuUsPerReq: number }>>();
  // Paired targets run back to back (lean proxy next to Portico, Portico next to Portico with plugins), and
  // every other round runs in reverse (ABBA), so slow drift on the machine lands on both sides of a pair
  // instead of on whichever ran later.
  const order = [allTargets[0]!, allTargets[2]!, allTargets[1]!, allTargets[3]!, ...allTargets.slice(4)].filter((t) => targets.includes(t));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const t of round % 2 === 1 ? order : [...order].reverse()) {
      const before = t.pid ? cpuSeconds(t.pid) : 0;
      const r = await wrk(t, DURATION);
      const cpu = t.pid ? cpuSeconds(t.pid) - before : NaN;
      const row = { ...r, cpuUsPerReq: (cpu * 1e6) / r.requests };
      if (!results.has(t.name)) results.set(t.name, []);
      results.get(t.name)!.push(row);
      console.log(
        `round ${round} ${t.name.padEnd(32)} ${r.rps.toFixed(0).padStart(7)} req/s  p99 ${r.p99ms.toFixed(2)} ms  cpu ${row.cpuUsPerReq.toFixed(1)} us/req${r.errors ? `  errors ${r.errors}` : ''}`,
      );
    }
  }

  const per = (name: string) => results.get(name)!;
  const spread = (xs: number[], digits: number) => `${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)}`;
  const ratios = (a: string, b: string, of: (r: WrkResult & { cpuUsPerReq: number }) => number) => per(a).map((r, i) => of(r) / of(per(b)[i]!));
  console.log(`\nmedians over ${ROUNDS} rounds of ${DURATION}s, ${CONNECTIONS} connections, proxy on core ${PROXY_CORE}, wrk+nginx on core ${LOAD_CORE} (min-max in brackets):`);
  for (const t of targets) {
    const rs = per(t.name);
    const rps = rs.map((r) => r.rps);
    const cpu = rs.map((r) => r.cpuUsPerReq);
    console.log(
      `  ${t.name.padEnd(32)} ${median(rps).toFixed(0).padStart(7)} req/s [${spread(rps, 0)}]  p99 ${median(rs.map((r) => r.p99ms)).toFixed(2)} ms  cpu ${t.pid ? `${median(cpu).toFixed(1)} us/req [${spread(cpu, 1)}]` : '-'}`,
    );
  }
  const line = (label: string, a: string, b: string, target: string) => {
    if (!results.has(a) || !results.has(b)) return;
    const rps = ratios(a, b, (r) => r.rps);
    console.log(`  ${label.padEnd(38)} ${median(rps).toFixed(2)}x [${spread(rps, 2)}]${target}`);
  };
  console.log('\nrequests/s ratios (paired round by round, median [min-max]):');
  line('portico / lean node proxy', 'portico (no plugins)', 'lean node:http+undici', '   (target >= 0.90)');
  line('portico / @fastify/http-proxy', 'portico (no plugins)', '@fastify/http-proxy', '   (target >= 1.40)');
  line('lean node proxy / @fastify/http-proxy', 'lean node:http+undici', '@fastify/http-proxy', '');
  line('portico plugins / portico no plugins', 'portico (key-auth+limit-count)', 'portico (no plugins)', '   (target >= 0.80)');
  line('limit-req+key-auth / no plugins', 'portico (key-auth+limit-req)', 'portico (no plugins)', '   (target >= 0.80)');
  line('portico http-logger / portico no plugins', 'portico (http-logger)', 'portico (no plugins)', '   (target >= 0.85)');
  line('portico / direct nginx', 'portico (no plugins)', 'direct (nginx)', '');
  line('portico proxy-cache HIT / direct nginx', 'portico (proxy-cache HIT)', 'direct (nginx)', '');
  if (ONLY !== undefined) return;
  const cpu = ratios('portico (no plugins)', 'lean node:http+undici', (r) => r.cpuUsPerReq);
  console.log(`\nCPU per request, portico / lean node proxy: ${median(cpu).toFixed(2)}x [${spread(cpu, 2)}]`);

  if (H2H_ROUNDS > 0) {
    console.log(`\nhead to head (lean proxy and Portico loaded at once, sharing core ${PROXY_CORE}; ${H2H_ROUNDS} rounds of ${DURATION}s):`);
    const h2h = await headToHead(targets[1]!, targets[3]!, H2H_ROUNDS, DURATION);
    console.log(`  portico / lean node proxy, same moment    ${median(h2h).toFixed(2)}x [${spread(h2h, 2)}]`);
  }
}

/**
 * HTTPS: Portico's listener (ssls certificate by SNI, same upstream) against
 * the lean proxy on node:https, both with one ECDSA P-256 certificate, both
 * pinned to core 0. Keep-alive measures requests/s over TLS; `Connection:
 * close` makes every request a new TCP connection and full handshake (wrk
 * resumes no sessions), so it measures handshakes/s. Rounds interleave ABBA.
 */
async function mainTls(): Promise<void> {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost', '-keyout', join(tmp, 'tls.key'), '-out', join(tmp, 'tls.crt')], { stdio: 'ignore' });
  const cert = readFileSync(join(tmp, 'tls.crt'), 'utf8');
  const key = readFileSync(join(tmp, 'tls.key'), 'utf8');
  const upstreamPort = await startNginx();
  const lean = await startNodeBaseline('lean-proxy.js', `http://127.0.0.1:${upstreamPort}`, { LEAN_TLS_CERT: join(tmp, 'tls.crt'), LEAN_TLS_KEY: join(tmp, 'tls.key') });
  const tlsPort = await freePort();
  const portico = await startPortico(upstreamPort, { port: tlsPort, cert, key });
  const close = ['Connection: close'];
  const targets: Target[] = [
    { name: 'lean node:https+undici, keep-alive', url: `https://localhost:${lean.port}/plain`, pid: lean.pid },
    { name: 'portico https, keep-alive', url: `https://localhost:${tlsPort}/plain`, pid: portico.pid },
    { name: 'lean node:https+undici, handshakes', url: `https://localhost:${lean.port}/plain`, pid: lean.pid, headers: close },
    { name: 'portico https, handshakes', url: `https://localhost:${tlsPort}/plain`, pid: portico.pid, headers: close },
  ];
  for (const t of targets) await wrk(t, 2);
  const results = new Map<string, WrkResult[]>();
  for (let round = 1; round <= ROUNDS; round++) {
    for (const t of round % 2 === 1 ? targets : [...targets].reverse()) {
      const r = await wrk(t, DURATION);
      if (!results.has(t.name)) results.set(t.name, []);
      results.get(t.name)!.push(r);
      console.log(`round ${round} ${t.name.padEnd(38)} ${r.rps.toFixed(0).padStart(7)} req/s  p99 ${r.p99ms.toFixed(2)} ms${r.errors ? `  errors ${r.errors}` : ''}`);
    }
  }
  const per = (name: string) => results.get(name)!.map((r) => r.rps);
  const spread = (xs: number[]) => `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`;
  console.log(`\nmedians over ${ROUNDS} rounds of ${DURATION}s, ${CONNECTIONS} connections, proxies on core ${PROXY_CORE}, wrk+nginx on core ${LOAD_CORE}:`);
  for (const t of targets) console.log(`  ${t.name.padEnd(38)} ${median(per(t.name)).toFixed(0).padStart(7)} req/s`);
  for (const [label, a, b] of [
    ['keep-alive requests/s, portico / lean', 'portico https, keep-alive', 'lean node:https+undici, keep-alive'],
    ['new handshakes/s, portico / lean', 'portico https, handshakes', 'lean node:https+undici, handshakes'],
  ] as const) {
    const ratios = per(a).map((x, i) => x / per(b)[i]!);
    console.log(`  ${label.padEnd(38)} ${median(ratios).toFixed(2)}x [${spread(ratios)}]   (target >= 0.90)`);
  }
}

(args.includes('--tls') ? mainTls() : main())
  .then(() => process.exit(0))
  .catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
