/**
 * Open pub/sub sessions follow their route across config changes
 * (src/core/pubsub/follow.ts): two librdkafka mock clusters (real Kafka
 * protocol), topic `moves` holding 3 records on A and 5 on B, so the latest
 * offset a session lists says which cluster answered. A route moved from A to
 * B takes its open sessions along without dropping their WebSockets; a route
 * whose plugins, scheme or existence changed closes them with 1012 and a
 * reason; a write to anything else leaves them alone. A Redis Streams route
 * (scheme redis) is followed the same way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fitCloseReason } from '../../src/core/pubsub/follow.js';
import { closeKafkaBackends } from '../../src/pubsub/index.js';
import { closeRedisBackends } from '../../src/pubsub/redis.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startKafkaMock, type KafkaMock } from '../helpers/kafka-mock.js';
import { body, connect, type PubSubClient } from '../helpers/pubsub-client.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

const TOPIC = 'moves';
let A: KafkaMock;
let B: KafkaMock;

interface Watched {
  c: PubSubClient;
  /** Set when the server closed the socket: code and reason. */
  closed?: { code: number; reason: string };
  whenClosed: Promise<{ code: number; reason: string }>;
}

const nodesOf = (m: KafkaMock): Record<string, number> => Object.fromEntries(m.brokers.map((b) => [b, 1]));
const kafkaUpstream = (m: KafkaMock): Record<string, unknown> => ({ type: 'roundrobin', scheme: 'kafka', nodes: nodesOf(m) });

async function open(gw: TestGateway, path: string, headers?: Record<string, string>): Promise<Watched> {
  const c = await connect(`ws://127.0.0.1:${gw.dataPort}${path}`, headers);
  const w = { c } as Watched;
  w.whenClosed = new Promise((resolve) =>
    c.ws.once('close', (code: number, reason: Buffer) => {
      w.closed = { code, reason: reason.toString() };
      resolve(w.closed);
    }),
  );
  return w;
}

async function latest(w: Watched): Promise<bigint> {
  const r = await w.c.request({ cmd_kafka_list_offset: { topic: TOPIC, partition: 0, timestamp: -1n } });
  return body(r, 'kafka_list_offset_resp').offset;
}

/** The first message's value: Kafka offset 0, or a Redis stream's first entry (offset 0 reads from the start). */
async function firstValue(w: Watched): Promise<string> {
  const r = await w.c.request({ cmd_kafka_fetch: { topic: TOPIC, partition: 0, offset: 0n } });
  return Buffer.from(body(r, 'kafka_fetch_resp').messages[0]!.value ?? []).toString();
}

/** Polls until `check` holds (config changes reach the data plane through the store's watch). */
async function eventually(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > until) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function put(gw: TestGateway, path: string, value: unknown): Promise<void> {
  const res = await gw.admin('PUT', `/apisix/admin/${path}`, value);
  expect(res.status, `${path}: ${res.text}`).toBeLessThan(300);
}

/** Waits until the data plane serves `uri` with something other than 404: the write that made it has been applied. */
async function applied(gw: TestGateway, uri: string): Promise<void> {
  await eventually(`${uri} served`, async () => (await fetch(`${gw.dataUrl}${uri}`)).status !== 404);
}

beforeAll(async () => {
  [A, B] = await Promise.all([startKafkaMock({ brokers: 1, topic: TOPIC }), startKafkaMock({ brokers: 1, topic: TOPIC })]);
  // Through kcat, not this process's kafkajs: the only connections from this process to the clusters are the gateway's.
  await A.produceWithKcat(TOPIC, ['a1', 'a2', 'a3'], 0);
  await B.produceWithKcat(TOPIC, ['b1', 'b2', 'b3', 'b4', 'b5'], 0);
}, 30_000);

afterAll(async () => {
  await closeKafkaBackends();
  await Promise.all([A?.stop(), B?.stop()]);
});

