/**
 * Kafka fetch benchmark: messages per second read from librdkafka's mock
 * cluster (kcat) holding N messages,
 *   - directly with the Kafka backend (src/pubsub/kafka-client.ts), and
 *   - through the gateway: a pub/sub WebSocket client's fetch loop,
 * with the same batch limit (the frame budget) and the same number of
 * concurrent readers, rounds interleaved. Everything runs in this one process,
 * so the ratio is the cost the gateway adds per message (WebSocket, protobuf,
 * routing, session). It asserts nothing.
 *
 *   npx tsx bench/kafka-fetch.ts [--messages 20000] [--size 100] [--duration 3] [--rounds 2] [--readers 1,8]
 */
import { Kafka, logLevel } from 'kafkajs';
import { maxBodyBytes } from '../src/core/pubsub/codec.js';
import { createKafkaBackend, type KafkaBackend } from '../src/pubsub/kafka-client.js';
import { closeKafkaBackends } from '../src/pubsub/index.js';
import { startTestGateway } from '../t/helpers/gateway.js';
import { startKafkaMock } from '../t/helpers/kafka-mock.js';
import { connect, type PubSubClient } from '../t/helpers/pubsub-client.js';

const args = process.argv.slice(2);
function opt(name: string, def: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : def;
}
const N = Number(opt('messages', '20000'));
const SIZE = Number(opt('size', '100'));
const DURATION_MS = Number(opt('duration', '3')) * 1000;
const ROUNDS = Number(opt('rounds', '2'));
const READERS = opt('readers', '1,8').split(',').map(Number);
const FRAME = 1024 * 1024;
const BATCH = 500; // messages per produce request = per record batch
const TOPIC = 'bench';

type FetchFn = (offset: bigint) => Promise<bigint[]>;

/** Each reader walks the topic from its own start, wrapping at the end; returns messages/s. */
async function run(readers: number, fetchOne: (reader: number) => FetchFn): Promise<number> {
  let count = 0;
  const deadline = Date.now() + DURATION_MS;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: readers }, async (_, r) => {
      const fetch = fetchOne(r);
      let offset = BigInt(Math.floor((N / readers) * r));
      while (Date.now() < deadline) {
        const got = await fetch(offset);
        if (got.length === 0) {
          offset = 0n;
          continue;
        }
        count += got.length;
        offset = got[got.length - 1]! + 1n;
        if (offset >= BigInt(N)) offset = 0n;
      }
    }),
  );
  return count / ((Date.now() - started) / 1000);
}

async function main(): Promise<void> {
  const mock = await startKafkaMock();
  const gw = await startTestGateway({ config: { apisix: { pubsub: { max_frame_size: FRAME, idle_timeout: 0 } } } });
  const clients: PubSubClient[] = [];
  let direct: KafkaBackend | undefined;
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

    const res = await gw.admin('PUT', '/apisix/admin/routes/bench-kafka', {
      uri: '/kafka',
      upstream: { nodes: Object.fromEntries(mock.brokers.map((b) => [b, 1])), type: 'none', scheme: 'kafka' },
    });
    if (res.status >= 300) throw new Error(`route: ${res.status} ${res.text}`);

    const budget = maxBodyBytes(FRAME);
    direct = createKafkaBackend({ brokers: mock.brokers });
    const directFetch: FetchFn = async (offset) =>
      (await direct!.fetch(TOPIC, 0, offset, { maxBytes: budget, maxWaitMs: 100 })).map((r) => r.offset);

    const maxReaders = Math.max(...READERS);
    for (let i = 0; i < maxReaders; i++) clients.push(await connect(`ws://127.0.0.1:${gw.dataPort}/kafka`));
    const gatewayFetch =
      (r: number): FetchFn =>
      async (offset) => {
        const resp = await clients[r]!.request({ cmd_kafka_fetch: { topic: TOPIC, partition: 0, offset } }, { timeoutMs: 30_000 });
        if (!('kafka_fetch_resp' in resp)) throw new Error(JSON.stringify(resp, (_k, v) => (typeof v === 'bigint' ? String(v) : v)));
        return resp.kafka_fetch_resp.messages.map((m) => m.offset);
      };

    // Warm both paths (metadata, connections, JIT).
    await run(1, () => directFetch);
    await run(1, gatewayFetch);

    console.log(`\n${'readers'.padEnd(8)} ${'direct msg/s'.padStart(14)} ${'gateway msg/s'.padStart(14)} ${'gateway/direct'.padStart(15)}`);
    for (const readers of READERS) {
      const d: number[] = [];
      const g: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        d.push(await run(readers, () => directFetch));
        g.push(await run(readers, gatewayFetch));
      }
      const dm = d.reduce((a, b) => a + b, 0) / d.length;
      const gm = g.reduce((a, b) => a + b, 0) / g.length;
      console.log(
        `${String(readers).padEnd(8)} ${Math.round(dm).toString().padStart(14)} ${Math.round(gm).toString().padStart(14)} ${(gm / dm).toFixed(2).padStart(15)}`,
      );
    }
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await direct?.close();
    await gw.close();
    await closeKafkaBackends();
    await mock.stop();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
