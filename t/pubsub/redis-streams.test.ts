/**
 * The Redis Streams backend (`scheme: redis`) through the gateway against a
 * real redis-server: the same commands as Kafka (list offset, fetch,
 * subscribe with credit, produce, group offsets), entries written and read
 * back with redis-cli, and the same pubsub-acl checks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PubSubResponse } from '../../src/core/pubsub/codec.js';
import { idToOffset, offsetToId } from '../../src/pubsub/redis-ids.js';
import { closeRedisBackends } from '../../src/pubsub/redis.js';
import { putRoutes, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { body, pushed, trackedClients } from '../helpers/pubsub-client.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

let gw: TestGateway;
let redis: RedisServer;
const { open: ws, closeAll: closeClients } = trackedClients(() => gw.dataPort);

const text = (b: Uint8Array | null | undefined): string => Buffer.from(b ?? []).toString();
const err = (r: PubSubResponse): string | undefined => ('error_resp' in r ? r.error_resp.message : undefined);

/** XADD through redis-cli; resolves with the entry's offset. */
async function xadd(key: string, ...fields: string[]): Promise<bigint> {
  return idToOffset((await redis.cli('XADD', key, '*', ...fields)).trim());
}

beforeAll(async () => {
  redis = await startRedis();
  gw = await startTestGateway({ config: { apisix: { pubsub: { max_frame_size: 64 * 1024, idle_timeout: 0 } } } });
  const upstream = { nodes: { [`127.0.0.1:${redis.port}`]: 1 }, type: 'none', scheme: 'redis' };
  await putRoutes(gw, [
    ['redis', { uri: '/redis', upstream }],
    ['redis-rw', { uri: '/redis-rw', upstream, plugins: { 'pubsub-acl': { permission: 'read_write', topics: ['events*'] } } }],
  ]);
});

afterAll(async () => {
  await closeClients();
  await gw?.close();
  await closeRedisBackends();
  await redis?.stop();
});

describe('offsets are entry IDs', () => {
  it('map both ways, in order, and refuse what int64 cannot carry', () => {
    expect(offsetToId(idToOffset('1700000000000-3'))).toBe('1700000000000-3');
    expect(idToOffset('1700000000000-3') + 1n).toBe(idToOffset('1700000000000-4'));
    expect(idToOffset('1700000000001-0')).toBeGreaterThan(idToOffset('1700000000000-99'));
    expect(() => idToOffset('1-1048576')).toThrow('sequence number of 1048576 or more');
  });
});

describe('list offset and fetch', () => {
  it('a missing stream is `not found topic`; partitions other than 0 do not exist', async () => {
    const c = await ws('/redis');
    expect(err(await c.request({ cmd_kafka_list_offset: { topic: 'nope', partition: 0, timestamp: -1n } }))).toBe(
      'failed to list offset, topic: nope, partition: 0, err: not found topic',
    );
    await xadd('parts', 'value', 'x');
    expect(err(await c.request({ cmd_kafka_fetch: { topic: 'parts', partition: 1, offset: 0n } }))).toBe(
      'failed to fetch message, topic: parts, partition: 1, err: not found partition',
    );
  });

  it('earliest, latest and by time; a fetch returns entries at or after the offset, never before', async () => {
    const first = await xadd('orders', 'key', 'k1', 'value', 'one', 'source', 'cli');
    const second = await xadd('orders', 'value', 'two');
    const c = await ws('/redis');
    const off = async (timestamp: bigint): Promise<bigint> =>
      body(await c.request({ cmd_kafka_list_offset: { topic: 'orders', partition: 0, timestamp } }), 'kafka_list_offset_resp').offset;
    expect(await off(-2n)).toBe(first);
    expect(await off(-1n)).toBe(second + 1n);
    expect(await off(first >> 20n)).toBe(first);
    expect(await off(9999999999999n)).toBe(-1n);

    const all = body(await c.request({ cmd_kafka_fetch: { topic: 'orders', partition: 0, offset: first } }), 'kafka_fetch_resp').messages;
    expect(all.map((m) => [m.offset, text(m.key), text(m.value)])).toEqual([
      [first, 'k1', 'one'],
      [second, '', 'two'],
    ]);
    expect(all[0]!.timestamp).toBe(first >> 20n);
    expect(all[0]!.headers?.map((h) => [h.key, text(h.value)])).toEqual([['source', 'cli']]);
    const rest = body(await c.request({ cmd_kafka_fetch: { topic: 'orders', partition: 0, offset: first + 1n } }), 'kafka_fetch_resp').messages;
    expect(rest.map((m) => m.offset)).toEqual([second]);
  });
});

