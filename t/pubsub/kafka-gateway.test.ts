/**
 * Kafka pub/sub end to end: routes made with the Admin API, a WebSocket client
 * speaking APISIX's protobuf protocol to the data plane, and librdkafka's mock
 * cluster (real Kafka protocol) behind it. Mirrors APISIX's t/pubsub/kafka.t
 * where the mock allows, and says so where it does not.
 */
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PubSubResponse } from '../../src/core/pubsub/codec.js';
import { closeKafkaBackends } from '../../src/pubsub/index.js';
import { putRoutes, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startKafkaMock, type KafkaMock } from '../helpers/kafka-mock.js';
import { connect, trackedClients, type PubSubClient } from '../helpers/pubsub-client.js';

const FRAME = 16 * 1024;
let gw: TestGateway;
let mock: KafkaMock;

async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

const { open: ws, closeAll: closeClients } = trackedClients(() => gw.dataPort);

/** The line APISIX's kafka.t prints per response: sequence, then the error or `offset: ...`. */
function line(r: PubSubResponse): string {
  if ('error_resp' in r) return `${r.sequence}${r.error_resp.message}`;
  if ('kafka_list_offset_resp' in r) return `${r.sequence}offset: ${r.kafka_list_offset_resp.offset}`;
  if ('kafka_fetch_resp' in r) {
    const m = r.kafka_fetch_resp.messages[0];
    return m ? `${r.sequence}offset: ${m.offset} msg: ${Buffer.from(m.value ?? []).toString()}` : `${r.sequence}no messages`;
  }
  return `${r.sequence}unexpected`;
}

function kafkaRoute(
  uri: string,
  nodes: unknown,
  extra: { upstream?: Record<string, unknown>; plugins?: Record<string, unknown> } = {},
): Record<string, unknown> {
  return { uri, plugins: extra.plugins, upstream: { nodes, type: 'none', scheme: 'kafka', ...extra.upstream } };
}

beforeAll(async () => {
  mock = await startKafkaMock();
  await mock.produce('test-consumer', Array.from({ length: 30 }, (_, i) => ({ value: `testmsg${i + 1}` })));
  gw = await startTestGateway({ config: { apisix: { pubsub: { max_frame_size: FRAME, idle_timeout: 0 } } } });

  const hashNodes = Object.fromEntries(mock.brokers.map((b) => [b, 1]));
  const arrayNodes = mock.brokers.map((b) => ({ host: b.split(':')[0], port: Number(b.split(':')[1]), weight: 5 }));
  const dead = await closedPort();
  const routes: Array<[string, Record<string, unknown>]> = [
    ['kafka', kafkaRoute('/kafka', hashNodes)],
    ['kafka-array', kafkaRoute('/kafka-array', arrayNodes)],
    ['kafka-invalid', kafkaRoute('/kafka-invalid', { [`127.0.0.1:${dead}`]: 1 })],
    // The mock has no TLS listener: TLS on means the handshake fails against its plaintext port.
    ['kafka-tls', kafkaRoute('/kafka-tls', hashNodes, { upstream: { tls: { verify: false } } })],
    [
      'kafka-sasl',
      kafkaRoute('/kafka-sasl', hashNodes, { plugins: { 'kafka-proxy': { sasl: { username: 'admin', password: 'admin-secret' } } } }),
    ],
    [
      'kafka-scram',
      kafkaRoute('/kafka-scram', hashNodes, {
        plugins: { 'kafka-proxy': { sasl: { username: 'admin', password: 'scram-secret', mechanism: 'SCRAM-SHA-256' } } },
      }),
    ],
  ];
  await putRoutes(gw, routes);
});

afterAll(async () => {
  await closeClients();
  await gw?.close();
  await closeKafkaBackends();
  await mock?.stop();
});

