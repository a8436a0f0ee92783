/**
 * Entry point of validation for the Admin API.
 * STUB: the real implementation (ajv-compiled schemas, APISIX-style messages,
 * semantic checks) replaces the bodies below; the signatures are the contract.
 */
import type { ResourceName } from '../core/model.js';
import type { PluginRegistry } from '../core/plugin-registry.js';
import type { JsonSchema } from '../core/plugin.js';

export interface CheckEnv {
  registry: PluginRegistry;
  /** Does the referenced object exist in the store? (`upstreams`, '1') */
  exists(resource: ResourceName, id: string): Promise<boolean>;
  /** Stored values of a resource, for cross-object rules (duplicate consumer keys, global rule conflicts). */
  all(resource: ResourceName): Promise<Array<{ id: string; value: Record<string, unknown> }>>;
}

/**
 * The full admin-write check, in APISIX's order: conflicting keys, schema,
 * upstream extras, references, plugin schemas, vars. Resolves to the
 * `error_msg` to send with a 400, or undefined when the value is valid.
 * `id` is the object's id (username for consumers, plugin name for plugin_metadata).
 */
export async function checkResource(
  _resource: ResourceName,
  _id: string,
  _value: Record<string, unknown>,
  _env: CheckEnv,
): Promise<string | undefined> {
  return undefined;
}

/** Schema-only check for POST /apisix/admin/schema/validate/{resource}: raw message, no prefix. */
export function validateSchemaOnly(_resource: ResourceName, _value: unknown): string | undefined {
  return undefined;
}

/** The JSON schema served by GET /apisix/admin/schema/{name} (`route`, `upstream`, ...). */
export function getCoreSchema(_name: string): JsonSchema | undefined {
  return undefined;
}