describe('produce', () => {
  it('writes entries redis-cli reads back, one offset per message', async () => {
    const c = await ws('/redis-rw');
    const res = body(
      await c.request({
        cmd_produce: {
          topic: 'events',
          partition: 0,
          messages: [{ key: Buffer.from('u1'), value: Buffer.from('signed up'), headers: [{ key: 'trace', value: Buffer.from('abc') }] }, { value: Buffer.from('second') }],
        },
      }),
      'produce_resp',
    );
    expect(res.results).toHaveLength(2);
    expect(res.results.every((r) => r.error === '' && r.offset > 0n)).toBe(true);
    const [a, b] = res.results.map((r) => offsetToId(r.offset));
    const out = await redis.cli('XRANGE', 'events', '-', '+');
    expect(out.split('\n').filter(Boolean)).toEqual([a, 'key', 'u1', 'value', 'signed up', 'trace', 'abc', b, 'value', 'second']);
    const none = await c.request({ cmd_produce: { topic: 'events', partition: 0, acks: 'none', messages: [{ value: Buffer.from('x') }] } });
    expect(err(none)).toBe('failed to produce, topic: events, partition: 0, err: acks "none" is not supported by redis (all or leader)');
  });

  it('the route decides: without pubsub-acl, writes are refused; outside the allow-list too', async () => {
    const plain = await ws('/redis');
    expect(err(await plain.request({ cmd_produce: { topic: 'events', partition: 0, messages: [{ value: Buffer.from('x') }] } }))).toBe(
      'permission denied: cmd_produce needs write access, and this route grants read only',
    );
    const rw = await ws('/redis-rw');
    expect(err(await rw.request({ cmd_kafka_fetch: { topic: 'orders', partition: 0, offset: 0n } }))).toBe(
      `permission denied: topic "orders" is not in this route's allow-list`,
    );
  });
});

describe('subscribe', () => {
  it('pushes entries added after subscribing from latest, within the credit', async () => {
    await xadd('events-live', 'value', 'old');
    const c = await ws('/redis-rw');
    const sub = body(await c.request({ cmd_subscribe: { topic: 'events-live', partition: 0, offset: -1n, credit_messages: 2n } }), 'subscribe_resp');
    await new Promise((r) => setTimeout(r, 100));
    for (const v of ['a', 'b', 'c']) await xadd('events-live', 'value', v);
    expect((await pushed(c, 2)).map((m) => text(m.value))).toEqual(['a', 'b']);
    expect(await c.next(600)).toBeUndefined();
    body(await c.request({ cmd_credit: { subscription: sub.subscription, messages: 5n } }), 'credit_resp');
    expect((await pushed(c, 1)).map((m) => text(m.value))).toEqual(['c']);
    // A message produced through the gateway reaches the subscriber too.
    const w = await ws('/redis-rw');
    body(await w.request({ cmd_produce: { topic: 'events-live', partition: 0, messages: [{ value: Buffer.from('via gateway') }] } }), 'produce_resp');
    expect((await pushed(c, 1)).map((m) => text(m.value))).toEqual(['via gateway']);
  });

  it('group offsets live in the stream consumer group and survive a reconnect', async () => {
    const offsets: bigint[] = [];
    for (let i = 0; i < 5; i++) offsets.push(await xadd('events-grp', 'value', `e${i}`));
    const a = await ws('/redis-rw');
    const sub = body(await a.request({ cmd_subscribe: { topic: 'events-grp', partition: 0, offset: -2n, group: 'mailer', credit_messages: 5n } }), 'subscribe_resp');
    expect(sub.offset).toBe(offsets[0]);
    expect(await pushed(a, 5)).toHaveLength(5);
    expect(body(await a.request({ cmd_ack: { subscription: sub.subscription, offset: offsets[1]! } }), 'ack_resp').committed).toBe(offsets[1]! + 1n);
    expect(await redis.cli('XINFO', 'GROUPS', 'events-grp')).toContain(offsetToId(offsets[1]!));
    await a.close();
    const b = await ws('/redis-rw');
    const again = body(await b.request({ cmd_subscribe: { topic: 'events-grp', partition: 0, offset: -1n, group: 'mailer', credit_messages: 5n } }), 'subscribe_resp');
    expect(again.offset).toBe(offsets[1]! + 1n);
    expect((await pushed(b, 3)).map((m) => text(m.value))).toEqual(['e2', 'e3', 'e4']);
  });
});
