/**
 * core.schema.credential (APISIX 3.7+): one auth plugin's conf held under a
 * consumer, `/consumers/<username>/credentials/<id>`. Its id is the URL's, or
 * the `<username>/credentials/<id>` form APISIX also accepts.
 */
import type { JsonSchema } from './types.js';
import { descDef, idSchema, labelsDef, ruleNameDef, timestampDef } from './defs.js';

export const credentialSchema: JsonSchema = {
  type: 'object',
  properties: {
    id: {
      oneOf: [idSchema, { type: 'string', minLength: 15, maxLength: 128, pattern: '^[a-zA-Z0-9-_]+/credentials/[a-zA-Z0-9-_.]+$' }],
    },
    name: ruleNameDef,
    desc: descDef,
    labels: labelsDef,
    create_time: timestampDef,
    update_time: timestampDef,
    plugins: { type: 'object', maxProperties: 1 },
  },
  additionalProperties: false,
};
