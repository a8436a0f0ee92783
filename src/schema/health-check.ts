/** Upstream health checks (APISIX schema_def.lua health_checker), defaults included for the data plane. */
import type { JsonSchema } from './types.js';
import { hostDef, METHODS } from './defs.js';

function statuses(def: number[]): JsonSchema {
  return {
    type: 'array',
    minItems: 1,
    items: { type: 'integer', minimum: 200, maximum: 599 },
    uniqueItems: true,
    default: def,
  };
}

function counter(min: number, def: number): JsonSchema {
  return { type: 'integer', minimum: min, maximum: 254, default: def };
}

const checkType: JsonSchema = { type: 'string', enum: ['http', 'https', 'tcp'], default: 'http' };

export const healthCheckerActive: JsonSchema = {
  type: 'object',
  properties: {
    type: checkType,
    timeout: { type: 'number', default: 1 },
    concurrency: { type: 'integer', default: 10 },
    host: hostDef,
    port: { type: 'integer', minimum: 1, maximum: 65535 },
    http_method: { type: 'string', enum: METHODS, default: 'GET' },
    http_path: { type: 'string', default: '/' },
    http_req_body: { type: 'string', default: '' },
    https_verify_certificate: { type: 'boolean', default: true },
    healthy: {
      type: 'object',
      properties: {
        interval: { type: 'integer', minimum: 1, default: 1 },
        http_statuses: statuses([200, 302]),
        successes: counter(1, 2),
      },
    },
    unhealthy: {
      type: 'object',
      properties: {
        interval: { type: 'integer', minimum: 1, default: 1 },
        http_statuses: statuses([429, 404, 500, 501, 502, 503, 504, 505]),
        http_failures: counter(1, 5),
        tcp_failures: counter(1, 2),
        timeouts: counter(1, 3),
      },
    },
    req_headers: { type: 'array', minItems: 1, items: { type: 'string' } },
  },
};

export const healthCheckerPassive: JsonSchema = {
  type: 'object',
  properties: {
    type: checkType,
    healthy: {
      type: 'object',
      properties: {
        http_statuses: statuses([200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308]),
        successes: counter(0, 5),
      },
    },
    unhealthy: {
      type: 'object',
      properties: {
        http_statuses: statuses([429, 500, 503]),
        tcp_failures: counter(0, 2),
        timeouts: counter(0, 7),
        http_failures: counter(0, 5),
      },
    },
  },
};

export const healthChecker: JsonSchema = {
  type: 'object',
  properties: { active: healthCheckerActive, passive: healthCheckerPassive },
  // Passive checks alone never mark a node healthy again, so APISIX demands active ones.
  anyOf: [{ required: ['active'] }, { required: ['active', 'passive'] }],
};
