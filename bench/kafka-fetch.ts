/**
 * Kafka fetch benchmark: messages per second read from librdkafka's mock
 * cluster (kcat) holding N messages,
 *   - directly with kafkajs (the gateway's own Kafka backend,
 *     src/pubsub/kafka-client.ts), from this one process, and
 *   - through the gateway: the gateway runs as its own process, started as
 *     `npm start` starts it (node dist/src/main.js --config ...), and the
 *     readers, fetch loops on portico/pubsub-client, run in another process,
 * with the same batch limit (the frame budget) and the same number of
 * concurrent readers, rounds interleaved. Then the push latency: messages
 * produced through the gateway with cmd_produce, timed until a subscriber in
 * the same reader process sees them pushed. It asserts nothing; it ends with
 *   pubsub fetch: 1 reader R1x, 8 readers R8x direct
 *
 *   npm run bench:kafka -- [--messages 20000] [--size 100] [--duration 3] [--rounds 3] [--readers 1,8] [--latency 300]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { connectPubSub, type PubSubClient } from '../src/client/pubsub/node.js';
import { maxBodyBytes } from '../src/core/pubsub/codec.js';
import { createKafkaBackend } from '../src/pubsub/kafka-client.js';
import { startKafkaMock } from '../t/helpers/kafka-mock.js';

const args = process.argv.slice(2);
function opt(name: string, def: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : def;
}
const N = Number(opt('messages', '20000'));
const SIZE = Number(opt('size', '100'));
const DURATION_MS = Number(opt('duration', '3')) * 1000;
const ROUNDS = Number(opt('rounds', '3'));
const READERS = opt('readers', '1,8').split(',').map(Number);
const LATENCY_SAMPLES = Number(opt('latency', '300'));
const FRAME = 1024 * 1024;
const BATCH = 500; // messages per produce request = per record batch
const TOPIC = 'bench';
const ROOT = fileURLToPath(new URL('..', import.meta.url));

type FetchFn = (offset: bigint) => Promise<bigint>;

/** Each reader walks the topic from its own start, wrapping at the end; returns messages/s. `fetch` returns the next offset. */
async function run(readers: number, fetchOne: (reader: number) => FetchFn): Promise<number> {
  let count = 0;
  const deadline = Date.now() + DURATION_MS;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: readers }, async (_, r) => {
      const fetch = fetchOne(r);
      let offset = BigInt(Math.floor((N / readers) * r));
      while (Date.now() < deadline) {
        const next = await fetch(offset);
        if (next === offset) {
          offset = 0n;
          continue;
        }
        count += Number(next - offset);
        offset = next >= BigInt(N) ? 0n : next;
      }
    }),
  );
  return count / ((Date.now() - started) / 1000);
}

// ---------------------------------------------------------------- reader process

/** The other process: reads through the gateway on command from the parent (IPC), answers with msg/s. */
async function readerProcess(url: string): Promise<void> {
  const clients: PubSubClient[] = [];
  const maxReaders = Math.max(...READERS);
  for (let i = 0; i < maxReaders; i++) clients.push(await connectPubSub(url, { reconnect: false }));
  const gatewayFetch =
    (r: number): FetchFn =>
    async (offset) => {
      const page = await clients[r]!.fetch(TOPIC, 0, offset);
      return page.length === 0 ? offset : page[page.length - 1]!.offset + 1n;
    };
  process.on('message', async (msg: { readers?: number; latency?: number }) => {
    if (msg.readers !== undefined) process.send!({ rate: await run(msg.readers, gatewayFetch) });
    else if (msg.latency !== undefined) process.send!({ latencies: await pushLatency(clients[0]!, clients[1] ?? clients[0]!, msg.latency) });
  });
  process.send!({ ready: true });
}

/** Produce one message at a time through the gateway; time until the subscriber has it pushed. */
async function pushLatency(producer: PubSubClient, consumer: PubSubClient, samples: number): Promise<number[]> {
  const topic = 'bench-latency';
  await producer.produce(topic, 0, [{ value: 'warm' }]);
  const sub = await consumer.subscribe(topic, 0, { from: 'latest', credit: 100 });
  const it = sub[Symbol.asyncIterator]();
  const out: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t0 = process.hrtime.bigint();
    const got = it.next();
    await producer.produce(topic, 0, [{ value: `m${i}` }], { acks: 'leader' });
    await got;
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
    await new Promise((r) => setTimeout(r, 5));
  }
  await sub.unsubscribe();
  return out;
}

// ---------------------------------------------------------------- the gateway process

