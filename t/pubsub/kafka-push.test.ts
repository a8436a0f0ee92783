/**
 * Portico's pub/sub extensions against librdkafka's mock cluster, through the
 * gateway: subscribe and push (messages written by kcat and by cmd_produce),
 * credit-based flow control, produce read back by kcat, group offsets across
 * a reconnect, and pubsub-acl's permissions and allow-lists.
 */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PubSubResponse } from '../../src/core/pubsub/codec.js';
import { closeKafkaBackends } from '../../src/pubsub/index.js';
import { putRoutes, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startKafkaMock, type KafkaMock } from '../helpers/kafka-mock.js';
import { body, connect, pushed, trackedClients } from '../helpers/pubsub-client.js';

let gw: TestGateway;
let mock: KafkaMock;
const { open: ws, closeAll: closeClients } = trackedClients(() => gw.dataPort);

const text = (b: Uint8Array | null | undefined): string => Buffer.from(b ?? []).toString();

function kcatRead(topic: string, partition = 0): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile(
      'kcat',
      ['-C', '-b', mock.brokers.join(','), '-t', topic, '-p', String(partition), '-o', 'beginning', '-e', '-q', '-f', '%o|%k|%s|%h\n'],
      { timeout: 15_000 },
      (err, stdout) => (err ? reject(err) : resolve(stdout.split('\n').filter(Boolean))),
    );
  });
}

beforeAll(async () => {
  mock = await startKafkaMock();
  gw = await startTestGateway({ config: { apisix: { pubsub: { max_frame_size: 64 * 1024, idle_timeout: 0 } } } });
  const upstream = { nodes: Object.fromEntries(mock.brokers.map((b) => [b, 1])), type: 'none', scheme: 'kafka' };
  const routes: Array<[string, Record<string, unknown>]> = [
    ['plain', { uri: '/kafka', upstream }],
    ['rw', { uri: '/kafka-rw', upstream, plugins: { 'pubsub-acl': { permission: 'read_write', topics: ['push-*', 'grp-*', 'flow-*'] } } }],
    ['ro', { uri: '/kafka-ro', upstream, plugins: { 'pubsub-acl': { topics: ['allowed'] } } }],
    ['wo', { uri: '/kafka-wo', upstream, plugins: { 'pubsub-acl': { permission: 'write' } } }],
    ['param', { uri: '/topic/:topic', upstream, plugins: { 'pubsub-acl': { permission: 'read_write', topics: ['orders*'], topic_param: 'topic' } } }],
  ];
  await putRoutes(gw, routes);
});

afterAll(async () => {
  await closeClients();
  await gw?.close();
  await closeKafkaBackends();
  await mock?.stop();
});

describe('subscribe and push', () => {
  it('pushes messages kcat writes after the subscription started, from latest', async () => {
    await mock.produceWithKcat('push-kcat', ['k0\tbefore']);
    const c = await ws('/kafka');
    const sub = body(await c.request({ cmd_subscribe: { topic: 'push-kcat', partition: 0, offset: -1n, credit_messages: 100n } }), 'subscribe_resp');
    expect(sub.subscription).toBeGreaterThan(0);
    expect(sub.offset).toBe(1n);
    await mock.produceWithKcat('push-kcat', ['k1\tafter one', 'k2\tafter two']);
    const got = await pushed(c, 2);
    expect(got.map((m) => [m.offset, text(m.key), text(m.value)])).toEqual([
      [1n, 'k1', 'after one'],
      [2n, 'k2', 'after two'],
    ]);
  });

  it('pushes what cmd_produce wrote, headers included; kcat reads the same records back', async () => {
    const reader = await ws('/kafka-rw');
    const sub = body(await reader.request({ cmd_subscribe: { topic: 'push-produce', partition: 0, offset: -2n, credit_messages: 10n } }), 'subscribe_resp');
    expect(sub.offset).toBe(0n);
    const writer = await ws('/kafka-rw');
    const res = body(
      await writer.request({
        cmd_produce: {
          topic: 'push-produce',
          partition: 0,
          messages: [
            { key: Buffer.from('a'), value: Buffer.from('first'), headers: [{ key: 'h', value: Buffer.from('v') }] },
            { value: Buffer.from('second') },
          ],
        },
      }),
      'produce_resp',
    );
    expect(res.results).toEqual([{ offset: 0n, error: '' }, { offset: 1n, error: '' }]);
    const got = await pushed(reader, 2);
    expect(got.map((m) => [m.offset, text(m.key), text(m.value)])).toEqual([
      [0n, 'a', 'first'],
      [1n, '', 'second'],
    ]);
    expect(got[0]!.headers?.map((h) => [h.key, text(h.value)])).toEqual([['h', 'v']]);
    expect(await kcatRead('push-produce')).toEqual(['0|a|first|h=v', '1||second|']);
  });

  it('acks "none" writes without waiting: offsets are -1; "leader" answers offsets; a bad word is refused', async () => {
    const c = await ws('/kafka-rw');
    const none = body(await c.request({ cmd_produce: { topic: 'push-acks', partition: 0, acks: 'none', messages: [{ value: Buffer.from('x') }] } }), 'produce_resp');
    expect(none.results).toEqual([{ offset: -1n, error: '' }]);
    const leader = body(await c.request({ cmd_produce: { topic: 'push-acks', partition: 0, acks: 'leader', messages: [{ value: Buffer.from('y') }] } }), 'produce_resp');
    expect(leader.results[0]!.offset).toBeGreaterThanOrEqual(0n);
    const bad = await c.request({ cmd_produce: { topic: 'push-acks', partition: 0, acks: 'some', messages: [{ value: Buffer.from('z') }] } });
    expect('error_resp' in bad && bad.error_resp.message).toBe('failed to produce: acks must be all, leader or none (or -1, 1, 0), got "some"');
  });
});

