/** checkResource for services, consumers, global rules, plugin configs, plugin metadata and SSLs. */
import { describe, expect, it } from 'vitest';
import { encryptValue } from '../../src/core/secrets/encryption.js';
import { checkResource } from '../../src/admin/check.js';
import { getCoreSchema, validateSchemaOnly } from '../../src/schema/index.js';
import { CERT_A, CERT_B, KEY_A, KEY_B, fakeEnv, testRegistry } from './helpers.js';

const registry = testRegistry();

describe('services', () => {
  const env = fakeEnv(registry, { upstreams: [{ id: '1', value: { nodes: {} } }] });
  const check = (v: Record<string, unknown>) => checkResource('services', 's1', v, env);
  it('accepts an empty service and the usual fields', async () => {
    expect(await check({})).toBeUndefined();
    expect(await check({ upstream_id: '1', plugins: {}, hosts: ['a.com'], enable_websocket: true, name: 'svc' })).toBeUndefined();
  });
  it.each([
    [{ hosts: [] }, 'invalid configuration: property "hosts" validation failed: expect array to have at least 1 items'],
    [{ uri: '/a' }, 'invalid configuration: additional properties forbidden, found uri'],
    [{ upstream_id: '2' }, 'failed to fetch upstream info by upstream id [2], response code: 404'],
    [{ upstream: { nodes: { 'a:0': 1 } } }, 'invalid port 0'],
    [{ plugins: { nope: {} } }, 'unknown plugin [nope]'],
    [{ upstream: { nodes: {} }, upstream_id: '1' }, 'invalid configuration: only one of "upstream" and "upstream_id" is allowed (at /)'],
  ])('%j → %s', async (value, message) => {
    expect(await check(value)).toBe(message);
  });
});

describe('consumers', () => {
  const keyring = ['edd1c9f0985e76a2'];
  const env = fakeEnv(
    registry,
    {
      consumers: [
        { id: 'jack', value: { username: 'jack', plugins: { 'key-auth': { key: 'auth-one' } } } },
        // Stored encrypted, as the Admin API writes it when encrypt_fields is on.
        { id: 'rose', value: { username: 'rose', plugins: { 'key-auth': { key: encryptValue('auth-two', keyring) } } } },
      ],
    },
    keyring,
  );
  const check = (id: string, v: Record<string, unknown>) => checkResource('consumers', id, v, env);

  it('accepts a consumer, and its own key again on update', async () => {
    expect(await check('tom', { username: 'tom' })).toBeUndefined();
    expect(await check('jack', { username: 'jack', plugins: { 'key-auth': { key: 'auth-one' } } })).toBeUndefined();
    expect(await check('tom', { username: 'tom', plugins: { 'key-auth': { key: '$secret://vault/1/jack/key' } } })).toBeUndefined();
  });

  it.each([
    [{}, 'invalid configuration: property "username" is required'],
    [{ username: 'a b' }, 'invalid configuration: property "username" validation failed: failed to match pattern "^[a-zA-Z0-9_\\\\-]+$" with "a b"'],
    [{ username: 'tom', id: 'x', foo: 1 }, 'invalid configuration: additional properties forbidden, found foo'],
    [{ username: 'tom', plugins: { 'key-auth': {} } }, 'invalid plugins configuration: failed to check the configuration of plugin key-auth err: property "key" is required'],
    [{ username: 'tom', plugins: { nope: {} } }, 'invalid plugins configuration: unknown plugin [nope]'],
    [{ username: 'tom', plugins: { 'key-auth': { key: 'auth-one' } } }, 'duplicate key of plugin key-auth found with consumer: jack'],
    [{ username: 'tom', plugins: { 'key-auth': { key: 'auth-two' } } }, 'duplicate key of plugin key-auth found with consumer: rose'],
  ])('%j → %s', async (value, message) => {
    expect(await check('tom', value)).toBe(message);
  });

  it('a URL username different from the body is refused', async () => {
    expect(await check('jerry', { username: 'tom' })).toBe('wrong username');
  });

  it('non-auth plugins on a consumer use their route schema', async () => {
    expect(await check('tom', { username: 'tom', plugins: { checked: { max: 5 } } })).toBeUndefined();
    expect(await check('tom', { username: 'tom', plugins: { checked: { bad: 5 } } })).toBe(
      'invalid plugins configuration: failed to check the configuration of plugin checked err: additional properties forbidden, found bad',
    );
  });
});

describe('global rules', () => {
  const env = fakeEnv(registry, {
    global_rules: [{ id: '1', value: { id: '1', plugins: { 'kafka-proxy': {} } } }],
  });
  const check = (id: string, v: Record<string, unknown>) => checkResource('global_rules', id, v, env);
  it('refuses a plugin another global rule already has, allows updating the same rule', async () => {
    expect(await check('2', { id: '2', plugins: { 'kafka-proxy': {} } })).toBe(
      "plugin 'kafka-proxy' already exists in global rule with id '1'",
    );
    expect(await check('1', { id: '1', plugins: { 'kafka-proxy': { sasl: { username: 'a', password: 'b' } } } })).toBeUndefined();
    expect(await check('2', { id: '2', plugins: { checked: {} } })).toBeUndefined();
  });
  it('needs plugins and only knows its own fields', async () => {
    expect(await check('2', { id: '2' })).toBe('invalid configuration: property "plugins" is required');
    expect(await check('2', { id: '2', plugins: {}, uri: '/a' })).toBe('invalid configuration: additional properties forbidden, found uri');
    expect(await check('2', { id: '2', plugins: { checked: { min: 'x' } } })).toBe(
      'failed to check the configuration of plugin checked err: property "min" validation failed: wrong type: expected integer, got string',
    );
  });
});

