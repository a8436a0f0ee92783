/**
 * kafka-logger against librdkafka's mock cluster (a kcat process, real Kafka
 * wire protocol), reading what was produced back with a separate `kcat -C`.
 * The mock has no SASL: the SASL test puts a recording TCP relay in front of
 * it and checks that the handshake naming the mechanism reaches the wire, and
 * that the failure is retried and the gateway keeps serving.
 */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKafkaMock, type KafkaMock } from '../helpers/kafka-mock.js';
import { send, startEnv, type Env } from './helpers.js';
import { startSaslBroker } from './loggers/sasl-broker.js';

let mock: KafkaMock;
let env: Env;

beforeAll(async () => {
  mock = await startKafkaMock({ brokers: 1 });
  env = await startEnv();
}, 60_000);
afterAll(async () => {
  await env?.close();
  await mock?.stop();
});

function brokers(): Array<{ host: string; port: number }> {
  return mock.ports.map((port) => ({ host: '127.0.0.1', port }));
}

/** Every message of the topic (all partitions), as `key|value`, read with kcat (-J: one JSON envelope per message). */
function consume(topic: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile('kcat', ['-C', '-b', mock.brokers.join(','), '-t', topic, '-o', 'beginning', '-e', '-q', '-J'], { timeout: 15_000 }, (err, out) =>
      err
        ? reject(err)
        : resolve(
            out
              .split('\n')
              .filter((l) => l !== '')
              .map((l) => {
                const m = JSON.parse(l) as { key: string | null; payload: string };
                return `${m.key ?? ''}|${m.payload}`;
              }),
          ),
    );
  });
}

async function consumeAtLeast(topic: string, n: number, ms = 10_000): Promise<string[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const got = await consume(topic).catch(() => [] as string[]);
    if (got.length >= n || Date.now() > deadline) return got;
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('kafka-logger', () => {
  it('produces each entry (batch of one, sync) with the key, readable with kcat', async () => {
    await env.route('kl-one', '/kl/one', {
      'kafka-logger': { brokers: brokers(), kafka_topic: 'kl-one', key: 'k1', batch_max_size: 1, producer_type: 'sync', required_acks: -1 },
    });
    expect((await send(`${env.gw.dataUrl}/kl/one?a=1`)).status).toBe(200);
    await send(`${env.gw.dataUrl}/kl/one?a=2`);
    const got = await consumeAtLeast('kl-one', 2);
    expect(got).toHaveLength(2);
    const entries = got.map((l) => {
      const [key, ...rest] = l.split('|');
      expect(key).toBe('k1');
      return JSON.parse(rest.join('|')) as { route_id: string; request: { uri: string }; response: { status: number } };
    });
    expect(entries.map((e) => e.request.uri).sort()).toEqual(['/kl/one?a=1', '/kl/one?a=2']);
    expect(entries[0]!.route_id).toBe('kl-one');
    expect(entries[0]!.response.status).toBe(200);
  });

  it('batches into a JSON array (async producer), with log_format from the metadata', async () => {
    await env.put('/apisix/admin/plugin_metadata/kafka-logger', { log_format: { uri: '$uri', method: '$request_method' } });
    await env.route('kl-batch', '/kl/batch/*', {
      'kafka-logger': { broker_list: { '127.0.0.1': mock.ports[0] }, kafka_topic: 'kl-batch', batch_max_size: 3 },
    });
    for (const p of ['a', 'b', 'c']) await send(`${env.gw.dataUrl}/kl/batch/${p}`);
    const got = await consumeAtLeast('kl-batch', 1);
    expect(got).toHaveLength(1);
    expect(JSON.parse(got[0]!.slice(got[0]!.indexOf('|') + 1))).toEqual([
      { uri: '/kl/batch/a', method: 'GET', route_id: 'kl-batch' },
      { uri: '/kl/batch/b', method: 'GET', route_id: 'kl-batch' },
      { uri: '/kl/batch/c', method: 'GET', route_id: 'kl-batch' },
    ]);
    await env.put('/apisix/admin/plugin_metadata/kafka-logger', { log_format: {} });
  });

  it('meta_format origin sends the request as it came, body included', async () => {
    await env.route('kl-origin', '/kl/origin', {
      'kafka-logger': { brokers: brokers(), kafka_topic: 'kl-origin', batch_max_size: 1, meta_format: 'origin', include_req_body: true },
    });
    await send(`${env.gw.dataUrl}/kl/origin?x=1`, { method: 'POST', headers: { 'x-one': 'yes' }, body: 'abc' });
    const got = await consumeAtLeast('kl-origin', 1);
    expect(got).toHaveLength(1);
    const value = got[0]!.slice(got[0]!.indexOf('|') + 1);
    expect(value).toMatch(/^POST \/kl\/origin\?x=1 HTTP\/1\.1\r$/m);
    expect(value).toMatch(/^x-one: yes\r$/m);
    expect(value.endsWith('\r\n\r\nabc')).toBe(true);
  });

  it('refuses what kafkajs cannot do, naming the field', async () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ brokers: brokers(), kafka_topic: 't', producer_batch_num: 10 }, /producer_batch_num/],
      [{ brokers: brokers(), kafka_topic: 't', api_version: 0 }, /api_version/],
      [{ brokers: brokers() }, /kafka_topic/],
      [
        {
          kafka_topic: 't',
          brokers: [
            { host: '127.0.0.1', port: 1, sasl_config: { user: 'a', password: 'b' } },
            { host: '127.0.0.1', port: 2 },
          ],
        },
        /sasl_config/,
      ],
    ];
    for (const [conf, msg] of bad) {
      const r = await env.gw.admin('PUT', '/apisix/admin/routes/kl-bad', { uri: '/kl/bad', plugins: { 'kafka-logger': conf }, upstream: { type: 'roundrobin', nodes: { [env.up.node]: 1 } } });
      expect(r.status, JSON.stringify(conf)).toBe(400);
      expect(r.body.error_msg).toMatch(msg);
    }
  });
});