describe('credit-based flow control', () => {
  it('never pushes past the message credit; a grant releases exactly that many more', async () => {
    await mock.produce('flow-msgs', Array.from({ length: 20 }, (_, i) => ({ value: `m${i}` })));
    const c = await ws('/kafka-rw');
    const sub = body(await c.request({ cmd_subscribe: { topic: 'flow-msgs', partition: 0, offset: -2n, credit_messages: 5n } }), 'subscribe_resp');
    expect((await pushed(c, 5)).map((m) => m.offset)).toEqual([0n, 1n, 2n, 3n, 4n]);
    // The client stopped granting: nothing more comes, however long it waits.
    expect(await c.next(700)).toBeUndefined();
    const credit = body(await c.request({ cmd_credit: { subscription: sub.subscription, messages: 3n } }), 'credit_resp');
    expect(credit.messages).toBe(3n);
    expect((await pushed(c, 3)).map((m) => m.offset)).toEqual([5n, 6n, 7n]);
    expect(await c.next(500)).toBeUndefined();
    const un = body(await c.request({ cmd_unsubscribe: { subscription: sub.subscription } }), 'unsubscribe_resp');
    expect(un.offset).toBe(8n);
    const again = await c.request({ cmd_credit: { subscription: sub.subscription, messages: 1n } });
    expect('error_resp' in again && again.error_resp.message).toBe(`no subscription ${sub.subscription}`);
  });

  it('a byte credit stops before the record that would exceed it', async () => {
    await mock.produce('flow-bytes', Array.from({ length: 10 }, () => ({ value: 'x'.repeat(100) })));
    const c = await ws('/kafka-rw');
    const sub = body(await c.request({ cmd_subscribe: { topic: 'flow-bytes', partition: 0, offset: 0n, credit_messages: 1000n, credit_bytes: 350n } }), 'subscribe_resp');
    expect(await pushed(c, 3)).toHaveLength(3);
    expect(await c.next(500)).toBeUndefined();
    body(await c.request({ cmd_credit: { subscription: sub.subscription, bytes: 200n } }), 'credit_resp');
    expect((await pushed(c, 2)).map((m) => m.offset)).toEqual([3n, 4n]);
    expect(await c.next(500)).toBeUndefined();
  });
});

describe('consumer groups', () => {
  it('acknowledged offsets survive a reconnect; what was pushed but not acked comes again (at-least-once)', async () => {
    await mock.produce('grp-orders', Array.from({ length: 10 }, (_, i) => ({ value: `order ${i}` })));
    const first = await ws('/kafka-rw');
    const sub = body(await first.request({ cmd_subscribe: { topic: 'grp-orders', partition: 0, offset: -2n, group: 'billing', credit_messages: 10n } }), 'subscribe_resp');
    expect(sub.offset).toBe(0n);
    expect((await pushed(first, 10)).map((m) => text(m.value))).toEqual(Array.from({ length: 10 }, (_, i) => `order ${i}`));
    const ack = body(await first.request({ cmd_ack: { subscription: sub.subscription, offset: 4n } }), 'ack_resp');
    expect(ack.committed).toBe(5n);
    const tooFar = await first.request({ cmd_ack: { subscription: sub.subscription, offset: 10n } });
    expect('error_resp' in tooFar && tooFar.error_resp.message).toBe(`cannot ack offset 10: subscription ${sub.subscription} delivered up to 9`);
    await first.close();

    // A new connection of the same group starts after the last acknowledged offset, whatever it asks.
    const second = await ws('/kafka-rw');
    const again = body(await second.request({ cmd_subscribe: { topic: 'grp-orders', partition: 0, offset: -1n, group: 'billing', credit_messages: 10n } }), 'subscribe_resp');
    expect(again.offset).toBe(5n);
    expect((await pushed(second, 5)).map((m) => m.offset)).toEqual([5n, 6n, 7n, 8n, 9n]);
    // Another group has its own offsets.
    const other = body(await second.request({ cmd_subscribe: { topic: 'grp-orders', partition: 0, offset: -2n, group: 'audit', credit_messages: 1n } }), 'subscribe_resp');
    expect(other.offset).toBe(0n);
  });

  it('ack without a group is refused', async () => {
    await mock.produce('grp-none', [{ value: 'a' }]);
    const c = await ws('/kafka-rw');
    const sub = body(await c.request({ cmd_subscribe: { topic: 'grp-none', partition: 0, offset: -2n, credit_messages: 1n } }), 'subscribe_resp');
    await pushed(c, 1);
    const r = await c.request({ cmd_ack: { subscription: sub.subscription, offset: 0n } });
    expect('error_resp' in r && r.error_resp.message).toBe(`subscription ${sub.subscription} has no group: nothing to commit`);
  });
});

