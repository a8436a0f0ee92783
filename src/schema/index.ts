/**
 * The core resources' JSON schemas, compiled once with APISIX-style messages.
 * A leaf: nothing here reads the store or the plugin registry; the checks
 * that do (references, plugin confs, duplicate keys) are the Admin API's
 * (src/admin/check.ts).
 */
import type { JsonSchema, SchemaResource } from './types.js';
import { compileSchema, type CompiledSchema, type SecretRefScope } from './compile.js';
import { routeSchema } from './route.js';
import { serviceSchema } from './service.js';
import { upstreamSchema } from './upstream.js';
import { consumerSchema } from './consumer.js';
import { globalRuleSchema } from './global-rule.js';
import { pluginConfigSchema } from './plugin-config.js';
import { pluginMetadataSchema } from './plugin-metadata.js';
import { sslSchema } from './ssl.js';
import { credentialSchema } from './credential.js';
import { consumerGroupSchema } from './consumer-group.js';
import { protoSchema } from './proto.js';
import { boundsSchemas } from './limits.js';

/** Core schema names as GET /apisix/admin/schema/{name} knows them. */
const CORE_SCHEMAS: Record<string, JsonSchema> = {
  route: routeSchema,
  service: serviceSchema,
  upstream: upstreamSchema,
  consumer: consumerSchema,
  global_rule: globalRuleSchema,
  plugin_config: pluginConfigSchema,
  plugin_metadata: pluginMetadataSchema,
  ssl: sslSchema,
  credential: credentialSchema,
  consumer_group: consumerGroupSchema,
  proto: protoSchema,
};

const BY_RESOURCE: Record<SchemaResource, string> = {
  routes: 'route',
  services: 'service',
  upstreams: 'upstream',
  consumers: 'consumer',
  global_rules: 'global_rule',
  plugin_configs: 'plugin_config',
  plugin_metadata: 'plugin_metadata',
  ssls: 'ssl',
  consumer_groups: 'consumer_group',
  protos: 'proto',
};

/**
 * The core fields APISIX resolves secret references in (docs/en/latest/terminology/secret.md,
 * apisix/ssl.lua): an ssl's certificates and keys, and its client CA, which
 * check_ssl_conf leaves unparsed when it is one. Nowhere else in a core object
 * is `$env://...` anything but the string it reads as. Plugin confs are the
 * plugin registry's, where any string field may be a reference.
 */
const SECRET_REF_FIELDS: Record<string, SecretRefScope> = {
  ssl: [['cert'], ['key'], ['certs', 'items'], ['keys', 'items'], ['client', 'ca']],
};

// Compiled on first use (a data-plane worker checks few of them); the Admin API's process warms them all
// once it serves (warmCoreSchemas), so the first admin write does not pay for it.
const compiled = new Map<string, CompiledSchema>(
  Object.entries(CORE_SCHEMAS).map(([name, schema]) => [name, compileSchema(schema, SECRET_REF_FIELDS[name] ?? [], { lazy: true })]),
);

const bounds = new Map<string, CompiledSchema>(
  Object.entries(boundsSchemas).map(([name, schema]) => [BY_RESOURCE[`${name}s` as SchemaResource], compileSchema(schema, [], { lazy: true })]),
);

/** Compiles every core schema now (throws if one is broken). */
export function warmCoreSchemas(): void {
  for (const c of compiled.values()) c.warm();
  for (const c of bounds.values()) c.warm();
}

/**
 * Portico's bounds alone (limits.ts), for objects that reach the data plane
 * without the Admin API (etcd, standalone): the reason an object of this
 * table (`routes`, `services`, `upstreams`) is beyond one, or undefined.
 */
export function boundsViolation(table: string, value: unknown): string | undefined {
  return bounds.get(BY_RESOURCE[table as SchemaResource])?.check(value);
}

export function schemaOf(resource: SchemaResource): CompiledSchema {
  return compiled.get(BY_RESOURCE[resource]) as CompiledSchema;
}

/** Schema-only check for POST /apisix/admin/schema/validate/{resource}: raw message, no prefix. */
export function validateSchemaOnly(resource: SchemaResource, value: unknown): string | undefined {
  return schemaOf(resource).check(value);
}

/**
 * The data plane's view of a stored object: validates it and fills schema
 * defaults (priority 0, status 1, type roundrobin, health-check defaults...)
 * into `value` in place. Plugin confs are left to PluginRegistry.checkConf.
 */
export function applyCoreDefaults(resource: SchemaResource, value: Record<string, unknown>): string | undefined {
  return schemaOf(resource).checkWithDefaults(value);
}

/** A compiled core schema by its name (`credential`, `route`, ...). */
export function compiledSchema(name: string): CompiledSchema | undefined {
  return compiled.get(name);
}

/** The JSON schema served by GET /apisix/admin/schema/{name} (`route`, `upstream`, ...). */
export function getCoreSchema(name: string): JsonSchema | undefined {
  return Object.hasOwn(CORE_SCHEMAS, name) ? CORE_SCHEMAS[name] : undefined;
}
