/**
 * Portico's bounds on what one stored object may hold. APISIX has none of
 * these: an object that fits under the Admin API's body limit (1.5 MiB) could
 * still hold some 250,000 short `uris`, and every entry costs a data-plane
 * worker about 1 KB once compiled (a host about 2 KB), so one object could
 * cost hundreds of MB in every worker. Each bound sits far above what a real
 * configuration holds; the figures and the reasons are in
 * docs/reliability.md ("What a stored object costs").
 *
 * The resource schemas (route.ts, service.ts, upstream.ts, defs.ts) carry
 * these as maxItems / maxLength / maxProperties, so the Admin API refuses an
 * object beyond them with the same messages as any other schema error.
 * Objects that reach the data plane without the Admin API (written straight
 * to etcd, or in a standalone apisix.yaml) are checked against
 * `boundsSchemas` alone, which holds nothing but these bounds: the data plane
 * skips such an object with one warning, as it skips any it cannot compile.
 */
import type { JsonSchema } from './types.js';

/** Entries of a route's `uris`, a route's or service's `hosts`, a route's `remote_addrs`. */
export const MAX_MATCH_ENTRIES = 4096;
/** An upstream's `nodes`, in either form (array of nodes, or `{"host:port": weight}`). */
export const MAX_UPSTREAM_NODES = 4096;
/** ip-restriction's `whitelist` or `blacklist`: about 0.4 KB an entry once compiled. */
export const MAX_IP_LIST_ENTRIES = 16384;
/** One uri in `uris`: the limit APISIX sets on `uri`. */
export const MAX_URI_LENGTH = 4096;
/** A host name (`host`, `hosts`, a node's host, `upstream_host`): DNS names stop at 253 characters. */
export const MAX_HOST_LENGTH = 256;

// No `type` here: these schemas bound what they find and leave the shapes to the resource schemas.
const host: JsonSchema = { maxLength: MAX_HOST_LENGTH };
const matchList = (items: JsonSchema): JsonSchema => ({ maxItems: MAX_MATCH_ENTRIES, items });
const nodes: JsonSchema = {
  maxItems: MAX_UPSTREAM_NODES,
  maxProperties: MAX_UPSTREAM_NODES,
  items: { properties: { host } },
};
const upstream: JsonSchema = { properties: { nodes, upstream_host: host } };

/** Only the bounds, by schema name (`route`, `service`, `upstream`). */
export const boundsSchemas: Record<'route' | 'service' | 'upstream', JsonSchema> = {
  route: {
    properties: {
      uris: matchList({ maxLength: MAX_URI_LENGTH }),
      host,
      hosts: matchList(host),
      remote_addrs: matchList({}),
      upstream,
    },
  },
  service: { properties: { hosts: matchList(host), upstream } },
  upstream,
};