function suite(name: string, config: Parameters<typeof startTestGateway>[0]): void {
  describe(name, () => {
    let gw: TestGateway;
    const all: Watched[] = [];
    const openN = async (n: number, path: string, headers?: Record<string, string>): Promise<Watched[]> => {
      const ws = await Promise.all(Array.from({ length: n }, () => open(gw, path, headers)));
      all.push(...ws);
      return ws;
    };

    beforeAll(async () => {
      gw = await startTestGateway(config);
      await put(gw, 'routes/moving', { uri: '/moving', upstream: kafkaUpstream(A) });
      await put(gw, 'routes/steady', { uri: '/steady', upstream: kafkaUpstream(A) });
      await put(gw, 'upstreams/ku', kafkaUpstream(A));
      await put(gw, 'routes/by-id', { uri: '/by-id', upstream_id: 'ku' });
      await put(gw, 'routes/guarded', { uri: '/guarded', upstream: kafkaUpstream(A) });
      await put(gw, 'routes/to-http', { uri: '/to-http', upstream: kafkaUpstream(A) });
      await put(gw, 'routes/doomed', { uri: '/doomed', upstream: kafkaUpstream(A) });
    }, 30_000);

    afterAll(async () => {
      await Promise.all(all.map((w) => w.c.close().catch(() => undefined)));
      await gw?.close();
    });

    it('five open sessions move with their route from cluster A to cluster B; others are untouched', async () => {
      const moving = await openN(5, '/moving');
      const steady = await openN(2, '/steady');
      for (const w of [...moving, ...steady]) {
        expect(await latest(w)).toBe(3n);
        expect(await firstValue(w)).toBe('a1');
      }

      // Writes that concern neither route: a new http route and a new upstream.
      await put(gw, 'upstreams/unrelated', { type: 'roundrobin', nodes: { '127.0.0.1:1': 1 } });
      await put(gw, 'routes/unrelated', { uri: '/unrelated', upstream_id: 'unrelated' });
      await applied(gw, '/unrelated');
      for (const w of [...moving, ...steady]) expect(await latest(w)).toBe(3n);

      await put(gw, 'routes/moving', { uri: '/moving', desc: 'brokers moved', upstream: kafkaUpstream(B) });
      for (const w of moving) await eventually('session lists B', async () => (await latest(w)) === 5n);
      for (const w of moving) expect(await firstValue(w)).toBe('b1');
      for (const w of steady) expect(await latest(w)).toBe(3n);
      // Same WebSockets throughout: nothing was closed.
      for (const w of [...moving, ...steady]) expect(w.closed).toBeUndefined();
    });

    it('sessions on a route with upstream_id follow a change of that upstream', async () => {
      const ws = await openN(3, '/by-id');
      for (const w of ws) expect(await latest(w)).toBe(3n);
      await put(gw, 'upstreams/ku', kafkaUpstream(B));
      for (const w of ws) await eventually('session lists B', async () => (await latest(w)) === 5n);
      for (const w of ws) expect(w.closed).toBeUndefined();
    });

    it('a route whose plugins change closes its sessions with 1012 and the reason; a new session meets the new plugins', async () => {
      const ws = await openN(3, '/guarded');
      for (const w of ws) expect(await latest(w)).toBe(3n);
      await put(gw, 'routes/guarded', { uri: '/guarded', plugins: { 'key-auth': {} }, upstream: kafkaUpstream(A) });
      for (const w of ws) expect(await w.whenClosed).toEqual({ code: 1012, reason: 'route guarded changed: plugins changed' });
      await expect(open(gw, '/guarded')).rejects.toThrow(/401/);
    });

    it('an authenticated session: a write to another consumer leaves it alone, a change of its own consumer closes it', async () => {
      await put(gw, 'consumers', { username: 'alice', plugins: { 'key-auth': { key: 'alice-key' } } });
      await put(gw, 'consumers', { username: 'bob', plugins: { 'key-auth': { key: 'bob-key' } } });
      await put(gw, 'routes/authed', { uri: '/authed', plugins: { 'key-auth': {} }, upstream: kafkaUpstream(A) });
      await applied(gw, '/authed');
      const ws = await openN(2, '/authed', { apikey: 'alice-key' });
      for (const w of ws) expect(await latest(w)).toBe(3n);
      await put(gw, 'consumers', { username: 'bob', plugins: { 'key-auth': { key: 'bob-key-2' } } });
      // Changes apply in order: once this route is served, bob's change has been too.
      await put(gw, 'routes/after-bob', { uri: '/after-bob', upstream: { type: 'roundrobin', nodes: { '127.0.0.1:1': 1 } } });
      await applied(gw, '/after-bob');
      for (const w of ws) expect(await latest(w)).toBe(3n);
      for (const w of ws) expect(w.closed).toBeUndefined();
      await put(gw, 'consumers', { username: 'alice', plugins: { 'key-auth': { key: 'alice-key-2' } } });
      for (const w of ws) expect(await w.whenClosed).toEqual({ code: 1012, reason: 'route authed changed: consumer alice changed' });
      await expect(open(gw, '/authed', { apikey: 'alice-key' })).rejects.toThrow(/401/);
    });

    it('a route whose upstream is no longer kafka closes its sessions', async () => {
      const ws = await openN(2, '/to-http');
      for (const w of ws) expect(await latest(w)).toBe(3n);
      await put(gw, 'routes/to-http', { uri: '/to-http', upstream: { type: 'roundrobin', nodes: { '127.0.0.1:1': 1 } } });
      for (const w of ws) expect(await w.whenClosed).toEqual({ code: 1012, reason: 'route to-http changed: upstream scheme is now http' });
    });

    it('a deleted route closes its sessions with the reason, and the others stay open', async () => {
      const ws = await openN(2, '/doomed');
      const steady = await openN(1, '/steady');
      for (const w of ws) expect(await latest(w)).toBe(3n);
      const res = await gw.admin('DELETE', '/apisix/admin/routes/doomed');
      expect(res.status).toBe(200);
      for (const w of ws) expect(await w.whenClosed).toEqual({ code: 1012, reason: 'route doomed deleted' });
      expect(await latest(steady[0]!)).toBe(3n);
      expect(steady[0]!.closed).toBeUndefined();
    });
  });
}

