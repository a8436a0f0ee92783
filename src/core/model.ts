/**
 * The shapes of the objects Portico stores, as APISIX v3 stores them
 * (apisix/schema_def.lua, docs/en/latest/admin-api.md). Values are what the client sent
 * plus `id`, `create_time` and `update_time`; defaults are filled in only by the
 * data plane when it compiles a snapshot, never persisted.
 */

export type Id = string | number;

export const RESOURCES = [
  'routes',
  'services',
  'upstreams',
  'consumers',
  'global_rules',
  'plugin_configs',
  'plugin_metadata',
  'ssls',
  'consumer_groups',
  'protos',
] as const;
export type ResourceName = (typeof RESOURCES)[number];

/** Store key prefix, as APISIX's etcd layout: `/apisix/routes/1`. */
export const KEY_PREFIX = '/apisix';
export function resourceKey(resource: ResourceName, id: string): string {
  return `${KEY_PREFIX}/${resource}/${id}`;
}

/** Set by the Admin API on every write (seconds since the epoch), as APISIX does. */
export interface StoredTimes {
  create_time?: number;
  update_time?: number;
}

/** The fields most stored objects share (APISIX's schema_def: id_schema, name_def, desc_def, labels_def). */
export interface BaseConf extends StoredTimes {
  id?: Id;
  name?: string;
  desc?: string;
  labels?: Record<string, string>;
}

export type PluginConfMap = Record<string, Record<string, unknown>>;

export interface UpstreamNode {
  host: string;
  port?: number;
  weight: number;
  priority?: number;
  metadata?: Record<string, unknown>;
}

export interface TimeoutConf {
  connect: number;
  send: number;
  read: number;
}

export interface HealthCheckConf {
  active?: {
    type?: 'http' | 'https' | 'tcp';
    timeout?: number;
    concurrency?: number;
    host?: string;
    port?: number;
    http_method?: string;
    http_path?: string;
    http_req_body?: string;
    https_verify_certificate?: boolean;
    req_headers?: string[];
    healthy?: { interval?: number; http_statuses?: number[]; successes?: number };
    unhealthy?: {
      interval?: number;
      http_statuses?: number[];
      http_failures?: number;
      tcp_failures?: number;
      timeouts?: number;
    };
  };
  passive?: {
    type?: 'http' | 'https' | 'tcp';
    healthy?: { http_statuses?: number[]; successes?: number };
    unhealthy?: { http_statuses?: number[]; http_failures?: number; tcp_failures?: number; timeouts?: number };
  };
}

export interface UpstreamConf extends BaseConf {
  /** Hash form `{"host:port": weight}` or array form. */
  nodes?: Record<string, number> | UpstreamNode[];
  retries?: number;
  retry_timeout?: number;
  timeout?: TimeoutConf;
  tls?: { client_cert_id?: Id; client_cert?: string; client_key?: string; verify?: boolean };
  keepalive_pool?: { size?: number; idle_timeout?: number; requests?: number };
  type?: string;
  checks?: HealthCheckConf;
  hash_on?: 'vars' | 'header' | 'cookie' | 'consumer' | 'vars_combinations';
  key?: string;
  scheme?: 'grpc' | 'grpcs' | 'http' | 'https' | 'tcp' | 'tls' | 'udp' | 'kafka' | 'redis';
  discovery_type?: string;
  discovery_args?: { namespace_id?: string; group_name?: string };
  pass_host?: 'pass' | 'node' | 'rewrite';
  upstream_host?: string;
  service_name?: string;
}

export interface RouteConf extends BaseConf {
  uri?: string;
  uris?: string[];
  priority?: number;
  methods?: string[];
  host?: string;
  hosts?: string[];
  remote_addr?: string;
  remote_addrs?: string[];
  timeout?: TimeoutConf;
  /** APISIX (lua-resty-expr) expression list. */
  vars?: unknown[];
  filter_func?: string;
  script?: string;
  script_id?: Id;
  plugins?: PluginConfMap;
  plugin_config_id?: Id;
  upstream?: UpstreamConf;
  service_id?: Id;
  upstream_id?: Id;
  enable_websocket?: boolean;
  status?: 0 | 1;
}

export interface ServiceConf extends BaseConf {
  plugins?: PluginConfMap;
  upstream?: UpstreamConf;
  upstream_id?: Id;
  script?: string;
  enable_websocket?: boolean;
  hosts?: string[];
}

/** A consumer is named by `username`, not by an id or a name. */
export interface ConsumerConf extends Omit<BaseConf, 'id' | 'name'> {
  username: string;
  group_id?: Id;
  plugins?: PluginConfMap;
  /**
   * Set on the consumer an auth plugin identified through one of its
   * credentials (`/consumers/<username>/credentials/<id>`): `plugins` then holds
   * that credential's auth conf, and the upstream is told the id
   * (X-Credential-Identifier), as APISIX's consumer.attach_consumer does.
   */
  credential_id?: string;
}

export interface GlobalRuleConf extends StoredTimes {
  id: Id;
  plugins: PluginConfMap;
}

export interface PluginConfigConf extends BaseConf {
  id: Id;
  plugins: PluginConfMap;
}

/** A consumer group holds what a plugin config holds; only its schema's `name` rule differs. */
export type ConsumerGroupConf = PluginConfigConf;

export interface SslConf extends Omit<BaseConf, 'name' | 'desc'> {
  type?: 'server' | 'client';
  cert?: string;
  key?: string;
  certs?: string[];
  keys?: string[];
  sni?: string;
  snis?: string[];
  status?: 0 | 1;
  [extra: string]: unknown;
}

export interface PluginMetadataConf {
  id: string;
  [field: string]: unknown;
}
