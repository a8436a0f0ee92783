/** A fake CheckEnv over in-memory objects, and a registry of small test plugins. */
import { readFileSync } from 'node:fs';
import type { ResourceName } from '../../src/core/model.js';
import type { PluginDefinition } from '../../src/core/plugin/contract.js';
import { PluginRegistry } from '../../src/core/plugin/registry.js';
import type { CheckEnv } from '../../src/admin/check.js';
import kafkaProxy from '../../src/plugins/kafka-proxy.js';

type Stored = Partial<Record<ResourceName, Array<{ id: string; value: Record<string, unknown> }>>>;

export function fakeEnv(registry: PluginRegistry, stored: Stored = {}, keyring?: string[]): CheckEnv {
  return {
    registry,
    keyring,
    async exists(resource, id) {
      return (stored[resource] ?? []).some((o) => o.id === id);
    },
    async all(resource) {
      return stored[resource] ?? [];
    },
  };
}

/** Shaped like APISIX's key-auth: the consumer holds the key, stored encrypted. */
export const testKeyAuth: PluginDefinition = {
  name: 'key-auth',
  priority: 2500,
  type: 'auth',
  schema: { type: 'object', properties: { header: { type: 'string', default: 'apikey' } } },
  consumer_schema: {
    type: 'object',
    properties: { key: { type: 'string' } },
    required: ['key'],
  },
  encrypt_fields: ['key'],
};

/** Has its own check() and a metadata schema; its check sees defaults filled. */
export const testChecked: PluginDefinition = {
  name: 'checked',
  priority: 100,
  schema: {
    type: 'object',
    properties: { min: { type: 'integer', default: 1 }, max: { type: 'integer' } },
    additionalProperties: false,
  },
  metadata_schema: {
    type: 'object',
    properties: { log_format: { type: 'object' } },
    required: ['log_format'],
  },
  check(conf) {
    const c = conf as { min: number; max?: number };
    if (c.max !== undefined && c.max < c.min) return `max ${c.max} is below min ${c.min}`;
    return undefined;
  },
};

/** Walks arrays and maps for encrypt_fields. */
export const testNested: PluginDefinition = {
  name: 'nested',
  priority: 10,
  schema: { type: 'object' },
  encrypt_fields: ['auth.secret', 'list.token', 'tags', 'headers'],
};

export function testRegistry(): PluginRegistry {
  return PluginRegistry.fromDefinitions(
    [kafkaProxy as unknown as PluginDefinition, testKeyAuth, testChecked, testNested],
    ['kafka-proxy', 'key-auth', 'checked', 'nested'],
  );
}

const fixture = (name: string): string => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');
export const CERT_A = fixture('a.crt');
export const KEY_A = fixture('a.key');
export const CERT_B = fixture('b.crt');
export const KEY_B = fixture('b.key');
