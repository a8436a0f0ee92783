/** core.schema.ssl: server certificates need an SNI, client certificates only cert + key. */
import type { JsonSchema } from './types.js';
import { descDef, HOST_DEF_PATTERN, idSchema, labelsDef, timestampDef } from './defs.js';
import { certificateSchema, privateKeySchema } from './upstream.js';

export const sslSchema: JsonSchema = {
  type: 'object',
  properties: {
    id: idSchema,
    desc: descDef,
    labels: labelsDef,
    create_time: timestampDef,
    update_time: timestampDef,
    type: {
      description: 'ssl certificate type, server to server certificate, client to client certificate for upstream',
      type: 'string',
      default: 'server',
      enum: ['server', 'client'],
    },
    cert: certificateSchema,
    key: privateKeySchema,
    sni: { type: 'string', pattern: HOST_DEF_PATTERN },
    snis: { type: 'array', items: { type: 'string', pattern: HOST_DEF_PATTERN }, minItems: 1 },
    certs: { type: 'array', items: certificateSchema },
    keys: { type: 'array', items: privateKeySchema },
    client: {
      type: 'object',
      properties: {
        ca: certificateSchema,
        depth: { type: 'integer', minimum: 0, default: 1 },
        skip_mtls_uri_regex: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string' } },
      },
      required: ['ca'],
    },
    status: { description: 'ssl status, 1 to enable, 0 to disable', type: 'integer', enum: [1, 0], default: 1 },
    ssl_protocols: {
      description: 'set ssl protocols',
      type: 'array',
      maxItems: 3,
      uniqueItems: true,
      items: { enum: ['TLSv1.1', 'TLSv1.2', 'TLSv1.3'] },
    },
  },
  if: { properties: { type: { enum: ['server'] } } },
  then: { oneOf: [{ required: ['sni', 'key', 'cert'] }, { required: ['snis', 'key', 'cert'] }] },
  else: { required: ['key', 'cert'] },
  additionalProperties: false,
};
