/** PluginRegistry: discovery of src/plugins/, `_meta` injection, APISIX's plugin-check messages (apisix/plugin.lua check_schema). */
import { readdirSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PluginRegistry } from '../../src/core/plugin/registry.js';
import type { PluginDefinition } from '../../src/core/plugin/contract.js';
import { testChecked, testRegistry } from './helpers.js';
import { compileSchema } from '../../src/schema/compile.js';
import { warmCoreSchemas } from '../../src/schema/index.js';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('load()', () => {
  it('discovers plugin modules and keeps only the enabled ones, highest priority first', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const r = await PluginRegistry.load(['kafka-proxy', 'no-such-plugin']);
    expect(r.list().map((p) => p.name)).toEqual(['kafka-proxy']);
    expect(r.get('kafka-proxy')).toMatchObject({ priority: 508, version: '0.1', encrypt_fields: ['sasl.password'] });
    expect(warn.mock.calls.flat().join('\n')).toContain('no-such-plugin');
  });

  it("names every enabled plugin it has no module for in one warning (APISIX's list names ~90)", async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    await PluginRegistry.load(['key-auth', 'no-such-a', 'no-such-b', 'no-such-c']);
    const lines = warn.mock.calls.map((c) => c.join(' ')).filter((l) => l.includes('no-such-'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/not provided by Portico, skipped: no-such-a, no-such-b, no-such-c$/);
  });

  it('discovers the compiled .js modules when running from dist (skipping .d.ts and .map)', async () => {
    // t/global-setup.ts builds dist/ before the run.
    const spec = new URL('../../dist/src/core/plugin/registry.js', import.meta.url).href;
    const mod = (await import(spec)) as { PluginRegistry: typeof PluginRegistry };
    const r = await mod.PluginRegistry.load(['kafka-proxy']);
    expect(r.list().map((p) => p.name)).toEqual(['kafka-proxy']);
    expect(r.checkConf('kafka-proxy', { sasl: {} }, 'route')).toBe(
      'failed to check the configuration of plugin kafka-proxy err: property "sasl" validation failed: property "username" is required',
    );
  });

  it('every top-level file of src/plugins/ is a plugin, and only those are loaded (helpers live in folders)', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const dir = new URL('../../src/plugins/', import.meta.url);
    const entries = readdirSync(dir, { withFileTypes: true });
    const files = entries.filter((e) => e.isFile() && e.name.endsWith('.ts')).map((e) => e.name.replace(/\.ts$/, ''));
    expect(entries.some((e) => e.isDirectory() && e.name === 'lib')).toBe(true);
    const r = await PluginRegistry.load([...files, 'auth-common', 'counters', 'metrics', 'export-server']);
    expect(r.list().map((p) => p.name).sort()).toEqual(files.sort());
    expect(warn.mock.calls.flat().join('\n')).not.toContain('does not default-export a plugin');
  });

  it("every built-in plugin's schemas and every core schema compile (load() defers compiling to first use)", async () => {
    const dir = new URL('../../src/plugins/', import.meta.url);
    const files = readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isFile() && e.name.endsWith('.ts'))
      .map((e) => e.name.replace(/\.ts$/, ''));
    const r = await PluginRegistry.load(files);
    expect(r.list()).toHaveLength(files.length);
    for (const name of files) expect(() => r.warmPlugin(name), name).not.toThrow();
    expect(() => warmCoreSchemas()).not.toThrow();
  });

  it('a lazily compiled schema judges exactly as an eager one, before and after warm()', () => {
    const schema = { type: 'object', properties: { n: { type: 'integer', minimum: 1 } }, required: ['n'] };
    const eager = compileSchema(schema);
    const lazy = compileSchema(schema, 'everywhere', { lazy: true });
    for (const v of [{}, { n: 0 }, { n: 'x' }, { n: 2 }]) expect(lazy.check(v)).toBe(eager.check(v));
    const broken = compileSchema({ type: 'object', properties: { n: { type: 'no-such-type' } } }, 'everywhere', { lazy: true });
    expect(() => broken.warm()).toThrow();
  });

  it('loads nothing for an empty list', async () => {
    const r = await PluginRegistry.load([]);
    expect(r.list()).toEqual([]);
    expect(r.checkConf('kafka-proxy', {}, 'route')).toBe('unknown plugin [kafka-proxy]');
  });
});

describe('fromDefinitions()', () => {
  it('sorts by priority and skips a plugin that declares _meta itself', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const bad: PluginDefinition = { name: 'bad', priority: 1, schema: { type: 'object', properties: { _meta: {} } } };
    const low: PluginDefinition = { name: 'low', priority: -5, schema: { type: 'object' } };
    const r = PluginRegistry.fromDefinitions([low, testChecked, bad], ['low', 'checked', 'bad']);
    expect(r.list().map((p) => p.name)).toEqual(['checked', 'low']);
    expect(warn.mock.calls.flat().join('\n')).toContain("found forbidden '_meta' field in the schema");
  });
});

