/**
 * The `_meta` property APISIX injects into every plugin schema
 * (schema_def.lua plugin_injected_schema), and its `$comment` marker.
 */
import type { JsonSchema } from './types.js';

export const INJECTED_MARK = 'this is a mark for our injected plugin schema';

export const pluginMetaSchema: JsonSchema = {
  type: 'object',
  properties: {
    disable: { type: 'boolean' },
    error_response: { oneOf: [{ type: 'string' }, { type: 'object' }] },
    priority: { description: 'priority of plugins by customized order', type: 'integer' },
    filter: { description: 'filter determines whether the plugin needs to be executed at runtime', type: 'array' },
    pre_function: {
      description:
        'function to be executed in each phase before execution of plugins. The pre_function will have access ' +
        'to two arguments: `conf` and `ctx`.',
      type: 'string',
    },
  },
  additionalProperties: false,
};

/**
 * A copy of `schema` with `_meta` and the marker added. Returns a string
 * error when the plugin declares `_meta` itself (APISIX refuses such a plugin).
 */
export function injectMeta(schema: JsonSchema): JsonSchema | string {
  if (schema['$comment'] === INJECTED_MARK) return schema;
  const properties = { ...((schema.properties as Record<string, unknown> | undefined) ?? {}) };
  if ('_meta' in properties) return "found forbidden '_meta' field in the schema";
  properties._meta = pluginMetaSchema;
  return { ...schema, properties, $comment: INJECTED_MARK };
}
