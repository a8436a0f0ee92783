/**
 * Shared definitions of APISIX's core schemas (apisix/schema_def.lua), kept
 * byte-for-byte where a message quotes them (patterns appear in errors).
 * The objects are shared between resource schemas on purpose: ajv compiles a
 * shared sub-schema once per use, and GET /apisix/admin/schema/{name} serves
 * the same shapes APISIX does.
 */
import type { JsonSchema } from './types.js';
import { MAX_HOST_LENGTH } from './limits.js';

export const idSchema: JsonSchema = {
  anyOf: [
    { type: 'string', minLength: 1, maxLength: 64, pattern: '^[a-zA-Z0-9-_.]+$' },
    { type: 'integer', minimum: 1 },
  ],
};

export const HOST_DEF_PATTERN = '^\\*$|^\\*?[0-9a-zA-Z-._\\[\\]:]+$';
// maxLength: Portico's bound (limits.ts).
export const hostDef: JsonSchema = { type: 'string', pattern: HOST_DEF_PATTERN, maxLength: MAX_HOST_LENGTH };

const IPV4_SEG = '([0-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5])';
const IPV4_DEF = [IPV4_SEG, IPV4_SEG, IPV4_SEG, IPV4_SEG].join('\\.');
// As loose as APISIX's: `:/8` passes, the exact regex would be unreadable.
const IPV6_DEF = '([a-fA-F0-9]{0,4}:){1,8}(:[a-fA-F0-9]{0,4}){0,8}([a-fA-F0-9]{0,4})?';

export const ipDef: JsonSchema[] = [
  { title: 'IPv4', type: 'string', format: 'ipv4' },
  { title: 'IPv4/CIDR', type: 'string', pattern: `^${IPV4_DEF}/([12]?[0-9]|3[0-2])$` },
  { title: 'IPv6', type: 'string', format: 'ipv6' },
  { title: 'IPv6/CIDR', type: 'string', pattern: `^${IPV6_DEF}/[0-9]{1,3}$` },
];

export const remoteAddrDef: JsonSchema = { description: 'client IP', type: 'string', anyOf: ipDef };

export const timestampDef: JsonSchema = { type: 'integer' };

export const labelValueDef: JsonSchema = {
  description: 'value of label',
  type: 'string',
  pattern: '^\\S+$',
  maxLength: 256,
  minLength: 1,
};

export const labelsDef: JsonSchema = {
  description: 'key/value pairs to specify attributes',
  type: 'object',
  patternProperties: { '.*': labelValueDef },
};

export const ruleNameDef: JsonSchema = { type: 'string', maxLength: 256, minLength: 1 };
export const descDef: JsonSchema = { type: 'string', maxLength: 256 };

export const timeoutDef: JsonSchema = {
  type: 'object',
  properties: {
    connect: { type: 'number', exclusiveMinimum: 0 },
    send: { type: 'number', exclusiveMinimum: 0 },
    read: { type: 'number', exclusiveMinimum: 0 },
  },
  required: ['connect', 'send', 'read'],
};

export const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'CONNECT', 'TRACE', 'PURGE'];
export const methodSchema: JsonSchema = { description: 'HTTP method', type: 'string', enum: METHODS };

export const pluginsSchema: JsonSchema = { type: 'object' };

/** The metadata every stored object may carry. */
export function metadataProps(): Record<string, JsonSchema> {
  return {
    id: idSchema,
    name: ruleNameDef,
    desc: descDef,
    labels: labelsDef,
    create_time: timestampDef,
    update_time: timestampDef,
  };
}

/**
 * "At most one of a and b": APISIX's shape for host/hosts and
 * remote_addr/remote_addrs. The message translator recognises it and names the
 * two keys instead of "matches both schemas".
 */
export function atMostOneOf(a: string, b: string): JsonSchema {
  return {
    oneOf: [
      { not: { anyOf: [{ required: [a] }, { required: [b] }] } },
      { required: [a] },
      { required: [b] },
    ],
  };
}