async function startGateway(dir: string): Promise<{ proc: ChildProcess; dataPort: number; adminPort: number }> {
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    `apisix:
  node_listen: { ip: 127.0.0.1, port: 0 }
  pubsub: { max_frame_size: ${FRAME}, idle_timeout: 0 }
plugin_attr:
  prometheus: { export_addr: { ip: 127.0.0.1, port: 0 } }
deployment:
  admin:
    admin_listen: { ip: 127.0.0.1, port: 0 }
  embedded:
    data_dir: ${join(dir, 'data')}
`,
  );
  // As `npm start` runs it (after its prestart build).
  const proc = spawn(process.execPath, [join(ROOT, 'dist/src/main.js'), '--config', config], {
    env: { ...process.env, PORTICO_ADMIN_KEY: 'bench-admin-key-0123456789', PORTICO_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const ports = await new Promise<[number, number]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start:\n${out}`)), 30_000);
    const onData = (d: Buffer): void => {
      out += d.toString();
      const data = /data plane listening on http:\/\/[^:]+:(\d+)/.exec(out);
      const admin = /Admin API listening on http:\/\/[^:]+:(\d+)/.exec(out);
      if (data && admin) {
        clearTimeout(timer);
        resolve([Number(data[1]), Number(admin[1])]);
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.once('exit', (code) => reject(new Error(`gateway exited (${code}):\n${out}`)));
  });
  return { proc, dataPort: ports[0], adminPort: ports[1] };
}

function ask<T>(child: ChildProcess, msg: object, key: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: Record<string, unknown>): void => {
      if (!(key in m)) return;
      child.off('message', onMessage);
      resolve(m[key] as T);
    };
    child.on('message', onMessage);
    child.once('exit', (code) => reject(new Error(`reader process exited (${code})`)));
    child.send(msg);
  });
}

const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

async function main(): Promise<void> {
  const build = spawn(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.json')], { stdio: 'inherit' });
  await new Promise((r) => build.once('exit', r));

  const dir = mkdtempSync(join(tmpdir(), 'portico-bench-kafka-'));
  const mock = await startKafkaMock();
  let gateway: ChildProcess | undefined;
  let readers: ChildProcess | undefined;
  const direct = createKafkaBackend({ brokers: mock.brokers });
  try {
    process.stdout.write(`producing ${N} messages of ${SIZE} bytes... `);
    const value = Buffer.alloc(SIZE, 'm');
    const producer = new Kafka({ brokers: mock.brokers, logLevel: logLevel.NOTHING }).producer();
    await producer.connect();
    for (let i = 0; i < N; i += BATCH) {
      const n = Math.min(BATCH, N - i);
      await producer.send({ topic: TOPIC, acks: -1, messages: Array.from({ length: n }, () => ({ value, partition: 0 })) });
    }
    await producer.disconnect();
    console.log('done');

    const gw = await startGateway(dir);
    gateway = gw.proc;
    const res = await fetch(`http://127.0.0.1:${gw.adminPort}/apisix/admin/routes/bench-kafka`, {
      method: 'PUT',
      headers: { 'X-API-KEY': 'bench-admin-key-0123456789', 'content-type': 'application/json' },
      body: JSON.stringify({
        uri: '/kafka',
        plugins: { 'pubsub-acl': { permission: 'read_write' } },
        upstream: { nodes: Object.fromEntries(mock.brokers.map((b) => [b, 1])), type: 'none', scheme: 'kafka' },
      }),
    });
    if (res.status >= 300) throw new Error(`route: ${res.status} ${await res.text()}`);

    readers = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--reader', `ws://127.0.0.1:${gw.dataPort}/kafka`, ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    await ask(readers, {}, 'ready');

    const budget = maxBodyBytes(FRAME);
    const directFetch: FetchFn = async (offset) => {
      const got = await direct.fetch(TOPIC, 0, offset, { maxBytes: budget, maxWaitMs: 100 });
      return got.length === 0 ? offset : got[got.length - 1]!.offset + 1n;
    };

    // Warm both paths (metadata, connections, JIT).
    await run(1, () => directFetch);
    await ask(readers, { readers: 1 }, 'rate');

    console.log(`\n${'readers'.padEnd(8)} ${'direct msg/s'.padStart(14)} ${'gateway msg/s'.padStart(14)} ${'gateway/direct'.padStart(15)}`);
    const ratios: number[] = [];
    for (const n of READERS) {
      const d: number[] = [];
      const g: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        d.push(await run(n, () => directFetch));
        g.push(await ask<number>(readers, { readers: n }, 'rate'));
      }
      const dm = d.reduce((a, b) => a + b, 0) / d.length;
      const gm = g.reduce((a, b) => a + b, 0) / g.length;
      ratios.push(gm / dm);
      console.log(`${String(n).padEnd(8)} ${Math.round(dm).toString().padStart(14)} ${Math.round(gm).toString().padStart(14)} ${(gm / dm).toFixed(2).padStart(15)}`);
    }

    const lat = await ask<number[]>(readers, { latency: LATENCY_SAMPLES }, 'latencies');
    console.log(`\npush latency (produce through the gateway to delivery, ${lat.length} messages): p50 ${percentile(lat, 50).toFixed(2)} ms, p99 ${percentile(lat, 99).toFixed(2)} ms`);
    const label = (n: number): string => `${n} reader${n === 1 ? '' : 's'}`;
    console.log(`pubsub fetch: ${READERS.map((n, i) => `${label(n)} ${ratios[i]!.toFixed(2)}x`).join(', ')} direct`);
  } finally {
    readers?.kill('SIGKILL');
    gateway?.kill('SIGTERM');
    await direct.close();
    await mock.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const readerAt = args.indexOf('--reader');
if (readerAt >= 0) {
  readerProcess(args[readerAt + 1]!).catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
