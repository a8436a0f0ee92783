/** core.schema.plugin_config: `name` is a plain string here, unlike other resources. */
import type { JsonSchema } from './types.js';
import { descDef, idSchema, labelsDef, pluginsSchema, timestampDef } from './defs.js';

export const pluginConfigSchema: JsonSchema = {
  type: 'object',
  properties: {
    id: idSchema,
    name: { type: 'string' },
    desc: descDef,
    labels: labelsDef,
    create_time: timestampDef,
    update_time: timestampDef,
    plugins: pluginsSchema,
  },
  required: ['id', 'plugins'],
  additionalProperties: false,
};
