/**
 * Everything a plugin may use from the core, in one entry: the contract, the
 * request context, templates, and the few matchers and helpers APISIX gives its
 * plugins through `core.*` (the query-string reader is `core.request.get_uri_args`). Plugins import from here and nowhere else in core.
 */
export * from './contract.js';
export * from './ctx.js';
export * from './ctx-names.js';
export * from './template.js';
export type { ConsumerConf, RouteConf, ServiceConf, UpstreamConf } from '../model.js';
export type { ProxyCacheConf, ProxyCacheZone } from '../config/types.js';
export { compileIpMatcher, isValidIpOrCidr, type IpMatcher } from '../match/ip-match.js';
export { compileExpr, type CompiledExpr, type ExprVars } from '../match/expr.js';
export { isSecretRef } from '../secrets/refs.js';
export { compileUserSchema } from '../../schema/compile.js';
export { decodeQueryComponent, parseQuery, queryArg, withoutArg } from '../http/query.js';
export { measureRequests } from '../http/measures.js';
export { headerPairsObject } from '../http/headers.js';
// What this process's health checkers see (prometheus's apisix_upstream_status; the control API's /v1/healthcheck).
export { healthReports, type CheckerReport, type NodeHealth } from '../upstream/index.js';
export type { GatheredState, NodeShared, OwnedState } from '../process/shared-state.js';
export { PUBSUB_ACCESS, type PubSubAccess } from './pubsub-access.js';
