/**
 * The upstream runtime: node lists, balancers, health checks and keep-alive
 * pools. Build one per upstream config version with createUpstreamRuntime();
 * build the new one before closing the old one, so pools and health status
 * carry over to nodes that did not change.
 */
import type { UpstreamConf } from '../model.js';
import { createRuntime, type RuntimeOptions } from './runtime.js';
import type { UpstreamRuntime } from './types.js';

export type { UpstreamOutcome, UpstreamRuntime, UpstreamTarget } from './types.js';
export type { RuntimeOptions } from './runtime.js';
export type { HealthListener } from './health.js';
export { defaultPort, parseAddr } from './nodes.js';
export { livePoolCount } from './pool.js';
export { healthReports, type CheckerReport, type NodeHealth } from './health.js';

/**
 * `key` identifies the upstream across versions (e.g. the store key
 * `/apisix/upstreams/1`, or `/apisix/routes/7` for an inline upstream); health
 * status is inherited by key.
 */
export function createUpstreamRuntime(conf: UpstreamConf, key: string, options?: RuntimeOptions): UpstreamRuntime {
  return createRuntime(conf, key, options);
}