describe('permissions and allow-lists (pubsub-acl)', () => {
  const err = (r: PubSubResponse): string | undefined => ('error_resp' in r ? r.error_resp.message : undefined);

  it('a route without pubsub-acl reads but never writes', async () => {
    const c = await ws('/kafka');
    const r = await c.request({ cmd_produce: { topic: 'push-denied', partition: 0, messages: [{ value: Buffer.from('x') }] } });
    expect(err(r)).toBe('permission denied: cmd_produce needs write access, and this route grants read only');
    expect(await kcatRead('push-denied')).toEqual([]);
  });

  it('read-only with an allow-list: other topics and writes are refused, naming the topic', async () => {
    const c = await ws('/kafka-ro');
    expect(err(await c.request({ cmd_kafka_fetch: { topic: 'secret', partition: 0, offset: 0n } }))).toBe(
      `permission denied: topic "secret" is not in this route's allow-list`,
    );
    expect(err(await c.request({ cmd_subscribe: { topic: 'secret', partition: 0, offset: -1n, credit_messages: 1n } }))).toBe(
      `permission denied: topic "secret" is not in this route's allow-list`,
    );
    expect(err(await c.request({ cmd_kafka_list_offset: { topic: 'allowed', partition: 0, timestamp: -1n } }))).toBeUndefined();
    expect(err(await c.request({ cmd_produce: { topic: 'allowed', partition: 0, messages: [{ value: Buffer.from('x') }] } }))).toBe(
      'permission denied: cmd_produce needs write access, and this route grants read only',
    );
  });

  it('write-only: produce works, reads are refused', async () => {
    const c = await ws('/kafka-wo');
    expect(err(await c.request({ cmd_kafka_fetch: { topic: 'push-wo', partition: 0, offset: 0n } }))).toBe(
      'permission denied: cmd_kafka_fetch needs read access, and this route grants write only',
    );
    const p = body(await c.request({ cmd_produce: { topic: 'push-wo', partition: 0, messages: [{ value: Buffer.from('w') }] } }), 'produce_resp');
    expect(p.results).toEqual([{ offset: 0n, error: '' }]);
  });

  it('the topic from the path: refused with 403 before the upgrade when not allowed; commands may only name it', async () => {
    const res = await fetch(`${gw.dataUrl}/topic/secret`);
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ error_msg: `permission denied: topic "secret" is not in this route's allow-list` });
    await expect(connect(`ws://127.0.0.1:${gw.dataPort}/topic/secret`)).rejects.toThrow('unexpected response 403');

    const c = await ws('/topic/orders-eu');
    const p = body(await c.request({ cmd_produce: { topic: '', partition: 0, messages: [{ value: Buffer.from('from path') }] } }), 'produce_resp');
    expect(p.results[0]!.error).toBe('');
    expect(await kcatRead('orders-eu')).toEqual(['0||from path|']);
    expect(err(await c.request({ cmd_kafka_fetch: { topic: 'orders-us', partition: 0, offset: 0n } }))).toBe(
      `permission denied: topic "orders-us" is not this route's topic "orders-eu"`,
    );
    const f = body(await c.request({ cmd_kafka_fetch: { topic: 'orders-eu', partition: 0, offset: 0n } }), 'kafka_fetch_resp');
    expect(f.messages.map((m) => text(m.value))).toEqual(['from path']);
  });

  it('the Admin API refuses unknown and wrong pubsub-acl fields, naming them', async () => {
    const bad = await gw.admin('PUT', '/apisix/admin/routes/bad-acl', { uri: '/bad', upstream: { nodes: { '127.0.0.1:9092': 1 }, type: 'none', scheme: 'kafka' }, plugins: { 'pubsub-acl': { permision: 'read' } } });
    expect(bad.status).toBe(400);
    expect(bad.body.error_msg).toContain('pubsub-acl');
    expect(bad.body.error_msg).toContain('permision');
    const wrong = await gw.admin('PUT', '/apisix/admin/routes/bad-acl', { uri: '/bad', upstream: { nodes: { '127.0.0.1:9092': 1 }, type: 'none', scheme: 'kafka' }, plugins: { 'pubsub-acl': { permission: 'admin' } } });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error_msg).toContain('permission');
  });
});
