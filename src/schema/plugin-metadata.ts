/**
 * plugin_metadata has no core schema in APISIX: the body is checked against the
 * plugin's own metadata_schema. This outer shape only says it is an object
 * whose `id` is the plugin name (injected from the URL).
 */
import type { JsonSchema } from './types.js';

export const pluginMetadataSchema: JsonSchema = {
  type: 'object',
  properties: {
    id: { type: 'string', minLength: 1, maxLength: 256, pattern: '^[a-zA-Z0-9-_]+$' },
  },
};