describe('kafka-logger SASL (the mock has none: a stand-in broker records the exchange)', () => {
  const cases = [
    ['PLAIN', (b: Buffer) => expect(b.toString()).toBe('\0alice\0pw')],
    ['SCRAM-SHA-256', (b: Buffer) => expect(b.toString()).toMatch(/^n,,n=alice,r=[!-+\--~]+$/)],
  ] as const;
  for (const [mechanism, checkAuth] of cases) {
    it(`${mechanism}: the handshake names the mechanism, the credentials reach the wire, a refusal is retried and requests are still served`, async () => {
      const broker = await startSaslBroker();
      try {
        await env.route(`kl-sasl-${mechanism}`, `/kl/sasl/${mechanism}`, {
          'kafka-logger': {
            brokers: [{ host: '127.0.0.1', port: broker.port, sasl_config: { mechanism, user: 'alice', password: 'pw' } }],
            kafka_topic: 'kl-sasl',
            batch_max_size: 1,
            producer_type: 'sync',
            max_retry_count: 1,
            retry_delay: 0,
            timeout: 1,
          },
        });
        expect((await send(`${env.gw.dataUrl}/kl/sasl/${mechanism}`)).status).toBe(200);
        const deadline = Date.now() + 5000;
        while (broker.seen.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        // The first try and one retry, each authenticating.
        expect(broker.seen).toHaveLength(2);
        expect(broker.seen[0]!.mechanism).toBe(mechanism);
        checkAuth(broker.seen[0]!.authBytes);
        expect((await send(`${env.gw.dataUrl}/kl/sasl/${mechanism}`)).status).toBe(200);
      } finally {
        await broker.close();
      }
    });
  }
});

describe('kafka-logger producers', () => {
  it('one producer per broker set: confs naming the same brokers share it, another set gets its own', async () => {
    const { Producers } = await import('../../src/plugins/kafka-logger/producers.js');
    const p = new Producers();
    try {
      const spec = { brokers: mock.brokers, clusterName: 1, timeoutMs: 3000, metadataMaxAgeMs: 30_000 };
      const a = await p.get(spec);
      const b = await p.get({ ...spec });
      const c = await p.get({ ...spec, clusterName: 2 });
      expect(a).toBe(b);
      expect(c).not.toBe(a);
    } finally {
      await p.close();
    }
  });
});
