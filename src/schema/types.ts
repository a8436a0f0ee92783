/** The types every schema module shares; the plugin contract re-exports them. */

export type JsonSchema = Record<string, unknown>;

/** Which schema a conf is checked against (APISIX's schema types). */
export type SchemaType = 'route' | 'consumer' | 'metadata';

/** The stored resources that have a core schema (the Admin API's resource names). */
export type SchemaResource =
  | 'routes'
  | 'services'
  | 'upstreams'
  | 'consumers'
  | 'global_rules'
  | 'plugin_configs'
  | 'plugin_metadata'
  | 'ssls'
  | 'consumer_groups'
  | 'protos';