describe('kafka.t through the gateway', () => {
  it('a plain GET is refused with 400 JSON', async () => {
    const res = await fetch(`${gw.dataUrl}/kafka`);
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error_msg: string };
    expect(body.error_msg).toBe('failed to initialize pubsub module: a WebSocket upgrade is required (bad "upgrade" request header: nil)');
  });

  it('the eight commands of kafka.t case 3 on one WebSocket', async () => {
    const c = await ws('/kafka');
    const out: string[] = [];
    const ask = async (sequence: bigint, body: Parameters<PubSubClient['request']>[0]) => out.push(line(await c.request(body, { sequence })));
    await ask(0n, { cmd_kafka_list_offset: { topic: 'not-exist', partition: 0, timestamp: -1n } });
    await ask(1n, { cmd_kafka_fetch: { topic: 'not-exist', partition: 0, offset: 0n } });
    await ask(2n, { cmd_kafka_list_offset: { topic: 'test-consumer', partition: 0, timestamp: -2n } });
    await ask(3n, { cmd_kafka_list_offset: { topic: 'test-consumer', partition: 0, timestamp: -1n } });
    await ask(4n, { cmd_kafka_list_offset: { topic: 'test-consumer', partition: 0, timestamp: 9999999999999n } });
    await ask(5n, { cmd_kafka_list_offset: { topic: 'test-consumer', partition: 0, timestamp: 1500000000000n } });
    await ask(6n, { cmd_kafka_fetch: { topic: 'test-consumer', partition: 0, offset: 14n } });
    await ask(7n, { cmd_kafka_fetch: { topic: 'test-consumer', partition: 0, offset: 999n } });
    expect(out).toEqual([
      // APISIX against real Kafka: `0failed to list offset, topic: not-exist, partition: 0, err: not found topic`
      // and the same for fetch. We ask the broker not to create topics, but librdkafka's mock
      // creates any topic on first mention, so the client sees a new empty topic. The
      // `not found topic` wording is checked against an unreachable cluster below.
      '0offset: 0',
      '1no messages',
      '2offset: 0',
      '3offset: 30',
      '4offset: -1',
      // Real Kafka answers 0 here; the mock answers every timestamp lookup with -1.
      '5offset: -1',
      '6offset: 14 msg: testmsg15',
      '7failed to fetch message, topic: test-consumer, partition: 0, err: OFFSET_OUT_OF_RANGE',
    ]);
  });

  it('array-form nodes with weights work the same (weights and type ignored)', async () => {
    const c = await ws('/kafka-array');
    const r = await c.request({ cmd_kafka_list_offset: { topic: 'test-consumer', partition: 0, timestamp: -1n } });
    expect(line(r)).toBe(`${r.sequence}offset: 30`);
  });

  it('a cluster that cannot be reached: APISIX\'s `not found topic`, then the cause (kafka.t case 4)', async () => {
    const c = await ws('/kafka-invalid');
    const r = await c.request({ cmd_kafka_list_offset: { topic: 'test-consumer', partition: 0, timestamp: -2n } }, { sequence: 0n });
    expect(line(r)).toBe('0failed to list offset, topic: test-consumer, partition: 0, err: not found topic (brokers unreachable: ECONNREFUSED)');
    const f = await c.request({ cmd_kafka_fetch: { topic: 'test-consumer', partition: 0, offset: 0n } }, { sequence: 1n });
    expect(line(f)).toBe('1failed to fetch message, topic: test-consumer, partition: 0, err: not found topic (brokers unreachable: ECONNREFUSED)');
  });

  it('upstream.tls turns TLS on: a plaintext broker fails the handshake and the session keeps serving', async () => {
    const c = await ws('/kafka-tls');
    const r = await c.request({ cmd_kafka_list_offset: { topic: 'test-consumer', partition: 0, timestamp: -1n } });
    expect(line(r)).toBe(`${r.sequence}failed to list offset, topic: test-consumer, partition: 0, err: not found topic (brokers unreachable: ECONNRESET)`);
    const p = await c.request({ cmd_ping: { state: Buffer.from('still here') } });
    expect('pong_resp' in p).toBe(true);
  });

  it.each([
    ['/kafka-sasl', 'PLAIN', 'admin-secret'],
    ['/kafka-scram', 'SCRAM-SHA-256', 'scram-secret'],
  ])('%s: kafka-proxy SASL reaches the broker; the mock has no SASL, the client is told so without the password', async (path, mech, password) => {
    const c = await ws(path);
    const r = await c.request({ cmd_kafka_list_offset: { topic: 'test-consumer', partition: 0, timestamp: -1n } });
    const text = line(r);
    expect(text).toMatch(/^\d+failed to list offset, topic: test-consumer, partition: 0, err: SASL/);
    expect(text).toContain(mech);
    expect(text).not.toContain(password);
  });

  it('sequences above 2^53 are echoed exactly', async () => {
    const c = await ws('/kafka');
    const seq = 2n ** 60n + 7n;
    const r = await c.request({ cmd_kafka_list_offset: { topic: 'test-consumer', partition: 0, timestamp: -1n } }, { sequence: seq });
    expect(r.sequence).toBe(seq);
    expect(line(r)).toBe(`${seq}offset: 30`);
  });
});

