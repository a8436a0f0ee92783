/** core.schema.route (apisix/schema_def.lua `_M.route`). */
import type { JsonSchema } from './types.js';
import {
  atMostOneOf,
  hostDef,
  idSchema,
  metadataProps,
  methodSchema,
  pluginsSchema,
  remoteAddrDef,
  timeoutDef,
} from './defs.js';
import { upstreamSchema } from './upstream.js';
import { MAX_MATCH_ENTRIES, MAX_URI_LENGTH } from './limits.js';

export const routeSchema: JsonSchema = {
  type: 'object',
  properties: {
    ...metadataProps(),
    uri: { type: 'string', minLength: 1, maxLength: 4096 },
    // maxItems and the items' maxLength: Portico's bounds (limits.ts), as on hosts and remote_addrs.
    uris: {
      type: 'array',
      items: { description: 'HTTP uri', type: 'string', maxLength: MAX_URI_LENGTH },
      minItems: 1,
      maxItems: MAX_MATCH_ENTRIES,
      uniqueItems: true,
    },
    priority: { type: 'integer', default: 0 },
    methods: { type: 'array', items: methodSchema, uniqueItems: true },
    host: hostDef,
    hosts: { type: 'array', items: hostDef, minItems: 1, maxItems: MAX_MATCH_ENTRIES, uniqueItems: true },
    remote_addr: remoteAddrDef,
    remote_addrs: { type: 'array', items: remoteAddrDef, minItems: 1, maxItems: MAX_MATCH_ENTRIES, uniqueItems: true },
    timeout: timeoutDef,
    vars: { type: 'array' },
    filter_func: { type: 'string', minLength: 10, pattern: '^function' },
    script: { type: 'string', minLength: 10, maxLength: 102400 },
    script_id: idSchema,
    plugins: pluginsSchema,
    plugin_config_id: idSchema,
    upstream: upstreamSchema,
    service_id: idSchema,
    upstream_id: idSchema,
    enable_websocket: { description: 'enable websocket for request', type: 'boolean' },
    status: { description: 'route status, 1 to enable, 0 to disable', type: 'integer', enum: [1, 0], default: 1 },
  },
  allOf: [
    { oneOf: [{ required: ['uri'] }, { required: ['uris'] }] },
    atMostOneOf('host', 'hosts'),
    atMostOneOf('remote_addr', 'remote_addrs'),
    // Portico addition: APISIX silently prefers upstream_id; saying so at write time is kinder.
    atMostOneOf('upstream', 'upstream_id'),
  ],
  anyOf: [
    { required: ['plugins', 'uri'] },
    { required: ['upstream', 'uri'] },
    { required: ['upstream_id', 'uri'] },
    { required: ['service_id', 'uri'] },
    { required: ['plugins', 'uris'] },
    { required: ['upstream', 'uris'] },
    { required: ['upstream_id', 'uris'] },
    { required: ['service_id', 'uris'] },
    { required: ['script', 'uri'] },
    { required: ['script', 'uris'] },
  ],
  not: {
    anyOf: [{ required: ['script', 'plugins'] }, { required: ['script', 'plugin_config_id'] }],
  },
  additionalProperties: false,
};
