/**
 * The ajv → APISIX message translator, driven through real compiled schemas:
 * every jsonschema message shape APISIX's t/admin/*.t tests expect, and the clearer
 * messages Portico gives where APISIX names nothing.
 */
import { describe, expect, it } from 'vitest';
import { compileSchema } from '../../src/schema/compile.js';
import { luaQuote, luaType } from '../../src/schema/validation-messages.js';
import { validateSchemaOnly } from '../../src/schema/index.js';

const check = (schema: Record<string, unknown>, value: unknown) => compileSchema(schema).check(value);

describe('jsonschema message shapes', () => {
  it.each([
    [{ type: 'object', required: ['a'] }, {}, 'property "a" is required'],
    [{ type: 'object', properties: { a: { type: 'string' } } }, { a: 1 }, 'property "a" validation failed: wrong type: expected string, got number'],
    [{ type: 'integer' }, 1.5, 'wrong type: expected integer, got number'],
    [{ type: 'string' }, [], 'wrong type: expected string, got table'],
    [{ type: 'string' }, {}, 'wrong type: expected string, got table'],
    [{ type: 'string' }, true, 'wrong type: expected string, got boolean'],
    [{ enum: ['a', 'b'] }, 'c', 'matches none of the enum values'],
    [{ type: 'object', properties: { a: {} }, additionalProperties: false }, { a: 1, zz: 2 }, 'additional properties forbidden, found zz'],
    [{ type: 'string', pattern: '^\\S+$' }, 'a b', 'failed to match pattern "^\\\\S+$" with "a b"'],
    [{ type: 'string', maxLength: 3 }, 'abcd', 'string too long, expected at most 3, got 4'],
    [{ type: 'string', minLength: 1 }, '', 'string too short, expected at least 1, got 0'],
    [{ type: 'string', maxLength: 2 }, 'äöü', 'string too long, expected at most 2, got 3'],
    [{ type: 'number', minimum: 0 }, -1, 'expected -1 to be at least 0'],
    [{ type: 'number', maximum: 254 }, 255, 'expected 255 to be at most 254'],
    [{ type: 'number', exclusiveMinimum: 0 }, 0, 'expected 0 to be greater than 0'],
    [{ type: 'array', minItems: 1 }, [], 'expect array to have at least 1 items'],
    [{ type: 'array', maxItems: 1 }, [1, 2], 'expect array to have at most 1 items'],
    [{ type: 'array', uniqueItems: true }, [200, 302, 200], 'expected unique items but items 1 and 3 are equal'],
    [{ type: 'array', items: { type: 'integer' } }, [1, 'x'], 'failed to validate item 2: wrong type: expected integer, got string'],
    [{ type: 'object', maxProperties: 1 }, { a: 1, b: 2 }, 'expect object to have at most 1 properties'],
    [{ type: 'string', format: 'ipv4' }, '1.2.3.400', 'expect valid ipv4 address but got: 1.2.3.400'],
    [{ anyOf: [{ type: 'string' }, { type: 'integer' }] }, true, 'object matches none of the required'],
    [
      { type: 'object', anyOf: [{ required: ['active'] }, { required: ['active', 'passive'] }] },
      { passive: {} },
      'object matches none of the required: ["active"] or ["active","passive"]',
    ],
    [{ oneOf: [{ type: 'string' }, { type: 'object' }] }, 1, 'value should match only one schema, but matches none'],
    [{ oneOf: [{ type: 'number' }, { type: 'integer' }] }, 1, 'value should match only one schema, but matches both schemas 1 and 2'],
    [{ allOf: [{ type: 'object' }, { required: ['x'] }] }, {}, 'allOf 2 failed: property "x" is required'],
    [{ not: { type: 'string' } }, 's', "value wasn't supposed to match schema"],
    [
      { type: 'object', properties: { a: {} }, dependencies: { a: { required: ['b'] } } },
      { a: 1 },
      'failed to validate dependent schema for "a": property "b" is required',
    ],
    [
      { type: 'object', patternProperties: { '.*': { type: 'string' } } },
      { env: 1 },
      'failed to validate env (matching ".*"): wrong type: expected string, got number',
    ],
    [
      { type: 'object', if: { properties: { t: { enum: ['s'] } } }, then: { required: ['x'] }, else: { required: ['y'] } },
      { t: 's' },
      'then clause did not match',
    ],
    [
      { type: 'object', if: { properties: { t: { enum: ['s'] } } }, then: { required: ['x'] }, else: { required: ['y'] } },
      { t: 'c' },
      'else clause did not match',
    ],
  ])('%j on %j', (schema, value, message) => {
    expect(check(schema, value)).toBe(message);
  });

  it('accepts valid values', () => {
    expect(check({ type: 'object', required: ['a'] }, { a: 1 })).toBeUndefined();
  });

  it('reports the object\'s own keywords before its composite ones, as jsonschema does', () => {
    const s = { type: 'object', properties: { a: {} }, additionalProperties: false, anyOf: [{ required: ['a'] }] };
    expect(check(s, { zz: 1 })).toBe('additional properties forbidden, found zz');
    expect(check(s, {})).toBe('object matches none of the required: ["a"]');
  });

  it('quotes like Lua %q', () => {
    expect(luaQuote('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(luaType(null)).toBe('userdata');
  });
});

describe('missing or conflicting keys are named, with the JSON pointer', () => {
  it('uri or uris missing', () => {
    expect(validateSchemaOnly('routes', { upstream_id: 1 })).toBe('"uri" or "uris" is required (at /)');
  });
  it('uri and uris together', () => {
    expect(validateSchemaOnly('routes', { uri: '/a', uris: ['/b'], upstream_id: 1 })).toBe(
      'only one of "uri" and "uris" is allowed (at /)',
    );
  });
  it('upstream and upstream_id together', () => {
    expect(validateSchemaOnly('routes', { uri: '/a', upstream_id: 1, upstream: { nodes: {} } })).toBe(
      'only one of "upstream" and "upstream_id" is allowed (at /)',
    );
    expect(validateSchemaOnly('services', { upstream_id: 1, upstream: { nodes: {} } })).toBe(
      'only one of "upstream" and "upstream_id" is allowed (at /)',
    );
  });
  it('host and hosts in the schema-only check', () => {
    expect(validateSchemaOnly('routes', { uri: '/a', upstream_id: 1, host: 'a.com', hosts: ['b.com'] })).toBe(
      'only one of "host" and "hosts" is allowed (at /)',
    );
  });
  it('nested: an upstream with neither nodes nor discovery', () => {
    expect(validateSchemaOnly('routes', { uri: '/a', upstream: { type: 'roundrobin' } })).toBe(
      'property "upstream" validation failed: "nodes" or ("service_name" and "discovery_type") is required (at /upstream)',
    );
  });
  it('half of a key combination names the missing half', () => {
    expect(validateSchemaOnly('upstreams', { service_name: 'svc' })).toBe(
      '"discovery_type" is required when "service_name" is set (at /)',
    );
  });
  it('both upstream forms', () => {
    expect(validateSchemaOnly('upstreams', { nodes: {}, service_name: 'a', discovery_type: 'dns' })).toBe(
      'only one of "nodes" and ("service_name" and "discovery_type") is allowed (at /)',
    );
  });
  it('script with plugins', () => {
    expect(validateSchemaOnly('routes', { uri: '/a', script: 'local x = 1 return {}', plugins: {} })).toBe(
      'only one of "script" and "plugins" is allowed (at /)',
    );
  });
  it('keeps APISIX wording inside dependencies', () => {
    expect(
      validateSchemaOnly('upstreams', { nodes: {}, tls: { client_cert_id: 1, client_cert: 'c'.repeat(128), client_key: 'k'.repeat(64) } }),
    ).toBe('property "tls" validation failed: failed to validate dependent schema for "client_cert_id": value wasn\'t supposed to match schema');
  });
});
