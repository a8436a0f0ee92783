/** core.schema.consumer_group: plugins shared by the consumers that name it in `group_id`. */
import type { JsonSchema } from './types.js';
import { metadataProps, pluginsSchema } from './defs.js';

export const consumerGroupSchema: JsonSchema = {
  type: 'object',
  properties: { ...metadataProps(), plugins: pluginsSchema },
  required: ['id', 'plugins'],
  additionalProperties: false,
};