describe('checkConf()', () => {
  const r = testRegistry();

  it.each([
    ['nope', {}, 'unknown plugin [nope]'],
    ['kafka-proxy', 'str', 'invalid plugin conf "str" for plugin [kafka-proxy]'],
    ['kafka-proxy', 1, 'invalid plugin conf 1 for plugin [kafka-proxy]'],
    ['kafka-proxy', null, 'invalid plugin conf null for plugin [kafka-proxy]'],
    ['kafka-proxy', [], 'invalid plugin conf [] for plugin [kafka-proxy]'],
    ['checked', { extra: 1 }, 'failed to check the configuration of plugin checked err: additional properties forbidden, found extra'],
    ['checked', { min: 3, max: 2 }, 'failed to check the configuration of plugin checked err: max 2 is below min 3'],
    // The plugin's check() sees defaults: min defaults to 1.
    ['checked', { max: 0 }, 'failed to check the configuration of plugin checked err: max 0 is below min 1'],
    ['checked', { _meta: { priority: 'high' } }, 'failed to check the configuration of plugin checked err: property "_meta" validation failed: property "priority" validation failed: wrong type: expected integer, got string'],
    ['checked', { _meta: { unknown: true } }, 'failed to check the configuration of plugin checked err: property "_meta" validation failed: additional properties forbidden, found unknown'],
    ['checked', { _meta: { error_response: 1 } }, 'failed to check the configuration of plugin checked err: property "_meta" validation failed: property "error_response" validation failed: value should match only one schema, but matches none'],
    ['checked', { _meta: { filter: [['arg_a', '=', '1']] } }, "failed to validate the 'vars' expression: invalid operator '='"],
    ['checked', { _meta: { disable: true, filter: [['arg_a', '=', '1']] } }, "failed to validate the 'vars' expression: invalid operator '='"],
  ])('%s %j → %s', (name, conf, message) => {
    expect(r.checkConf(name, conf, 'route')).toBe(message);
  });

  it('accepts valid confs and every _meta field', () => {
    expect(r.checkConf('checked', {}, 'route')).toBeUndefined();
    expect(
      r.checkConf(
        'checked',
        { min: 1, _meta: { disable: false, priority: 3, error_response: { msg: 'no' }, filter: [['arg_a', '==', '1']], pre_function: 'x' } },
        'route',
      ),
    ).toBeUndefined();
  });

  it('_meta.disable accepts an invalid conf', () => {
    expect(r.checkConf('checked', { min: 'x', _meta: { disable: true } }, 'route')).toBeUndefined();
    expect(r.checkConf('checked', { min: 9, max: 1, _meta: { disable: true } }, 'route')).toBeUndefined();
  });

  it('leaves the conf as sent unless defaults are asked for', () => {
    const conf: Record<string, unknown> = { max: 5 };
    expect(r.checkConf('checked', conf, 'route')).toBeUndefined();
    expect(conf).toEqual({ max: 5 });
    expect(r.checkConf('checked', conf, 'route', true)).toBeUndefined();
    expect(conf).toEqual({ max: 5, min: 1 });
    const kp: Record<string, unknown> = { sasl: { username: 'u', password: 'p' } };
    expect(r.checkConf('kafka-proxy', kp, 'route', true)).toBeUndefined();
    expect(kp).toEqual({ sasl: { username: 'u', password: 'p', mechanism: 'PLAIN' } });
  });

  it('uses consumer_schema for consumers and metadata_schema for metadata', () => {
    expect(r.checkConf('key-auth', {}, 'consumer')).toBe('failed to check the configuration of plugin key-auth err: property "key" is required');
    expect(r.checkConf('key-auth', {}, 'route')).toBeUndefined();
    expect(r.checkConf('checked', {}, 'metadata')).toBe('failed to check the configuration of plugin checked err: property "log_format" is required');
  });
});

describe('schemaFor()', () => {
  const r = testRegistry();
  it('serves the schema with the injected _meta and marker', () => {
    const s = r.schemaFor('kafka-proxy', 'route') as { properties: Record<string, unknown>; $comment: string };
    expect(s.$comment).toBe('this is a mark for our injected plugin schema');
    expect(s.properties._meta).toMatchObject({
      type: 'object',
      additionalProperties: false,
      properties: { disable: { type: 'boolean' }, priority: { type: 'integer' }, filter: { type: 'array' }, pre_function: { type: 'string' } },
    });
    expect(s.properties.sasl).toBeDefined();
    // The plugin's own definition is not mutated.
    expect((r.get('kafka-proxy')?.schema as { properties: Record<string, unknown> }).properties._meta).toBeUndefined();
  });
  it('consumer and metadata schemas, or undefined', () => {
    expect(r.schemaFor('key-auth', 'consumer')).toMatchObject({ required: ['key'] });
    expect(r.schemaFor('kafka-proxy', 'consumer')).toBeUndefined();
    expect(r.schemaFor('checked', 'metadata')).toMatchObject({ required: ['log_format'] });
    expect(r.schemaFor('nope', 'route')).toBeUndefined();
  });
});
