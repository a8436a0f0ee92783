/**
 * kafka-proxy: APISIX t/plugin/kafka-proxy.t, both cases. Case 1 through the
 * registry's schema check; the access phase on a request context; case 2
 * (sasl.password stored encrypted, shown in plain by the Admin API) through
 * a real gateway over HTTP, reading the raw store.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import kafkaProxy from '../../src/plugins/kafka-proxy.js';
import type { DataKey, RequestContext } from '../../src/core/plugin/ctx.js';
import { resourceKey } from '../../src/core/model.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { testRegistry } from './helpers.js';

describe('check_schema (kafka-proxy.t TEST 1)', () => {
  const r = testRegistry();
  it.each([
    [{}, undefined],
    [{ sasl: { username: 'user', password: 'pwd' } }, undefined],
    [{ sasl: { username: 'user' } }, 'property "sasl" validation failed: property "password" is required'],
    [
      { sasl: { username: 'user', password: 1234 } },
      'property "sasl" validation failed: property "password" validation failed: wrong type: expected string, got number',
    ],
    [{ sasl: { username: 'u', password: 'p', mechanism: 'SCRAM-SHA-512' } }, undefined],
    [{ sasl: { username: 'u', password: 'p', mechanism: 'GSSAPI' } }, 'property "sasl" validation failed: property "mechanism" validation failed: matches none of the enum values'],
    // No additionalProperties restriction, as in APISIX.
    [{ other: 1 }, undefined],
  ])('%j → %s', (conf, message) => {
    expect(r.checkSchemaOnly('kafka-proxy', conf)).toBe(message);
  });

  it('has APISIX name, priority and version', () => {
    expect(kafkaProxy).toMatchObject({ name: 'kafka-proxy', priority: 508, version: '0.1', encrypt_fields: ['sasl.password'] });
  });
});

describe('access phase', () => {
  /** A context whose per-request data is the plain object `data`, keyed by the data keys' names. */
  const ctxWith = (): RequestContext & { data: Record<string, unknown> } => {
    const data: Record<string, unknown> = {};
    return {
      data,
      getData: (key: DataKey<unknown>) => data[key.name],
      setData: (key: DataKey<unknown>, value: unknown) => void (data[key.name] = value),
    } as unknown as RequestContext & { data: Record<string, unknown> };
  };

  it('writes the SASL settings into the request context and never ends the request', async () => {
    const ctx = ctxWith();
    const res = await kafkaProxy.access?.({ sasl: { username: 'admin', password: 'admin-secret', mechanism: 'SCRAM-SHA-256' } }, ctx);
    expect(res).toBeUndefined();
    expect(ctx.data).toEqual({
      kafka_consumer_enable_sasl: true,
      kafka_consumer_sasl_username: 'admin',
      kafka_consumer_sasl_password: 'admin-secret',
      kafka_consumer_sasl_mechanism: 'SCRAM-SHA-256',
    });
  });

  it('defaults the mechanism to PLAIN and does nothing without sasl', async () => {
    const ctx = ctxWith();
    await kafkaProxy.access?.({ sasl: { username: 'a', password: 'b' } }, ctx);
    expect(ctx.data.kafka_consumer_sasl_mechanism).toBe('PLAIN');
    const none = ctxWith();
    expect(await kafkaProxy.access?.({}, none)).toBeUndefined();
    expect(none.data).toEqual({});
  });
});

describe('encrypted sasl.password over the Admin API (kafka-proxy.t TEST 2)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({
      config: {
        apisix: { data_encryption: { enable_encrypt_fields: true, keyring: ['edd1c9f0985e76a2'] } },
        plugins: ['kafka-proxy'],
      },
    });
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('stores y4Z3aqo51xrt3f9UziNUrg== and shows admin-secret', async () => {
    const put = await gw.admin('PUT', '/apisix/admin/routes/1', {
      uri: '/kafka',
      plugins: { 'kafka-proxy': { sasl: { username: 'admin', password: 'admin-secret' } } },
      upstream: { nodes: { '127.0.0.1:1980': 1 }, type: 'roundrobin' },
    });
    expect(put.status).toBeLessThan(300);
    const get = await gw.admin('GET', '/apisix/admin/routes/1');
    expect(get.body.value.plugins['kafka-proxy'].sasl.password).toBe('admin-secret');
    const raw = await gw.gateway.store.get(resourceKey('routes', '1'));
    const stored = raw?.value as { plugins: Record<string, { sasl: { password: string } }> };
    expect(stored.plugins['kafka-proxy']?.sasl.password).toBe('y4Z3aqo51xrt3f9UziNUrg==');
  });

  it('answers a bad conf with 400 and APISIX message, storing nothing', async () => {
    const put = await gw.admin('PUT', '/apisix/admin/routes/2', {
      uri: '/kafka2',
      plugins: { 'kafka-proxy': { sasl: { username: 'admin' } } },
      upstream: { nodes: { '127.0.0.1:1980': 1 }, type: 'roundrobin' },
    });
    expect(put.status).toBe(400);
    expect(put.body).toEqual({
      error_msg:
        'failed to check the configuration of plugin kafka-proxy err: property "sasl" validation failed: property "password" is required',
    });
    expect(await gw.gateway.store.get(resourceKey('routes', '2'))).toBeUndefined();
  });
});