describe('plugin configs', () => {
  const env = fakeEnv(registry);
  const check = (v: Record<string, unknown>) => checkResource('plugin_configs', '1', v, env);
  it('checks schema then plugins', async () => {
    expect(await check({ id: '1', plugins: {}, name: 'x'.repeat(300) })).toBeUndefined();
    expect(await check({ id: '1' })).toBe('invalid configuration: property "plugins" is required');
    expect(await check({ id: '1', plugins: { checked: { min: 5, max: 1 } } })).toBe(
      'failed to check the configuration of plugin checked err: max 1 is below min 5',
    );
  });
});

describe('plugin metadata', () => {
  const env = fakeEnv(registry);
  it('checks the body against the plugin metadata_schema', async () => {
    expect(await checkResource('plugin_metadata', 'checked', { id: 'checked', log_format: { a: '$host' } }, env)).toBeUndefined();
    expect(await checkResource('plugin_metadata', 'checked', {}, env)).toBe('invalid configuration: property "log_format" is required');
    expect(await checkResource('plugin_metadata', 'nope', {}, env)).toBe('invalid plugin name');
    expect(await checkResource('plugin_metadata', '', {}, env)).toBe('missing plugin name');
    // No metadata_schema: any object.
    expect(await checkResource('plugin_metadata', 'kafka-proxy', { anything: 1 }, env)).toBeUndefined();
  });
});

describe('ssls', () => {
  const env = fakeEnv(registry);
  const check = (v: Record<string, unknown>) => checkResource('ssls', '1', v, env);
  it('accepts server and client certificates', async () => {
    expect(await check({ cert: CERT_A, key: KEY_A, snis: ['a.com', '*.b.com'] })).toBeUndefined();
    expect(await check({ type: 'client', cert: CERT_A, key: KEY_A })).toBeUndefined();
    expect(await check({ cert: CERT_A, key: KEY_A, sni: 'a.com', certs: [CERT_B], keys: [KEY_B] })).toBeUndefined();
  });
  it.each([
    [{ cert: CERT_A, key: KEY_A }, 'invalid configuration: then clause did not match'],
    [{ type: 'client', cert: CERT_A }, 'invalid configuration: else clause did not match'],
    [{ cert: CERT_A, key: KEY_A, snis: [] }, 'invalid configuration: property "snis" validation failed: expect array to have at least 1 items'],
    [{ cert: CERT_A, key: KEY_A, sni: 'a.com', certs: ['short'] }, 'invalid configuration: property "certs" validation failed: failed to validate item 1: string too short, expected at least 128, got 5'],
    [{ cert: CERT_A, key: KEY_A, sni: 'a.com', ssl_protocols: ['TLSv1.0'] }, 'invalid configuration: property "ssl_protocols" validation failed: failed to validate item 1: matches none of the enum values'],
    [{ cert: CERT_A, key: KEY_A, sni: 'a.com', client: {} }, 'invalid configuration: property "client" validation failed: property "ca" is required'],
    [{ cert: CERT_A, key: KEY_A, sni: 'a.com', certs: [CERT_B], keys: [] }, 'mismatched number of certs and keys'],
    [{ cert: CERT_A, key: KEY_A, sni: 'a.com', certs: [CERT_B], keys: [KEY_A] }, 'failed to handle cert-key pair[1]: failed to match cert and key: the private key does not belong to the certificate'],
    [{ cert: 'c'.repeat(200), key: KEY_A, sni: 'a.com' }, 'failed to parse cert: PEM_read_bio_X509_AUX() failed'],
  ])('%j → %s', async (value, message) => {
    expect(await check(value)).toBe(message);
  });
});

describe('schema endpoints', () => {
  it('serves the APISIX-shaped schemas', () => {
    const route = getCoreSchema('route') as Record<string, unknown>;
    expect(route.additionalProperties).toBe(false);
    expect(route.allOf).toHaveLength(4);
    expect(getCoreSchema('upstream')).toMatchObject({ properties: { scheme: { enum: expect.arrayContaining(['kafka']) } } });
    for (const name of ['service', 'consumer', 'global_rule', 'plugin_config', 'ssl']) expect(getCoreSchema(name)).toBeTypeOf('object');
    expect(getCoreSchema('nope')).toBeUndefined();
    expect(getCoreSchema('toString')).toBeUndefined();
  });
  it('validateSchemaOnly gives the raw message and runs no extras', () => {
    expect(validateSchemaOnly('consumers', {})).toBe('property "username" is required');
    expect(validateSchemaOnly('routes', { uri: '/a', upstream_id: 'does-not-exist' })).toBeUndefined();
    expect(validateSchemaOnly('upstreams', { nodes: { 'a:0': 1 } })).toBeUndefined();
  });
});
