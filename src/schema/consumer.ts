/** core.schema.consumer: keyed by `username`, which is required. */
import type { JsonSchema } from './types.js';
import { descDef, idSchema, labelsDef, pluginsSchema, timestampDef } from './defs.js';

export const consumerSchema: JsonSchema = {
  type: 'object',
  properties: {
    id: idSchema,
    username: { type: 'string', minLength: 1, maxLength: 256, pattern: '^[a-zA-Z0-9_\\-]+$' },
    desc: descDef,
    labels: labelsDef,
    create_time: timestampDef,
    update_time: timestampDef,
    group_id: idSchema,
    plugins: pluginsSchema,
  },
  required: ['username'],
  additionalProperties: false,
};
