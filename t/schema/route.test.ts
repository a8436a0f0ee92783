/**
 * checkResource('routes'): APISIX's admin route checker order and messages
 * (apisix/admin/routes.lua), with a fake store. The admin tests drive the same
 * rules over HTTP.
 */
import { describe, expect, it } from 'vitest';
import { checkResource } from '../../src/admin/check.js';
import { fakeEnv, testRegistry } from './helpers.js';

const registry = testRegistry();
const env = fakeEnv(registry, {
  upstreams: [{ id: '1', value: { id: '1', nodes: { '127.0.0.1:80': 1 } } }],
  services: [{ id: 's1', value: { id: 's1' } }],
  plugin_configs: [{ id: 'pc1', value: { id: 'pc1', plugins: {} } }],
});
const check = (value: Record<string, unknown>) => checkResource('routes', '1', value, env);
const up = { nodes: { '127.0.0.1:1980': 1 }, type: 'roundrobin' };

describe('route check', () => {
  it('accepts the APISIX docs Kafka route', async () => {
    const kafkaRoute = {
      uri: '/kafka',
      plugins: { 'kafka-proxy': { sasl: { username: 'user', password: 'pwd' } } },
      upstream: {
        nodes: { 'kafka-server1:9092': 1, 'kafka-server2:9092': 1, 'kafka-server3:9092': 1 },
        type: 'none',
        scheme: 'kafka',
        tls: { verify: true },
      },
    };
    const copy = structuredClone(kafkaRoute);
    expect(await check(kafkaRoute)).toBeUndefined();
    // The Admin API stores what was sent: the check fills no defaults.
    expect(kafkaRoute).toEqual(copy);
  });

  it('accepts the common shapes', async () => {
    for (const ok of [
      { uri: '/a', upstream: up },
      { uris: ['/a', '/b'], upstream_id: 1 },
      { uri: '/a', plugins: {} },
      { uri: '/a', service_id: 's1' },
      { uri: '/a', script: 'local _M = {} return _M' },
      { uri: '/a', upstream: up, methods: ['GET', 'PURGE'], host: '*.foo.com', remote_addrs: ['10.0.0.0/8', '::1'] },
      { uri: '/a', upstream: up, vars: [['arg_name', '==', 'json']], priority: 10, status: 0, labels: { env: 'prod' } },
      { uri: '/a', upstream_id: '1', plugin_config_id: 'pc1', timeout: { connect: 1, send: 1, read: 1.5 } },
      { uri: '/a', upstream: { ...up, type: 'unknown' } },
    ]) {
      expect(await check(ok), JSON.stringify(ok)).toBeUndefined();
    }
  });

  it.each([
    [{ uri: '/a', upstream: up, host: 'a.com', hosts: ['b.com'] }, 'only one of host or hosts is allowed'],
    [{ uri: '/a', upstream: up, remote_addr: '1.1.1.1', remote_addrs: ['2.2.2.2'] }, 'only one of remote_addr or remote_addrs is allowed'],
    [{ upstream: up }, 'invalid configuration: "uri" or "uris" is required (at /)'],
    [{ uri: '/a', uris: ['/b'], upstream: up }, 'invalid configuration: only one of "uri" and "uris" is allowed (at /)'],
    [{ uri: '/a', upstream: up, upstream_id: '1' }, 'invalid configuration: only one of "upstream" and "upstream_id" is allowed (at /)'],
    [
      { uri: '/a', upstream: up, methods: ['GET', 'invalid_method'] },
      'invalid configuration: property "methods" validation failed: failed to validate item 2: matches none of the enum values',
    ],
    [
      { uri: '/a', upstream: up, methods: ['GET', 'GET'] },
      'invalid configuration: property "methods" validation failed: expected unique items but items 1 and 2 are equal',
    ],
    [{ uri: '/a', upstream: up, foo: 'bar' }, 'invalid configuration: additional properties forbidden, found foo'],
    [{ uri: '/a', upstream: up, id: 'invalid_id$' }, 'invalid configuration: property "id" validation failed: object matches none of the required'],
    [{ uri: '/a', upstream_id: 'a b' }, 'invalid configuration: property "upstream_id" validation failed: object matches none of the required'],
    [{ uri: '/a', upstream: up, remote_addr: '127.0.0.999' }, 'invalid configuration: property "remote_addr" validation failed: object matches none of the required'],
    [
      { uri: '/a', upstream: up, host: 'a.*.foo.com' },
      'invalid configuration: property "host" validation failed: failed to match pattern "^\\\\*$|^\\\\*?[0-9a-zA-Z-._\\\\[\\\\]:]+$" with "a.*.foo.com"',
    ],
    [{ uri: '/a', upstream: up, name: 'x'.repeat(257) }, 'invalid configuration: property "name" validation failed: string too long, expected at most 256, got 257'],
    [{ uri: '', upstream: up }, 'invalid configuration: property "uri" validation failed: string too short, expected at least 1, got 0'],
    [
      { uri: '/a', upstream: up, timeout: { connect: 0, send: 1, read: 1 } },
      'invalid configuration: property "timeout" validation failed: property "connect" validation failed: expected 0 to be greater than 0',
    ],
    [{ uri: '/a', upstream: up, timeout: { connect: 1, send: 1 } }, 'invalid configuration: property "timeout" validation failed: property "read" is required'],
    [{ uri: '/a', upstream: up, status: 2 }, 'invalid configuration: property "status" validation failed: matches none of the enum values'],
    [{ uri: '/a', upstream: up, labels: 'x' }, 'invalid configuration: property "labels" validation failed: wrong type: expected object, got string'],
    [
      { uri: '/a', upstream: up, labels: { env: { a: 1 } } },
      'invalid configuration: property "labels" validation failed: failed to validate env (matching ".*"): wrong type: expected string, got table',
    ],
    [{ uri: '/a', plugin_config_id: 'pc1' }, 'invalid configuration: object matches none of the required: ["plugins","uri"] or ["upstream","uri"] or ["upstream_id","uri"] or ["service_id","uri"] or ["plugins","uris"] or ["upstream","uris"] or ["upstream_id","uris"] or ["service_id","uris"] or ["script","uri"] or ["script","uris"]'],
    [{ uri: '/a', script: 'local _M = {} return _M', plugin_config_id: 'pc1' }, 'invalid configuration: only one of "script" and "plugin_config_id" is allowed (at /)'],
    [{ uri: '/a', upstream: up, filter_func: 'return 1 + 1' }, 'invalid configuration: property "filter_func" validation failed: failed to match pattern "^function" with "return 1 + 1"'],
  ])('%j → %s', async (value, message) => {
    expect(await check(value)).toBe(message);
  });

  it('checks the embedded upstream beyond its schema', async () => {
    expect(await check({ uri: '/a', upstream: { nodes: [{ host: '::1', port: 80, weight: 1 }] } })).toBe(
      "invalid configuration: IPv6 address must be enclosed with '[' and ']'",
    );
    expect(await check({ uri: '/a', upstream: { nodes: { '127.0.0.1:0': 1 } } })).toBe('invalid port 0');
    expect(
      await check({ uri: '/a', upstream: { nodes: { 'a:1': 1 }, checks: { active: { healthy: { successes: 255 } } } } }),
    ).toBe(
      'invalid configuration: property "upstream" validation failed: property "checks" validation failed: property "active" validation failed: property "healthy" validation failed: property "successes" validation failed: expected 255 to be at most 254',
    );
  });

  it('resolves references in APISIX order with its messages', async () => {
    expect(await check({ uri: '/a', upstream_id: '9' })).toBe('failed to fetch upstream info by upstream id [9], response code: 404');
    expect(await check({ uri: '/a', service_id: 's9' })).toBe('failed to fetch service info by service id [s9], response code: 404');
    expect(await check({ uri: '/a', plugins: {}, plugin_config_id: 'pc9' })).toBe(
      'failed to fetch plugin config info by plugin config id [pc9], response code: 404',
    );
    // upstream before service before plugin config
    expect(await check({ uri: '/a', upstream_id: 9, service_id: 's9', plugin_config_id: 'pc9' })).toBe(
      'failed to fetch upstream info by upstream id [9], response code: 404',
    );
    expect(await check({ uri: '/a', upstream_id: 1 })).toBeUndefined();
  });

  it('checks plugin confs after references', async () => {
    expect(await check({ uri: '/a', upstream_id: '9', plugins: { nope: {} } })).toBe(
      'failed to fetch upstream info by upstream id [9], response code: 404',
    );
    expect(await check({ uri: '/a', upstream: up, plugins: { nope: {} } })).toBe('unknown plugin [nope]');
    expect(await check({ uri: '/a', upstream: up, plugins: { 'kafka-proxy': 'x' } })).toBe(
      'invalid plugin conf "x" for plugin [kafka-proxy]',
    );
    expect(await check({ uri: '/a', upstream: up, plugins: { 'kafka-proxy': { sasl: { username: 'u' } } } })).toBe(
      'failed to check the configuration of plugin kafka-proxy err: property "sasl" validation failed: property "password" is required',
    );
  });

  it('compiles vars with the router expression compiler', async () => {
    expect(await check({ uri: '/a', upstream: up, vars: [['arg_a', '=', '1']] })).toBe(
      "failed to validate the 'vars' expression: invalid operator '='",
    );
    expect(await check({ uri: '/a', upstream: up, vars: 'x' })).toBe(
      'invalid configuration: property "vars" validation failed: wrong type: expected array, got string',
    );
    expect(await check({ uri: '/a', upstream: up, vars: [['arg_a', '==', '1'], ['http_x', '~~', '^a']] })).toBeUndefined();
  });
});
