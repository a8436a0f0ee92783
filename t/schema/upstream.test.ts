/** checkResource('upstreams'): schema plus APISIX's check_upstream_conf extras. */
import { describe, expect, it } from 'vitest';
import { checkResource } from '../../src/admin/check.js';
import { applyCoreDefaults } from '../../src/schema/index.js';
import { portOfAddr } from '../../src/schema/upstream-check.js';
import { CERT_A, CERT_B, KEY_A, fakeEnv, testRegistry } from './helpers.js';

const env = fakeEnv(testRegistry(), {
  ssls: [
    { id: 'client1', value: { id: 'client1', type: 'client', cert: CERT_A, key: KEY_A } },
    { id: 'server1', value: { id: 'server1', cert: CERT_A, key: KEY_A, sni: 'a.com' } },
  ],
});
const check = (value: Record<string, unknown>) => checkResource('upstreams', '1', value, env);
const nodes = { '127.0.0.1:1980': 1 };

describe('upstream check', () => {
  it('accepts hash and array nodes, empty nodes, discovery, any type, every scheme', async () => {
    for (const ok of [
      { nodes },
      { nodes: {} },
      { nodes: [] },
      { nodes: [{ host: '127.0.0.1', weight: 1 }] },
      { nodes: [{ host: '[::1]', port: 80, weight: 0, priority: -1, metadata: { a: 1 } }] },
      { nodes: { '[::1]:80': 1, 'example.com': 2 } },
      { service_name: 'svc', discovery_type: 'dns' },
      { nodes, type: 'unknown' },
      { nodes, type: 'none', scheme: 'kafka', tls: { verify: true } },
      ...['grpc', 'grpcs', 'http', 'https', 'tcp', 'tls', 'udp'].map((scheme) => ({ nodes, scheme })),
      { nodes, retries: 0, retry_timeout: 0, keepalive_pool: { size: 1, idle_timeout: 0, requests: 1 } },
      { nodes, pass_host: 'rewrite', upstream_host: 'foo.com' },
      { nodes, type: 'chash', key: 'remote_addr' },
      { nodes, type: 'chash', hash_on: 'vars', key: 'arg_device_id' },
      { nodes, type: 'chash', hash_on: 'header', key: 'X-Device' },
      { nodes, type: 'chash', hash_on: 'cookie', key: 'sid' },
      { nodes, type: 'chash', hash_on: 'consumer' },
      { nodes, type: 'chash', hash_on: 'vars_combinations', key: '$host$uri' },
      { nodes, tls: { client_cert_id: 'client1' } },
      { nodes, tls: { client_cert: CERT_A, client_key: KEY_A } },
      { nodes, checks: { active: { http_path: '/status', healthy: { interval: 2 } }, passive: { unhealthy: { http_failures: 3 } } } },
    ]) {
      expect(await check(ok), JSON.stringify(ok).slice(0, 120)).toBeUndefined();
    }
  });

  it.each([
    [{ nodes: [{ host: '::1', port: 80, weight: 1 }] }, "invalid configuration: IPv6 address must be enclosed with '[' and ']'"],
    [{ nodes: { '127.0.0.1:0': 1 } }, 'invalid port 0'],
    [{ nodes: { '127.0.0.1:65536': 1 } }, 'invalid port 65536'],
    [{ nodes: { '[::1]:99999': 1 } }, 'invalid port 99999'],
    [{ nodes: { 'a:1': -1 } }, 'invalid configuration: property "nodes" validation failed: object matches none of the required'],
    [{ nodes: [{ host: 'a' }] }, 'invalid configuration: property "nodes" validation failed: object matches none of the required'],
    [{ nodes, scheme: 'ws' }, 'invalid configuration: property "scheme" validation failed: matches none of the enum values'],
    [{ nodes, hash_on: 'body' }, 'invalid configuration: property "hash_on" validation failed: matches none of the enum values'],
    [{ nodes, retries: -1 }, 'invalid configuration: property "retries" validation failed: expected -1 to be at least 0'],
    [{ nodes, retry_timeout: -1 }, 'invalid configuration: property "retry_timeout" validation failed: expected -1 to be at least 0'],
    [{ nodes, keepalive_pool: { size: 0 } }, 'invalid configuration: property "keepalive_pool" validation failed: property "size" validation failed: expected 0 to be at least 1'],
    [{ nodes, create: 1 }, 'invalid configuration: additional properties forbidden, found create'],
    [{ nodes, type: 1 }, 'invalid configuration: property "type" validation failed: wrong type: expected string, got number'],
    [{ nodes, checks: { passive: { type: 'http' } } }, 'invalid configuration: property "checks" validation failed: object matches none of the required: ["active"] or ["active","passive"]'],
    [
      { nodes, checks: { active: { unhealthy: { http_failures: 1.5 } } } },
      'invalid configuration: property "checks" validation failed: property "active" validation failed: property "unhealthy" validation failed: property "http_failures" validation failed: wrong type: expected integer, got number',
    ],
    [
      { nodes, checks: { active: { req_headers: ['a: b', 1] } } },
      'invalid configuration: property "checks" validation failed: property "active" validation failed: property "req_headers" validation failed: failed to validate item 2: wrong type: expected string, got number',
    ],
    [
      { nodes, checks: { active: { type: 'udp' } } },
      'invalid configuration: property "checks" validation failed: property "active" validation failed: property "type" validation failed: matches none of the enum values',
    ],
    [{ nodes, pass_host: 'rewrite' }, "`upstream_host` can't be empty when `pass_host` is `rewrite`"],
    [{ nodes, type: 'chash' }, 'missing key'],
    [{ nodes, type: 'chash', hash_on: 'header' }, 'missing key'],
    [
      { nodes, type: 'chash', key: 'not_support' },
      'invalid configuration: failed to match pattern "^((uri|server_name|server_addr|request_uri|remote_port|remote_addr|query_string|host|hostname|mqtt_client_id)|arg_[0-9a-zA-z_-]+)$" with "not_support"',
    ],
    [{ nodes, type: 'chash', hash_on: 'header', key: '$#^@' }, 'invalid configuration: failed to match pattern "^[a-zA-Z0-9-_]+$" with "$#^@"'],
    [{ nodes, type: 'chash', hash_on: 'cookie', key: '$#^@abc' }, 'invalid configuration: failed to match pattern "^[a-zA-Z0-9-_]+$" with "$#^@abc"'],
    [{ nodes, tls: { client_cert_id: 'nope' } }, 'failed to fetch ssl info by ssl id [nope], response code: 404'],
    [{ nodes, tls: { client_cert_id: 'server1' } }, 'failed to fetch ssl info by ssl id [server1], wrong ssl type'],
    [
      { nodes, tls: { client_cert: CERT_A } },
      'invalid configuration: property "tls" validation failed: failed to validate dependent schema for "client_cert": property "client_key" is required',
    ],
    [
      { nodes, tls: { client_key: KEY_A } },
      'invalid configuration: property "tls" validation failed: failed to validate dependent schema for "client_key": property "client_cert" is required',
    ],
    [
      { nodes, tls: { client_cert_id: 'client1', client_cert: CERT_A, client_key: KEY_A } },
      'invalid configuration: property "tls" validation failed: failed to validate dependent schema for "client_cert_id": value wasn\'t supposed to match schema',
    ],
    [{ nodes, tls: { client_cert: 'x'.repeat(128), client_key: KEY_A } }, 'failed to parse cert: PEM_read_bio_X509_AUX() failed'],
    [{ nodes, tls: { client_cert: CERT_A, client_key: 'k'.repeat(64) } }, 'failed to parse key: PEM_read_bio_PrivateKey() failed'],
    [{ nodes, tls: { client_cert: CERT_B, client_key: KEY_A } }, 'failed to match cert and key: the private key does not belong to the certificate'],
  ])('%j → %s', async (value, message) => {
    expect(await check(value)).toBe(message);
  });

  it('reads ports from hash keys as APISIX parse_addr does', () => {
    expect(portOfAddr('127.0.0.1:80')).toBe(80);
    expect(portOfAddr('[::1]:8080')).toBe(8080);
    expect(portOfAddr('::1')).toBeUndefined();
    expect(portOfAddr('example.com')).toBeUndefined();
  });

  it('fills defaults only for the data plane', async () => {
    const value: Record<string, unknown> = { nodes, checks: { active: { healthy: {} } } };
    expect(await check(value)).toBeUndefined();
    expect(value).toEqual({ nodes, checks: { active: { healthy: {} } } });
    expect(applyCoreDefaults('upstreams', value)).toBeUndefined();
    expect(value).toMatchObject({
      type: 'roundrobin',
      scheme: 'http',
      pass_host: 'pass',
      hash_on: 'vars',
      checks: { active: { type: 'http', timeout: 1, http_path: '/', healthy: { interval: 1, http_statuses: [200, 302], successes: 2 } } },
    });
  });
});