describe('frame limit', () => {
  it('a fetch bigger than a frame comes back cut; reading on from the next offset gets every message once', async () => {
    // One send = one batch, so the broker hands all ten 3000-byte records to one fetch;
    // a 16 KiB frame holds five. APISIX would send the oversized frame and lose the session.
    await mock.produce('big', []);
    const { Kafka, logLevel } = await import('kafkajs');
    const producer = new Kafka({ brokers: mock.brokers, logLevel: logLevel.NOTHING }).producer();
    await producer.connect();
    await producer.send({
      topic: 'big',
      messages: Array.from({ length: 10 }, (_, i) => ({ value: `${i}:`.padEnd(3000, 'x'), partition: 0 })),
    });
    await producer.disconnect();

    const c = await ws('/kafka');
    const first = await c.request({ cmd_kafka_fetch: { topic: 'big', partition: 0, offset: 0n } });
    if (!('kafka_fetch_resp' in first)) throw new Error(line(first));
    expect(first.kafka_fetch_resp.messages.length).toBeGreaterThan(0);
    expect(first.kafka_fetch_resp.messages.length).toBeLessThan(10);

    const seen: bigint[] = [];
    let next = 0n;
    for (let round = 0; round < 20 && next < 10n; round++) {
      const r = await c.request({ cmd_kafka_fetch: { topic: 'big', partition: 0, offset: next } });
      if (!('kafka_fetch_resp' in r)) throw new Error(line(r));
      for (const m of r.kafka_fetch_resp.messages) {
        seen.push(m.offset);
        expect(Buffer.from(m.value!).toString().startsWith(`${m.offset}:`)).toBe(true);
      }
      next = seen[seen.length - 1]! + 1n;
    }
    expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => BigInt(i)));
  });

  it('a single message larger than a frame is an error naming its offset, and the session stays up', async () => {
    await mock.produce('huge', [{ value: 'y'.repeat(FRAME * 2) }]);
    const c = await ws('/kafka');
    const r = await c.request({ cmd_kafka_fetch: { topic: 'huge', partition: 0, offset: 0n } });
    expect(line(r)).toMatch(/failed to fetch message, topic: huge, partition: 0, err: MESSAGE_TOO_LARGE \(offset 0 /);
    const again = await c.request({ cmd_kafka_list_offset: { topic: 'huge', partition: 0, timestamp: -1n } });
    expect(line(again)).toBe(`${again.sequence}offset: 1`);
  });
});

describe('many clients', () => {
  it('200 WebSocket clients at once share a bounded number of broker connections', async () => {
    // Start with no gateway connections, so the count below is this test's alone (what
    // remains is the test's own producer, in this process too).
    await closeKafkaBackends();
    let before = mock.connectionsFrom();
    for (let i = 0; i < 40; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const now = mock.connectionsFrom();
      if (now === before) break;
      before = now;
    }
    const many = await Promise.all(Array.from({ length: 200 }, () => connect(`ws://127.0.0.1:${gw.dataPort}/kafka`)));
    try {
      const answers = await Promise.all(
        many.map((c, i) => c.request({ cmd_kafka_fetch: { topic: 'test-consumer', partition: 0, offset: BigInt(i % 30) } }, { timeoutMs: 20_000 })),
      );
      answers.forEach((r, i) => expect(line(r)).toBe(`${r.sequence}offset: ${i % 30} msg: testmsg${(i % 30) + 1}`));
      const used = mock.connectionsFrom() - before;
      expect(used).toBeGreaterThan(0);
      // kafkajs: at most two sockets per broker (one for fetches) plus the bootstrap one.
      expect(used).toBeLessThanOrEqual(2 * mock.brokers.length + 2);
    } finally {
      await Promise.all(many.map((c) => c.close()));
    }
  });
});
