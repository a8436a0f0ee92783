/** core.schema.service: nothing is required, `{}` is a valid service. */
import type { JsonSchema } from './types.js';
import { atMostOneOf, hostDef, idSchema, metadataProps, pluginsSchema } from './defs.js';
import { upstreamSchema } from './upstream.js';
import { MAX_MATCH_ENTRIES } from './limits.js';

export const serviceSchema: JsonSchema = {
  type: 'object',
  properties: {
    ...metadataProps(),
    plugins: pluginsSchema,
    upstream: upstreamSchema,
    upstream_id: idSchema,
    script: { type: 'string', minLength: 10, maxLength: 102400 },
    enable_websocket: { description: 'enable websocket for request', type: 'boolean' },
    // maxItems: Portico's bound (limits.ts).
    hosts: { type: 'array', items: hostDef, minItems: 1, maxItems: MAX_MATCH_ENTRIES, uniqueItems: true },
  },
  // Portico addition, as for routes.
  allOf: [atMostOneOf('upstream', 'upstream_id')],
  additionalProperties: false,
};
