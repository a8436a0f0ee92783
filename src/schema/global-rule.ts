/** core.schema.global_rule: `id` is injected from the URL by the Admin API before this runs. */
import type { JsonSchema } from './types.js';
import { idSchema, pluginsSchema, timestampDef } from './defs.js';

export const globalRuleSchema: JsonSchema = {
  type: 'object',
  properties: {
    id: idSchema,
    create_time: timestampDef,
    update_time: timestampDef,
    plugins: pluginsSchema,
  },
  required: ['id', 'plugins'],
  additionalProperties: false,
};