suite('in one process', {});
suite('with two workers', { config: { nginx_config: { worker_processes: 2 } }, inProcess: false });

describe('switching back and forth leaves no Kafka client behind', () => {
  let gw: TestGateway;
  afterAll(async () => gw?.close());

  it('after six moves between A and B (ending on A), no connection to B is left once the grace period passed', async () => {
    gw = await startTestGateway({});
    await put(gw, 'routes/loop', { uri: '/loop', upstream: kafkaUpstream(A) });
    const ws = await Promise.all(Array.from({ length: 5 }, () => open(gw, '/loop')));
    for (const w of ws) expect(await latest(w)).toBe(3n);
    for (let i = 0; i < 6; i++) {
      const [to, offset] = i % 2 === 0 ? [B, 5n] : [A, 3n];
      await put(gw, 'routes/loop', { uri: '/loop', desc: `move ${i}`, upstream: kafkaUpstream(to) });
      for (const w of ws) await eventually(`move ${i}`, async () => (await latest(w)) === offset);
    }
    // Ends on A; B's client is closed after the grace period (operation timeout + 1 s) since no session holds it.
    expect(B.connectionsFrom()).toBeGreaterThan(0);
    await eventually('no connection to B', async () => B.connectionsFrom() === 0, 15_000);
    for (const w of ws) expect(await latest(w)).toBe(3n);
    for (const w of ws) expect(w.closed).toBeUndefined();
    await Promise.all(ws.map((w) => w.c.close()));
  }, 30_000);
});

describe('redis streams sessions follow their route too', () => {
  let gw: TestGateway;
  let r1: RedisServer;
  let r2: RedisServer;
  const redisUpstream = (r: RedisServer): Record<string, unknown> => ({ type: 'roundrobin', scheme: 'redis', nodes: { [`127.0.0.1:${r.port}`]: 1 } });

  beforeAll(async () => {
    [r1, r2] = await Promise.all([startRedis(), startRedis()]);
    await r1.cli('XADD', TOPIC, '*', 'value', 'one');
    await r2.cli('XADD', TOPIC, '*', 'value', 'two');
    gw = await startTestGateway({});
    await put(gw, 'routes/streams', { uri: '/streams', upstream: redisUpstream(r1) });
  }, 30_000);

  afterAll(async () => {
    await gw?.close();
    await closeRedisBackends();
    await Promise.all([r1?.stop(), r2?.stop()]);
  });

  it('three open sessions read from the second server after the route moved, on the same WebSockets', async () => {
    const ws = await Promise.all(Array.from({ length: 3 }, () => open(gw, '/streams')));
    for (const w of ws) expect(await firstValue(w)).toBe('one');
    await put(gw, 'routes/streams', { uri: '/streams', upstream: redisUpstream(r2) });
    for (const w of ws) await eventually('session reads server 2', async () => (await firstValue(w)) === 'two');
    for (const w of ws) expect(w.closed).toBeUndefined();
    await Promise.all(ws.map((w) => w.c.close()));
  });
});

describe('close reasons', () => {
  it('a reason longer than a close frame holds (123 bytes) is cut, not refused by the WebSocket layer', () => {
    const long = `route r changed: ${'é'.repeat(100)}`;
    const cut = fitCloseReason(long);
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(123);
    expect(cut.startsWith('route r changed: é')).toBe(true);
    expect(cut.endsWith('...')).toBe(true);
    expect(fitCloseReason('route 1 deleted')).toBe('route 1 deleted');
  });
});
